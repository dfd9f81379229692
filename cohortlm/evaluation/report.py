"""The report for one run: ROC figure (seed 000, Figure 1), Table 1, metrics and the gate decision in words.

The run folder it reads is :mod:`cohortlm.evaluation.run_folder`'s layout.

Outputs, in ``RUN_DIR/report/`` (or ``--out``)::

      roc.png               one ROC panel per endpoint; an index's high-activity and remission
                            panels side by side; one line per model with its AUC in the legend
      table1.md, table1.csv Table 1: AUC (CI) and threshold metrics per endpoint and model
      metrics.json          Table 1 rows, calibration bins, settings, the decision record
      summary.md            the decision in words, then Table 1
      index.html            one self-contained page to open: verdict, warnings, the figure
                            (inline PNG), the gate per endpoint, the comparison families,
                            Table 1, the validation summary
      tripod_ai.md          the TRIPOD+AI checklist: every item, where this run answers it or
                            why not (cohortlm.evaluation.tripod; also a section of index.html)

Small evaluations are said to be small: every table names each endpoint's n and
cases, and an endpoint with fewer than :data:`MIN_CASES` cases or controls is
named in a warning in the figure's title, summary.md, index.html, metrics.json
(``small_sample``) and the console summary of ``cohortlm run``.

Reading (:func:`cohortlm.evaluation.run_folder.read_run_dir`) is kept apart from
computing (:func:`compute_report`, :func:`table1_markdown`, :func:`summary_markdown`)
so that a KFP component can call the compute functions on data it already holds.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from cohortlm.cohort.study import StudySpec
from cohortlm.evaluation.cohort_counts import CohortSummary
from cohortlm.evaluation.comparisons import (
    FAMILIES,
    FAMILY_ALPHA,
    comparison_families,
)
from cohortlm.evaluation.evaluate import Evaluation, ThresholdPool, evaluate
from cohortlm.evaluation.gate import Decision, GatePolicy, decide, load_policy
from cohortlm.evaluation.intervals import THRESHOLD_METRICS

__all__ = [
    "MIN_CASES",
    "ReportData",
    "compute_report",
    "decision_headline",
    "decision_reasons",
    "family_markdown",
    "model_label",
    "panel_layout",
    "small_sample_endpoints",
    "small_sample_warnings",
    "summary_markdown",
    "table1_best",
    "table1_cells",
    "table1_markdown",
]

#: Fewest cases, and fewest controls, an endpoint needs before its AUC is reported without a
#: warning. Validation studies of prediction models need at least 100 events and 100
#: non-events (Vergouwe et al., J Clin Epidemiol 2005;58:475; Collins, Ogundimu & Altman,
#: Stat Med 2016;35:214): below that the AUC's 95 % CI is wider than ±0.07 at AUC 0.75
#: (Hanley–McNeil), wider than the differences between the models compared here. The gate
#: has its own, lower floor (the policy's ``min_cases``, 30) below which it decides nothing.
MIN_CASES = 100
#: the profile whose model is random (cohortlm.run.profiles): its AUCs test the plumbing only
SMOKE_PROFILE = "smoke"
# Suffixes that pair an index's endpoints (high activity first, then remission / low).
_PAIR_ORDER = ("high", "moderate", "remission", "low")
_INDEX_LABELS = {
    "das28_esr": "DAS28-ESR",
    "das28_crp": "DAS28-CRP",
    "cdai": "CDAI",
    "sdai": "SDAI",
    "jhaq": "J-HAQ",
}
_SUFFIX_WORDS = {
    "high": "high disease activity",
    "moderate": "moderate disease activity",
    "remission": "remission",
    "low": "low / normal",
}


@dataclass
class ReportData:
    """What the report shows, computed from :class:`RunData` or in-memory inputs."""

    evaluation: Evaluation
    endpoints: list[str]
    models: list[str]
    titles: dict[str, str]
    decision: Decision | None = None
    notes: list[str] = field(default_factory=list)
    #: the seed's comparison families (:func:`cohortlm.evaluation.comparisons.comparison_families`)
    families: dict[str, pd.DataFrame] = field(default_factory=dict)
    #: the run profile (``smoke``, ``quick``, ``paper``), when known
    profile: str | None = None
    #: the study spec, when known (the TRIPOD+AI checklist reads its definitions)
    study: StudySpec | None = None
    #: patients and cases per split (:class:`cohortlm.evaluation.cohort_counts.CohortSummary`), when known
    cohort: CohortSummary | None = None
    #: per endpoint, model and declared subgroup level (:func:`cohortlm.evaluation.subgroups.subgroup_table`)
    subgroups: pd.DataFrame | None = None
    #: the baseline's bootstrap optimism correction per endpoint
    #: (:func:`cohortlm.models.baseline.internal_validation`), when the run computed it
    internal_validation: dict[str, Any] | None = None

    @property
    def fine_tuning(self) -> pd.DataFrame | None:
        """Each fine-tuned model vs its own zero-shot base (one-sided, Holm in the family)."""
        return self.families.get("fine_tuned_vs_base")

    @property
    def vs_baseline(self) -> pd.DataFrame | None:
        """Each fine-tuned model vs this run's logistic regression (two-sided)."""
        return self.families.get("fine_tuned_vs_baseline")


