"""The model card a promoted bundle carries: what the model is for, what it was trained on, how well it did.

A hospital's governance board reads a model card before a model reaches a
patient (Mitchell et al., FAT* 2019; TRIPOD+AI item 22). At promotion
(:func:`cohortlm.run.steps.promote_step`) :func:`write_model_card` writes two files
into the bundle, before its ``MANIFEST.json`` and signature are made, so a changed
card is refused like any changed file:

* ``model_card.json``: machine-readable (:data:`CARD_SCHEMA_VERSION`); the server
  returns it in the model's metadata;
* ``model_card.md``: the same for people.

Sections: ``model`` (name, kind, version, study and its hash, libraries),
``intended_use`` (the spec's ``intended_use``, or a default that says what the
study predicts and that the model is a decision aid), ``training_data`` (cohort,
patients per split, study period in whole years, the synthetic flag),
``endpoints`` (definition, prevalence per split), ``performance`` (per endpoint on
the evaluation split: AUC with its interval, the operating point and every figure
the gate's outcome carries for the model, interval columns included),
``calibration`` (the gate's calibration-in-the-large and slope with intervals, and
the Brier score), ``evidence`` (calibration, decision-curve, subgroup and
optimism-corrected figures when the outcome holds them), ``gate`` (verdict,
reasons, per-endpoint verdicts and subgroup checks), ``limitations`` and
``serving`` (thresholds). Everything comes from ``bundle.json`` and the gate's
outcome record: names, definitions, counts and statistics, never a patient's value.

The card depends only on plain data (the outcome's JSON form), so this layer
needs nothing from the evaluation or run layers above it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cohortlm.contracts import BUNDLE_FILE, MODEL_CARD_JSON, MODEL_CARD_MD
from cohortlm.models.bundle import read_bundle_metadata

__all__ = [
    "CARD_SCHEMA_VERSION",
    "MODEL_CARD_JSON",
    "MODEL_CARD_MD",
    "build_model_card",
    "model_card_markdown",
    "read_model_card",
    "write_model_card",
]

CARD_SCHEMA_VERSION = 1
#: fewer cases (or controls) than this on the evaluation split: the card names the endpoint as imprecise
FEW_CASES = 100
#: outcome keys whose figures the card carries for the promoted model, when the gate step recorded them
EVIDENCE_KEYS = ("calibration", "decision_curve", "subgroups", "internal_validation", "optimism")
_DECISION_CURVE_REFERENCES = ("treat_all", "treat_none")
#: the run's regression, the only model with an internal validation (bootstrap optimism)
BASELINE_NAME = "baseline"


def _number(value: Any) -> Any:
    """JSON-safe: NaN and infinities as None, numpy scalars as Python numbers."""
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _clean(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return _number(value)


def _for_model(value: Any, model: str) -> Any:
    """The part of an evidence record that concerns ``model`` (and the decision curve's references).

    Records come as a list of rows with a ``model`` key, a mapping keyed by model, or a
    mapping of such per endpoint; anything else is kept as it is.
    """
    keep = {model, *_DECISION_CURVE_REFERENCES}
    if isinstance(value, list):
        rows = [r for r in value if not isinstance(r, Mapping) or "model" not in r or r["model"] in keep]
        return rows
    if isinstance(value, Mapping):
        if model in value:
            return value[model]
        if value and all(isinstance(v, (Mapping, list)) for v in value.values()):
            return {k: _for_model(v, model) for k, v in value.items()}
    return value


def decision_curve_summary(rows: Sequence[Mapping[str, Any]], model: str) -> dict[str, dict[str, Any]]:
    """Per endpoint, where acting on ``model`` beats both treating everyone and treating no one.

    Args:
        rows: Decision-curve rows (``endpoint, model, threshold, net_benefit``; ``model`` also
            ``treat_all`` and ``treat_none``), as report/decision_curve.csv holds them.
        model: The model to summarise.

    Returns:
        ``{endpoint: {"thresholds": [lo, hi], "useful": [lo, hi] or None, "max_gain": g,
        "max_gain_at": t}}``: the threshold range examined, the first and last threshold at
        which the model's net benefit exceeds max(treat-all, 0), and the largest such excess.
    """
    by: dict[str, dict[float, dict[str, float]]] = {}
    for r in rows:
        nb = r.get("net_benefit")
        if nb is None or r.get("model") not in (model, "treat_all", "treat_none"):
            continue
        by.setdefault(str(r["endpoint"]), {}).setdefault(float(r["threshold"]), {})[str(r["model"])] = float(
            nb
        )
    out = {}
    for ep, points in by.items():
        thresholds = sorted(points)
        gains = {
            t: points[t][model] - max(points[t].get("treat_all", 0.0), 0.0)
            for t in thresholds
            if model in points[t]
        }
        useful = [t for t, g in gains.items() if g > 1e-12]
        best = max(gains, key=lambda t: gains[t]) if gains else None
        out[ep] = {
            "thresholds": [thresholds[0], thresholds[-1]],
            "useful": [min(useful), max(useful)] if useful else None,
            "max_gain": gains[best] if best is not None else None,
            "max_gain_at": best,
        }
    return out


def _evidence(outcome: Mapping[str, Any], model: str) -> dict[str, Any]:
    """The outcome's further evidence about ``model``: its rows, the decision curve summarised."""
    out: dict[str, Any] = {}
    for key in EVIDENCE_KEYS:
        value = outcome.get(key)
        if value in (None, [], {}):
            continue
        if key == "decision_curve" and isinstance(value, list):
            value = decision_curve_summary(value, model)  # the full curve is report/decision_curve.csv
        elif key in ("internal_validation", "optimism") and model != BASELINE_NAME and model not in value:
            continue  # the regression's internal validation says nothing of another model
        else:
            value = _for_model(value, model)
        if value not in (None, [], {}):
            out[key] = value
    return out


def _definition(endpoint: Mapping[str, Any]) -> str:
    threshold = endpoint.get("threshold")
    shown = f"{threshold:g}" if isinstance(threshold, (int, float)) else str(threshold)
    return f"{endpoint.get('column')} {endpoint.get('operator')} {shown}"


def _default_intended_use(study: Mapping[str, Any]) -> str:
    names = ", ".join(str(e.get("description") or e.get("name")) for e in study.get("endpoints", []))
    return (
        f"Estimates, for one patient of the {study.get('name')} study population at the prediction time, "
        f"the probability of each of: {names}. It is a decision aid for clinicians: its probabilities "
        "and threshold decisions inform, and never replace, a clinician's judgement. Not for patients "
        "outside the study's population or for uses other than these endpoints."
    )


def _side(decision: Mapping[str, Any], model: str) -> str | None:
    """Which side of the gate's comparison the promoted model was (``candidate`` or ``champion``)."""
    if model == decision.get("candidate"):
        return "candidate"
    if model == decision.get("champion"):
        return "champion"
    return None


def _cohort_section(study: Mapping[str, Any], cohort: Mapping[str, Any] | None) -> dict[str, Any]:
    cohort = cohort or {}
    return {
        "cohort": study.get("name"),
        "description": study.get("description"),
        "featuriser": study.get("featuriser"),
        "prediction_time": study.get("timestamp_column"),
        "patients": dict(cohort.get("n", {})),
        "period": cohort.get("period"),
        "synthetic": cohort.get("synthetic"),
        "split": {"seed": study.get("split", {}).get("seed"), "by": "patient"},
    }


def _endpoints_section(study: Mapping[str, Any], cohort: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    cohort = cohort or {}
    out = []
    for e in study.get("endpoints", []):
        name = str(e.get("name"))
        cases = {s: int(v.get(name, 0)) for s, v in cohort.get("cases", {}).items() if name in v}
        labelled = {s: int(v.get(name, 0)) for s, v in cohort.get("labelled", {}).items() if name in v}
        prevalence = {s: round(cases[s] / labelled[s], 4) if labelled.get(s) else None for s in cases}
        out.append(
            {
                "name": name,
                "definition": _definition(e),
                "description": e.get("description"),
                "decision_threshold": e.get("decision_threshold"),
                "cases": cases,
                "labelled": labelled,
                "prevalence": prevalence,
            }
        )
    return out


def _calibration_section(decision: Mapping[str, Any], side: str | None) -> dict[str, Any]:
    if side is None:
        return {}
    out = {}
    for v in decision.get("endpoints", []):
        out[str(v["endpoint"])] = {
            "citl": v.get(f"citl_{side}"),
            "citl_ci": v.get(f"ci_citl_{side}"),
            "slope": v.get(f"slope_{side}"),
            "slope_ci": v.get(f"ci_slope_{side}"),
            "brier": v.get(f"brier_{side}"),
        }
    return out


def _gate_section(outcome: Mapping[str, Any], decision: Mapping[str, Any]) -> dict[str, Any]:
    verdicts = [
        {
            "endpoint": v.get("endpoint"),
            "verdict": v.get("verdict"),
            "auc_candidate": v.get("auc_candidate"),
            "auc_champion": v.get("auc_champion"),
            "delta": v.get("delta"),
            "delta_ci": v.get("ci_delta"),
            "margin": v.get("margin"),
            "p_better_adjusted": v.get("p_better_adjusted"),
            "calibration_ok": v.get("calibration_ok"),
        }
        for v in decision.get("endpoints", [])
    ]
    return {
        "winner": outcome.get("winner"),
        "promoted": bool(decision.get("promote")),
        "candidate": decision.get("candidate"),
        "champion": decision.get("champion"),
        "look": decision.get("look"),
        "alpha_look": decision.get("alpha_look"),
        "reasons": list(decision.get("reasons", [])),
        "endpoints": verdicts,
        "subgroups": list(decision.get("subgroups", []) or []),
    }


def _limitations(card: Mapping[str, Any], outcome: Mapping[str, Any]) -> list[str]:
    out = []
    synthetic = card["training_data"].get("synthetic")
    if synthetic:
        out.append(
            "Trained and evaluated on a synthetic cohort: its figures say nothing about real patients."
        )
    elif synthetic is None:
        out.append("The run did not record whether its data was synthetic or real.")
    out.append(
        "Internal validation only: development and evaluation data are random parts of one cohort; "
        "performance in another hospital, country or era is unknown until validated there."
    )
    split = card["performance"]["split"]
    few = [
        f"{ep} ({p.get('n_cases')} cases of {p.get('n')})"
        for ep, p in card["performance"]["endpoints"].items()
        if isinstance(p.get("n"), int)
        and isinstance(p.get("n_cases"), int)
        and min(p["n_cases"], p["n"] - p["n_cases"]) < FEW_CASES
    ]
    if few:
        out.append(
            f"Fewer than {FEW_CASES} cases or controls on the {split} split (wide intervals): "
            + ", ".join(few)
            + "."
        )
    insufficient = [
        v["endpoint"] for v in card["gate"]["endpoints"] if v.get("verdict") == "insufficient evidence"
    ]
    if insufficient:
        out.append(f"The gate could not judge (insufficient evidence): {', '.join(insufficient)}.")
    defaults = [ep for ep, t in card["serving"]["thresholds"].items() if t.get("source") == "default"]
    if defaults:
        out.append(
            f"No threshold could be chosen on data for {', '.join(defaults)}: the serving default applies."
        )
    if not card["evidence"].get("subgroups") and not card["gate"]["subgroups"]:
        out.append("Performance in patient subgroups was not examined.")
    out.append(
        "Not assessed: fairness across sociodemographic groups beyond the declared subgroups, "
        "drift after deployment."
    )
    return out


def build_model_card(meta: Mapping[str, Any], outcome: Mapping[str, Any]) -> dict[str, Any]:
    """The model card of a bundle (its ``bundle.json``) promoted by a gate outcome (its JSON form).

    Args:
        meta: The bundle's metadata (:func:`cohortlm.models.bundle.read_bundle_metadata`).
        outcome: The gate's outcome record (``GateOutcome.to_dict()``); its ``promoted_model``
            is the model this bundle holds.

    Returns:
        The card as JSON-ready data (:data:`CARD_SCHEMA_VERSION`).
    """
    study = meta.get("study", {})
    model = str(outcome.get("promoted_model") or meta.get("model_name"))
    decision = outcome.get("decision", {}) or {}
    cohort = outcome.get("cohort")
    intended = study.get("intended_use")
    points = outcome.get("points", {}).get(model, {})
    thresholds = outcome.get("serving_thresholds", {})
    card: dict[str, Any] = {
        "schema_version": CARD_SCHEMA_VERSION,
        "model": {
            "name": model,
            "bundle_name": meta.get("model_name"),
            "kind": meta.get("kind"),
            "version": meta.get("model_version"),
            "created": meta.get("created"),
            "study": study.get("name"),
            "study_version": study.get("version"),
            "study_hash": meta.get("study_hash"),
            "features": list(meta.get("features", [])),
            "libraries": dict(meta.get("libraries", {})),
        },
        "intended_use": {
            "text": intended.strip()
            if isinstance(intended, str) and intended.strip()
            else _default_intended_use(study),
            "source": "study spec (intended_use)" if intended else "default: the study's endpoints",
            "output": "a probability per endpoint and a decision at each endpoint's threshold",
        },
        "training_data": _cohort_section(study, cohort),
        "endpoints": _endpoints_section(study, cohort),
        "performance": {
            "split": outcome.get("eval_split", "test"),
            "conf_level": (decision.get("policy") or {}).get("conf_level", 0.95),
            "endpoints": {ep: dict(p) for ep, p in points.items()},
        },
        "calibration": _calibration_section(decision, _side(decision, model)),
        "evidence": _evidence(outcome, model),
        "gate": _gate_section(outcome, decision),
        "serving": {"thresholds": {ep: dict(t) for ep, t in thresholds.items()}},
    }
    card["limitations"] = _limitations(card, outcome)
    cleaned: dict[str, Any] = _clean(card)
    return cleaned


# ----------------------------------------------------------------------------- Markdown


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _interval(pair: Any, digits: int = 3) -> str:
    if isinstance(pair, Sequence) and len(pair) == 2 and all(isinstance(v, (int, float)) for v in pair):
        return f"{pair[0]:.{digits}f} to {pair[1]:.{digits}f}"
    return "-"


def _table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows]
    return [*lines, ""]


#: the order a clinician reads operating points in; precision and recall repeat PPV and sensitivity
_METRIC_ORDER = ("auc", "sensitivity", "specificity", "ppv", "npv", "f1", "accuracy")
_ALIASES = {"precision": "ppv", "recall": "sensitivity"}


def _interval_columns(points: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Metrics that carry ``<metric>_ci_low`` and ``<metric>_ci_high``, in :data:`_METRIC_ORDER`."""
    keys = {k for p in points.values() for k in p}
    metrics = {k[: -len("_ci_low")] for k in keys if k.endswith("_ci_low") and f"{k[:-7]}_ci_high" in keys}
    metrics -= {m for m, same in _ALIASES.items() if same in metrics}
    rank = {m: i for i, m in enumerate(_METRIC_ORDER)}
    return sorted(metrics, key=lambda m: (rank.get(m, len(rank)), m))


#: at the top of a card whose data is the synthetic cohort, where no reader can miss it
_SYNTHETIC_NOTICE = (
    "> **Synthetic data.** This model was trained and evaluated on the synthetic cohort, "
    "not on real patients: its figures say nothing about real patients.",
    "",
)


def model_card_markdown(card: Mapping[str, Any]) -> str:
    """``model_card.md``: the card for people, section by section."""
    m, data, perf = card["model"], card["training_data"], card["performance"]
    lines = [
        f"# Model card: {m['name']} ({m['study']})",
        "",
        f"Version `{m['version']}` ({m['kind']}), study `{m['study']}` version {m['study_version']} "
        f"(spec hash `{str(m['study_hash'])[:12]}`), created {m['created']}. This card is covered by the "
        "bundle's MANIFEST.json and signature.",
        "",
        *(_SYNTHETIC_NOTICE if data.get("synthetic") else ()),
        "## Intended use",
        "",
        card["intended_use"]["text"],
        "",
        f"Source: {card['intended_use']['source']}. Output: {card['intended_use']['output']}.",
        "",
        "## Training data",
        "",
        f"Cohort `{data['cohort']}`" + (f": {data['description']}" if data.get("description") else "."),
        "",
        "Patients per split (by patient, seed "
        f"{data['split']['seed']}): "
        + (", ".join(f"{s} {n:,}" for s, n in data["patients"].items()) or "not recorded")
        + ". Study period: "
        + (f"{data['period'][0]} to {data['period'][1]}" if data.get("period") else "not recorded")
        + ". Synthetic data: "
        + ({True: "yes", False: "no", None: "not recorded"}[data.get("synthetic")])
        + ".",
        "",
        "## Endpoints",
        "",
    ]
    lines += _table(
        ["endpoint", "definition", "description", "prevalence per split"],
        [
            [
                e["name"],
                e["definition"],
                e.get("description") or "-",
                ", ".join(f"{s} {p:.1%}" for s, p in e["prevalence"].items() if p is not None) or "-",
            ]
            for e in card["endpoints"]
        ],
    )
    level = f"{float(perf['conf_level']):.0%}"
    lines += [f"## Performance ({perf['split']} split, {level} intervals)", ""]
    metrics = _interval_columns(perf["endpoints"])
    head = ["endpoint", "n", "cases", *metrics, "threshold", "threshold source"]
    rows = []
    for ep, p in perf["endpoints"].items():
        cells = [ep, _fmt(p.get("n")), _fmt(p.get("n_cases"))]
        cells += [
            f"{_fmt(p.get(mt))} ({_interval([p.get(f'{mt}_ci_low'), p.get(f'{mt}_ci_high')])})"
            for mt in metrics
        ]
        cells += [_fmt(p.get("threshold")), _fmt(p.get("threshold_source"))]
        rows.append(cells)
    lines += _table(head, rows)
    if card["calibration"]:
        lines += ["## Calibration (the gate's logistic recalibration)", ""]
        lines += _table(
            ["endpoint", "intercept (CITL)", "interval", "slope", "interval", "Brier"],
            [
                [
                    ep,
                    _fmt(c["citl"]),
                    _interval(c["citl_ci"]),
                    _fmt(c["slope"]),
                    _interval(c["slope_ci"]),
                    _fmt(c["brier"]),
                ]
                for ep, c in card["calibration"].items()
            ],
        )
    lines += _evidence_markdown(card["evidence"])
    gate = card["gate"]
    word = (
        "promoted (the candidate replaced the champion)"
        if gate["promoted"]
        else ("kept the champion" if gate["winner"] == "none" else "first champion (no model served before)")
    )
    lines += [
        "## The gate's decision",
        "",
        f"Verdict: {word}. Candidate `{gate['candidate']}`, champion `{gate['champion']}`, "
        f"look {gate['look']}.",
        "",
    ]
    lines += [f"- {r}" for r in gate["reasons"]] + [""]
    lines += _table(
        ["endpoint", "verdict", "AUC candidate", "AUC champion", "ΔAUC (interval)", "margin"],
        [
            [
                str(v["endpoint"]),
                str(v["verdict"]),
                _fmt(v["auc_candidate"]),
                _fmt(v["auc_champion"]),
                f"{_fmt(v['delta'])} ({_interval(v['delta_ci'])})",
                _fmt(v["margin"]),
            ]
            for v in gate["endpoints"]
        ],
    )
    if gate["subgroups"]:
        worse = [g for g in gate["subgroups"] if g.get("worse")]
        lines += [
            f"Subgroup checks: {len(gate['subgroups'])} endpoint-level pairs, {len(worse)} shown worse "
            "(model_card.json, gate.subgroups).",
            "",
        ]
    lines += ["## Limitations", ""] + [f"- {t}" for t in card["limitations"]] + [""]
    lines += ["## Serving thresholds", ""]
    lines += _table(
        ["endpoint", "threshold", "source"],
        [
            [ep, _fmt(t.get("threshold")), str(t.get("source"))]
            for ep, t in card["serving"]["thresholds"].items()
        ],
    )
    return "\n".join(lines).rstrip() + "\n"


def _ci(row: Mapping[str, Any], key: str) -> str:
    return f"{_fmt(row.get(key))} ({_interval([row.get(f'{key}_ci_low'), row.get(f'{key}_ci_high')])})"


def _evidence_markdown(evidence: Mapping[str, Any]) -> list[str]:
    """Tables for the evidence kinds the card knows; a line for any other."""
    lines: list[str] = []
    rendered: set[str] = set()
    rows = evidence.get("calibration")
    if isinstance(rows, list) and rows and all(isinstance(r, Mapping) for r in rows):
        rendered.add("calibration")
        lines += ["## Calibration on the evaluation split", ""]
        lines += _table(
            ["endpoint", "n", "cases", "CITL (interval)", "slope (interval)", "O/E", "ICI", "Brier"],
            [
                [
                    str(r.get("endpoint")),
                    _fmt(r.get("n")),
                    _fmt(r.get("cases")),
                    _ci(r, "citl"),
                    _ci(r, "slope"),
                ]
                + [_fmt(r.get(k)) for k in ("oe_ratio", "ici", "brier")]
                for r in rows
            ],
        )
    curve = evidence.get("decision_curve")
    if isinstance(curve, Mapping) and curve:
        rendered.add("decision_curve")
        lines += [
            "## Decision curve",
            "",
            "Where acting on the model's risk beats treating every patient and treating none "
            "(net benefit; the full curves are in the run's report/decision_curve.csv).",
            "",
        ]
        lines += _table(
            ["endpoint", "thresholds examined", "model better at", "largest gain in net benefit (at)"],
            [
                [
                    ep,
                    _interval(c.get("thresholds")),
                    _interval(c.get("useful")) if c.get("useful") else "no threshold",
                    f"{_fmt(c.get('max_gain'), 4)} ({_fmt(c.get('max_gain_at'))})",
                ]
                for ep, c in curve.items()
            ],
        )
    rows = evidence.get("subgroups")
    if isinstance(rows, list) and rows and all(isinstance(r, Mapping) for r in rows):
        rendered.add("subgroups")
        lines += ["## Subgroups", ""]
        lines += _table(
            ["endpoint", "subgroup", "level", "n", "cases", "AUC (interval)", "slope"],
            [
                [
                    *(str(r.get(k)) for k in ("endpoint", "subgroup", "level")),
                    *(_fmt(r.get(k)) for k in ("n", "cases")),
                    _ci(r, "auc"),
                    _fmt(r.get("slope")),
                ]
                for r in rows
            ],
        )
    key = "internal_validation" if "internal_validation" in evidence else "optimism"
    internal = evidence.get(key)
    if isinstance(internal, Mapping) and internal and all(isinstance(v, Mapping) for v in internal.values()):
        rendered.add(key)
        lines += ["## Internal validation (bootstrap optimism correction on the training split)", ""]
        lines += _table(
            [
                "endpoint",
                "resamples",
                "AUC apparent",
                "optimism",
                "AUC corrected",
                "AUC test",
                "slope corrected",
            ],
            [
                [ep, _fmt(v.get("n_boot"))]
                + [
                    _fmt(v.get(k))
                    for k in ("auc_apparent", "auc_optimism", "auc_corrected", "auc_test", "slope_corrected")
                ]
                for ep, v in internal.items()
            ],
        )
    others = [k for k in evidence if k not in rendered]
    if others:
        lines += ["## Further evidence", ""]
        lines += [f"- `{k}`: in model_card.json ({_size(evidence[k])})" for k in others] + [""]
    return lines


def _size(value: Any) -> str:
    if isinstance(value, list):
        return f"{len(value)} rows"
    if isinstance(value, Mapping):
        return f"{len(value)} entries"
    return "1 value"


# ----------------------------------------------------------------------------- files


def write_model_card(folder: str | Path, outcome: Mapping[str, Any]) -> dict[str, Any]:
    """Write ``model_card.json`` and ``model_card.md`` into a bundle folder; return the card.

    Call it before the bundle's manifest and signature are made (promotion does), so both cover it.
    """
    root = Path(folder)
    card = build_model_card(read_bundle_metadata(root), outcome)
    (root / MODEL_CARD_JSON).write_text(
        json.dumps(card, indent=2, ensure_ascii=False, allow_nan=False) + "\n", encoding="utf-8"
    )
    (root / MODEL_CARD_MD).write_text(model_card_markdown(card), encoding="utf-8")
    return card


def read_model_card(folder: str | Path) -> dict[str, Any] | None:
    """A bundle's ``model_card.json``, or None when it has none (bundles promoted before cards existed).

    Raises:
        ValueError: the file is there but is not a JSON object.
    """
    path = Path(folder) / MODEL_CARD_JSON
    if not path.is_file():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a JSON object (next to {BUNDLE_FILE})")
    return data