# ----------------------------------------------------------------------------- names

#: the names the pipeline gives its score tables, as a person would say them
_MODEL_LABELS = {
    "baseline": "Logistic regression",
    "zero_shot": "LLM zero-shot",
    "fine_tuned": "LLM fine-tuned",
}
_KIND_LABELS = {"baseline": "LR", "llm": "LLM"}
_CHAMPION = re.compile(r"champion_(?P<kind>[a-z]+)_(?P<version>[0-9A-Za-z]+)")


def model_label(name: str) -> str:
    """A model's name for people: ``champion_baseline_33ada0e3f430`` -> ``Champion (LR, 33ada0e)``.

    Args:
        name: The model's key in the run folder (its score file's stem).

    Returns:
        ``Logistic regression`` for the baseline (``LLM zero-shot`` and ``LLM
        fine-tuned`` for an older run's unnamed base); a named base and its
        fine-tuned form as they are (``llama2-70b``, ``llama2-70b+qlora``);
        ``Champion (<kind>, <first 7 of the version>)`` for the serving champion;
        any other name with spaces for underscores.
    """
    if name in _MODEL_LABELS:
        return _MODEL_LABELS[name]
    match = _CHAMPION.fullmatch(name)
    if match:
        kind = _KIND_LABELS.get(match["kind"], match["kind"])
        return f"Champion ({kind}, {match['version'][:7]})"
    # A base model's name (smollm2-135m, llama2-70b+qlora) is already the readable one.
    return name if any(ch in name for ch in "+-.") else name.replace("_", " ")


# ----------------------------------------------------------------------------- computing


def _endpoint_title(name: str, study: StudySpec | None) -> str:
    """A panel title: the index and its rule on line one, what a case means on line two."""
    stem, _, suffix = name.rpartition("_")
    if study is not None and name in study.endpoint_names:
        ep = next(e for e in study.endpoints if e.name == name)
        column = ep.column[:-3] if ep.column.endswith("_2y") else ep.column
        label = _INDEX_LABELS.get(column, column)
        op = {"<=": "≤", ">=": "≥"}.get(ep.operator, ep.operator)
        # What a case means, from the spec's description ("severe functional disability
        # by J-HAQ (> 2.5) at two years" -> "severe functional disability").
        words = re.split(r" by | \(| at ", ep.description)[0] if ep.description else ""
        line2 = words or _SUFFIX_WORDS.get(suffix, "")
        return f"{label} {op} {ep.threshold:g}" + (f"\n{line2}" if line2 else "")
    if suffix in _SUFFIX_WORDS and stem:
        return f"{_INDEX_LABELS.get(stem, stem)}\n{_SUFFIX_WORDS[suffix]}"
    return name


def panel_layout(endpoints: Sequence[str]) -> list[list[str | None]]:
    """Rows of panels: each index's endpoints side by side (high, then remission or low).

    Endpoints are grouped by the name before their last ``_`` when that suffix
    names an activity level (high, moderate, remission, low). When every group
    holds at most two endpoints, two groups share a row (four panels); else each
    group gets a row. Endpoints that fit no group fill a plain grid.

    Args:
        endpoints: Endpoint names, in study order.

    Returns:
        A list of rows, each a list of endpoint names (None for an empty cell).
    """
    groups: dict[str, list[str]] = {}
    loose: list[str] = []
    for ep in endpoints:
        stem, _, suffix = ep.rpartition("_")
        if stem and suffix in _PAIR_ORDER:
            groups.setdefault(stem, []).append(ep)
        else:
            loose.append(ep)
    cells: list[list[str | None]] = []
    ordered = [sorted(g, key=lambda e: _PAIR_ORDER.index(e.rpartition("_")[2])) for g in groups.values()]
    width = max((len(g) for g in ordered), default=0)
    if ordered and width <= 2:
        pairs: list[str | None] = []
        for g in ordered:
            pairs.extend([*g, *([None] * (2 - len(g)))])
        per_row = 4 if len(ordered) > 1 else 2
        cells = [pairs[i : i + per_row] for i in range(0, len(pairs), per_row)]
    else:
        cells = [list(g) for g in ordered]
    if loose:
        ncol = max((len(r) for r in cells), default=min(4, len(loose))) or 1
        for i in range(0, len(loose), ncol):
            cells.append(list(loose[i : i + ncol]))
    width = max(len(r) for r in cells)
    return [r + [None] * (width - len(r)) for r in cells]


def compute_report(
    labels: pd.DataFrame,
    scores: Mapping[str, pd.DataFrame],
    split: pd.Series | None,
    *,
    endpoints: Sequence[str] | None = None,
    study: StudySpec | None = None,
    candidate: str | None = None,
    champion: str | None = None,
    policy: GatePolicy | None = None,
    decision: Decision | None = None,
    threshold_method: str | float = "youden",
    profile: str | None = None,
    threshold_pool: ThresholdPool | None = None,
) -> ReportData:
    """Evaluate every model and, when a candidate and champion are named, decide the gate.

    Args:
        labels: Labels per endpoint, indexed by patient id (0/1/NaN).
        scores: ``{model: probabilities}``, same columns and ids.
        split: Split name per patient id (thresholds on validation, metrics on test).
        endpoints: Endpoints in order; default: the columns of ``labels``.
        study: The study, for panel titles.
        candidate: Candidate model name, for the gate.
        champion: Champion model name, for the gate.
        policy: Gate policy; the packaged default when None.
        decision: An existing decision record; computed when None and both names are given.
        threshold_method: See :func:`cohortlm.evaluation.endpoint_metrics.choose_threshold`.
        profile: The run profile, when known (a smoke run's report says its AUCs mean nothing).
        threshold_pool: Out-of-fold scores pooled with validation to choose thresholds
            (:class:`cohortlm.evaluation.evaluate.ThresholdPool`); the study's declared
            decision thresholds (``decision_threshold`` per endpoint) come from ``study``.

    Returns:
        A :class:`ReportData`.
    """
    eps = list(endpoints) if endpoints is not None else [str(c) for c in labels.columns]
    declared = {e.name: e.decision_threshold for e in study.endpoints} if study is not None else {}
    ev = evaluate(
        labels,
        scores,
        split,
        endpoints=eps,
        threshold_method=threshold_method,
        decision_thresholds={k: v for k, v in declared.items() if v is not None and k in eps},
        threshold_pool=threshold_pool,
    )
    notes = list(ev.notes)
    if decision is None and candidate and champion:
        decision = decide(
            labels,
            scores[candidate],
            scores[champion],
            policy=policy or load_policy(),
            candidate_name=candidate,
            champion_name=champion,
            split=split,
            endpoints=eps,
        )
    elif decision is None:
        notes.append("no gate decision: decision.json is absent and run.json names no candidate and champion")
    rows = None if split is None or ev.eval_split is None else split.index[split == ev.eval_split]
    families = comparison_families(labels, scores, rows=rows, endpoints=eps, alpha=FINE_TUNING_ALPHA)
    return ReportData(
        evaluation=ev,
        endpoints=eps,
        models=list(scores),
        titles={e: _endpoint_title(e, study) for e in eps},
        decision=decision,
        notes=notes,
        families=families,
        profile=profile,
        study=study,
    )


FINE_TUNING_ALPHA = FAMILY_ALPHA


def family_markdown(family: str, table: pd.DataFrame, *, alpha: float = FINE_TUNING_ALPHA) -> str:
    """One comparison family in Markdown: what it tests, a one-line verdict, a row per pair and endpoint."""
    title, what, _ = FAMILIES[family]
    n_sig = int(table["significant"].sum())
    n_pairs = table[["model_a", "model_b"]].drop_duplicates().shape[0]
    over = f"{len(table)} tests ({n_pairs} pairs x endpoints)" if n_pairs > 1 else f"{len(table)} endpoints"
    lines = [
        f"{what}, on the same patients; Holm over the family's {over}, α {alpha:g}. "
        f"**Significant in {n_sig} of {len(table)}.**",
        "",
        "| Model A | Model B | Endpoint | n (cases) | AUC A | AUC B | ΔAUC A−B (95% CI) | z | p | p (Holm) |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in table.to_dict(orient="records"):
        mark = " *" if r["significant"] else ""
        a, b = model_label(str(r["model_a"])), model_label(str(r["model_b"]))
        lines.append(
            f"| {a} | {b} | {r['endpoint']} | {r['n']} ({r['n_cases']}) | {_num(r['auc_a'])} "
            f"| {_num(r['auc_b'])} | {_num(r['delta'])} ({_num(r['ci_low'])} to {_num(r['ci_high'])}) "
            f"| {_num(r['z'], 2)} | {_p(r['p'])} | {_p(r['p_adjusted'])}{mark} |"
        )
    return f"### {title}\n\n" + "\n".join(lines) + "\n"


def fine_tuning_markdown(table: pd.DataFrame, *, alpha: float = FINE_TUNING_ALPHA) -> str:
    """The fine-tuned vs zero-shot family in Markdown, with a one-line verdict."""
    n_sig = int(table["significant"].sum())
    head = (
        f"Fine-tuned vs its own zero-shot base: **Significantly better on {n_sig} of {len(table)} "
        f"{'endpoints' if table['model_a'].nunique() == 1 else 'tests'}.**\n\n"
    )
    return head + family_markdown("fine_tuned_vs_base", table, alpha=alpha)


def _p(x: Any) -> str:
    v = float(x)
    if not math.isfinite(v):
        return "–"
    return "<0.0001" if v < 1e-4 else f"{v:.4f}"


def small_sample_endpoints(report: ReportData, *, min_cases: int = MIN_CASES) -> list[dict[str, Any]]:
    """The endpoints with fewer than ``min_cases`` cases or controls on the evaluation split.

    Args:
        report: Output of :func:`compute_report`.
        min_cases: The floor; default :data:`MIN_CASES` (why that number: there).

    Returns:
        One ``{"endpoint", "n", "n_cases", "n_controls"}`` per small endpoint, in study
        order (the largest n any model was evaluated on).
    """
    table = report.evaluation.table1
    out = []
    for ep in report.endpoints:
        rows = table[table["endpoint"] == ep]
        if rows.empty:
            continue
        best = rows.loc[rows["n"].idxmax()]
        n, cases = int(best["n"]), int(best["n_cases"])
        if min(cases, n - cases) < min_cases:
            out.append({"endpoint": ep, "n": n, "n_cases": cases, "n_controls": n - cases})
    return out


def small_sample_warnings(report: ReportData, *, min_cases: int = MIN_CASES) -> list[str]:
    """The report's warnings in words: a smoke run, and every endpoint too small to judge."""
    lines = []
    if report.profile == SMOKE_PROFILE:
        lines.append(
            "Smoke run: a tiny random model, for checking the pipeline. "
            "Its AUCs and its gate decision mean nothing."
        )
    small = small_sample_endpoints(report, min_cases=min_cases)
    if small:
        split = report.evaluation.eval_split or "evaluated"
        each = ", ".join(f"{s['endpoint']} (n {s['n']}, {s['n_cases']} cases)" for s in small)
        lines.append(
            f"Small evaluation: {len(small)} of {len(report.endpoints)} endpoints have fewer than "
            f"{min_cases} cases or controls on the {split} split, so their AUCs are imprecise "
            f"(95% CI wider than ±0.07 at AUC 0.75) and a difference between models there is weak "
            f"evidence at best: {each}."
        )
    return lines


def _num(x: Any, digits: int = 3) -> str:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return str(x)
    return "–" if not math.isfinite(v) else f"{v:.{digits}f}"


#: Table 1's metrics (column -> header) and which way is better, for the bold best value
_TABLE1_METRICS: dict[str, tuple[str, bool]] = {
    "auc": ("AUC", True),
    "sensitivity": ("Sensitivity", True),
    "specificity": ("Specificity", True),
    "ppv": ("PPV", True),
    "npv": ("NPV", True),
    "precision": ("Precision", True),
    "recall": ("Recall", True),
    "f1": ("F1", True),
    "accuracy": ("Accuracy", True),
    "brier": ("Brier", False),
}


def table1_best(table: pd.DataFrame, *, digits: int = 3) -> pd.Series:
    """Per row of Table 1, the metrics in which it is the best model of its endpoint.

    Values are compared as printed (3 decimals, Brier 4), so a tie on the page is
    bold in every tied row; a metric no model has (NaN) is bold nowhere.

    Returns:
        A string per row, metric names joined by ``;`` (``""`` where none), Table 1's index.
    """
    best: dict[Any, list[str]] = {i: [] for i in table.index}
    for _, rows in table.groupby("endpoint", sort=False):
        for metric, (_, higher) in _TABLE1_METRICS.items():
            if metric not in rows:
                continue
            values = pd.to_numeric(rows[metric], errors="coerce").round(4 if metric == "brier" else digits)
            if values.notna().sum() == 0:
                continue
            target = values.max() if higher else values.min()
            for i in values.index[values == target]:
                best[i].append(metric)
    return pd.Series({i: ";".join(v) for i, v in best.items()}, name="best", dtype=object)


def table1_cells(
    table: pd.DataFrame, *, conf_level: float = 0.95, bold: Any = None
) -> tuple[list[str], list[list[str]]]:
    """Table 1's header and rows as text cells (what the Markdown and HTML tables show).

    Args:
        table: ``Evaluation.table1``.
        conf_level: Level of the AUC intervals, for the header.
        bold: ``f(text) -> text`` applied to each endpoint's best value per metric
            (:func:`table1_best`); None marks nothing.

    Returns:
        ``(header, rows)``; models by their human names (:func:`model_label`).
    """
    pct = f"{conf_level * 100:g}%"
    head = [
        "Endpoint",
        "Model",
        "n (cases)",
        f"AUC ({pct} CI)",
        "Threshold",
        "Threshold source",
        *(
            _TABLE1_METRICS[k][0] + (f" ({pct} CI)" if f"{k}_ci_low" in table.columns else "")
            for k in ("sensitivity", "specificity", "ppv", "npv", "precision", "recall", "f1", "accuracy")
        ),
        "Brier",
    ]
    best = table1_best(table) if bold is not None else pd.Series("", index=table.index)

    def cell(metric: str, text: str, marks: str) -> str:
        return bold(text) if bold is not None and metric in marks.split(";") else text

    rows = []
    for i, row in zip(table.index, table.to_dict(orient="records"), strict=True):
        marks = str(best.get(i, ""))
        rows.append(
            [
                str(row["endpoint"]),
                model_label(str(row["model"])),
                f"{int(row['n'])} ({int(row['n_cases'])})",
                cell(
                    "auc", f"{_num(row['auc'])} ({_num(row['auc_ci_low'])}–{_num(row['auc_ci_high'])})", marks
                ),
                _num(row["threshold"]),
                str(row.get("threshold_source") or "–"),
                *(cell(k, _with_ci(row, k), marks) for k in THRESHOLD_METRICS),
                cell("brier", _num(row["brier"], 4), marks),
            ]
        )
    return head, rows


def _with_ci(row: Mapping[str, Any], metric: str) -> str:
    """A threshold metric with its interval, ``0.812 (0.780–0.840)``, when Table 1 has one."""
    low, high = row.get(f"{metric}_ci_low"), row.get(f"{metric}_ci_high")
    text = _num(row[metric])
    if low is None or high is None or not (math.isfinite(float(low)) and math.isfinite(float(high))):
        return text
    return f"{text} ({_num(low)}–{_num(high)})"


def table1_markdown(table: pd.DataFrame, *, conf_level: float = 0.95) -> str:
    """Table 1 as a Markdown table (one row per endpoint and model), each endpoint's best values in bold.

    Args:
        table: ``Evaluation.table1``.
        conf_level: Level of the AUC intervals, for the header.

    Returns:
        Markdown text.
    """
    head, rows = table1_cells(table, conf_level=conf_level, bold=lambda t: f"**{t}**")
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * 2 + ["---:"] * (len(head) - 2)) + "|"]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    return "\n".join(lines) + "\n\nBold: the best value of each metric per endpoint (higher; Brier: lower).\n"


def decision_reasons(decision: Decision) -> list[str]:
    """The gate's reasons with the models' human names (:func:`model_label`) for their keys."""
    names = {
        decision.candidate: model_label(decision.candidate),
        decision.champion: model_label(decision.champion),
    }
    pattern = re.compile("|".join(rf"\b{re.escape(k)}\b" for k in sorted(names, key=len, reverse=True)))
    return [pattern.sub(lambda m: names[m.group(0)], r) for r in decision.reasons]


def decision_headline(report: ReportData) -> str:
    """The gate's verdict in one line with its n: who was compared with whom, on how many patients."""
    d = report.decision
    if d is None:
        return "no gate decision"
    ns = [v.n for v in d.endpoints]
    cases = [v.n_cases for v in d.endpoints]
    n = f"{max(ns)} patients" if ns else "no patients"
    span = f"{min(cases)}–{max(cases)} cases per endpoint" if cases else "no cases"
    who = f"{model_label(d.candidate)} vs {model_label(d.champion)}"
    return f"{who} on the {d.policy.split} split, {n}, {span}"


def summary_markdown(report: ReportData) -> str:
    """The run in words: the gate decision (if any), how thresholds were chosen, notes, Table 1."""
    ev = report.evaluation
    parts = ["# Run report", ""]
    warnings = small_sample_warnings(report)
    if warnings:
        parts += [f"> **Warning.** {w}" for w in warnings] + [""]
    if report.decision is not None:
        d = report.decision
        verdict = "PROMOTE" if d.promote else "KEEP CHAMPION"
        parts += ["## Gate decision", "", f"**{verdict}**: {decision_headline(report)}", ""]
        parts += [f"- {r}" for r in decision_reasons(d)] + [
            "",
            "| Endpoint | n (cases) | ΔAUC (CI) | z | p better (adj.) | p worse (adj.) | Verdict |",
            "|---|---:|---:|---:|---:|---:|---|",
        ]
        for v in d.endpoints:
            parts.append(
                f"| {v.endpoint} | {v.n} ({v.n_cases}) "
                f"| {_num(v.delta)} ({_num(v.ci_delta[0])} to {_num(v.ci_delta[1])}) "
                f"| {_num(v.z, 2)} "
                f"| {_num(v.p_better, 4)} ({_num(v.p_better_adjusted, 4)}) "
                f"| {_num(v.p_worse, 4)} ({_num(v.p_worse_adjusted, 4)}) | {v.verdict} |"
            )
        parts.append("")
    if report.families:
        parts += [
            "## Comparison families",
            "",
            "Seed 000's families, each adjusted on its own (candidate vs champion is the gate above).",
            "",
        ]
        for family, table in report.families.items():
            parts += [family_markdown(family, table), ""]
    parts += [
        "## Table 1",
        "",
        f"Thresholds chosen by {ev.threshold_method} on the {ev.threshold_split or 'evaluated'} split "
        "and applied "
        f"to the {ev.eval_split or 'same'} split; a patient is predicted a case when score ≥ threshold.",
        "",
        table1_markdown(ev.table1, conf_level=ev.conf_level),
    ]
    if report.notes:
        parts += ["## Notes", "", *(f"- {n}" for n in report.notes), ""]
    return "\n".join(parts)
