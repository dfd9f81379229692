"""The pipeline's steps as plain functions over files: what each KFP component calls.

Every step reads its inputs from paths, writes its outputs to paths and returns
a small dict of metadata that the component attaches to its output artifact.
Nothing here imports kfp, kserve or feast, so each step is unit-tested without
a cluster, and a retried step rewrites the same outputs (idempotent).

The study travels as YAML text (a pipeline parameter), so the cluster run and
the local run read exactly the same spec.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import yaml

from cohortlm.cohort.io import read_table, write_table
from cohortlm.cohort.study import StudySpec, study_from_dict
from cohortlm.errors import DataError

if TYPE_CHECKING:
    from cohortlm.models.llm.bases import BaseModel


def study_from_text(text: str) -> StudySpec:
    """A StudySpec from YAML text (the pipeline's ``study_yaml`` parameter)."""
    return study_from_dict(yaml.safe_load(text), source="study_yaml parameter")


def study_text(spec: StudySpec) -> str:
    """YAML text for a spec (what ``cohortlm run`` passes to the pipeline)."""
    return yaml.safe_dump(spec.to_dict(), sort_keys=False)


# ----------------------------------------------------------------------------- data


def featurise_step(raw: str, study_yaml: str, out: str) -> dict[str, Any]:
    """Raw registry folder (or flat file) -> one row per eligible patient."""
    from cohortlm.cohort.featurise import featurise

    spec = study_from_text(study_yaml)
    result = featurise(raw, spec)
    write_table(result.table, out)
    return {"n_input": result.n_input, "n_included": result.n_included, **result.exclusions}


def validate_step(cohort: str, study_yaml: str, report_dir: str) -> dict[str, Any]:
    """Validate the featurised cohort with Great Expectations; raise DataError when it fails.

    The report (JSON + HTML, no patient values) is written either way, so a
    failed run still shows which expectations broke and for how many rows.
    """
    import logging

    # KFP's executor logs at INFO; GX's import chatter is noise there.
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    from cohortlm.cohort.validation import validate_table, write_report

    spec = study_from_text(study_yaml)
    result = validate_table(read_table(cohort, what="cohort"), spec)
    write_report(result, report_dir)
    if not result.success:
        raise DataError(result.summary())
    return {
        "expectations": len(result.outcomes),
        "failed": len(result.failed),
        "rows": result.n_rows,
        "seconds": round(result.seconds, 2),
    }


def split_step(
    table: str, study_yaml: str, out: str, *, split_override: Mapping[str, float] | None = None
) -> dict[str, int]:
    """Add the seeded patient-level ``split`` column."""
    from cohortlm.cohort.split import split_table

    spec = study_from_text(study_yaml)
    if split_override:
        spec = study_from_dict(
            {**spec.to_dict(), "split": {"sizes": dict(split_override), "seed": spec.split.seed}}
        )
    df = split_table(read_table(table, what="training table"), spec)
    write_table(df, out)
    counts = df["split"].value_counts()
    return {k: int(counts.get(k, 0)) for k in ("train", "validation", "test")}


def scores_frame(df: pd.DataFrame, probabilities: pd.DataFrame, spec: StudySpec) -> pd.DataFrame:
    """The scores table layout: id column, split, one probability column per endpoint."""
    out = pd.DataFrame({spec.id_column: df[spec.id_column].to_numpy(), "split": df["split"].to_numpy()})
    for e in spec.endpoint_names:
        out[e] = probabilities[e].to_numpy(dtype=float)
    return out


# ----------------------------------------------------------------------------- models


def train_baseline_step(
    split_table: str, study_yaml: str, bundle_dir: str, scores_out: str
) -> dict[str, Any]:
    """Logistic regression per endpoint on the train split; scores for every split."""
    from cohortlm.models.baseline import train_baseline

    spec = study_from_text(study_yaml)
    df = read_table(split_table, what="split table")
    model = train_baseline(df[df["split"] == "train"], spec)
    model.save(bundle_dir)
    write_table(scores_frame(df, model.predict_proba(df), spec), scores_out)
    return {"kind": "baseline", "n_train": int((df["split"] == "train").sum())}


def eval_rows(df: pd.DataFrame, profile: str) -> pd.DataFrame:
    """The rows the LLMs score: validation (thresholds) and test (metrics, gate).

    The ``quick`` profile scores a seeded subset of the test split to fit a CPU
    budget; every model is then compared on exactly those patients. Scoring
    the training split would cost the most time and is used by nothing.
    """
    from cohortlm.run.profiles import eval_subset, get_profile

    prof = get_profile(profile)
    validation = df[df["split"] == "validation"]
    test = eval_subset(df[df["split"] == "test"], prof)
    return pd.concat([validation, test])


def base_for(base_model: str, profile: str) -> BaseModel:
    """The :class:`~cohortlm.models.llm.bases.BaseModel` of a pipeline item ``NAME=SOURCE``."""
    from cohortlm.models.llm.bases import parse_base
    from cohortlm.run.profiles import get_profile

    return parse_base(base_model, profile_default=get_profile(profile).base_model)


def score_zero_shot_step(
    split_table: str, study_yaml: str, profile: str, base_model: str, scores_out: str
) -> dict[str, Any]:
    """Zero-shot P(Yes) of the base model for the validation and (profile's) test rows.

    ``base_model`` is one item of the pipeline's ``base_models`` (``NAME=SOURCE``,
    a path, or empty for the profile's model); the scores are model ``NAME``.
    """
    from cohortlm.models.llm.scoring import zero_shot_scorer
    from cohortlm.run.profiles import get_profile

    spec = study_from_text(study_yaml)
    prof = get_profile(profile)
    base = base_for(base_model, profile)
    df = eval_rows(read_table(split_table, what="split table"), profile)
    # Scored like the fine-tuned model (same dtype, same frozen trunk), so that the
    # two differ by the adapters only and share the trunk states of these rows.
    scorer = zero_shot_scorer(
        prof.base_model_or(base.source or None),
        spec,
        compute_dtype=prof.qlora.compute_dtype,
        lora_layers=prof.qlora.lora_layers if prof.qlora.cache_trunk else None,
    )
    probs = scorer.score(df, batch_size=prof.score_batch_size, progress=True)
    write_table(scores_frame(df, probs, spec), scores_out)
    return {"n_scored": len(df), "model": base.name, "base_model": scorer.name}


def train_llm_step(
    split_table: str, study_yaml: str, profile: str, base_model: str, bundle_dir: str, work_dir: str
) -> dict[str, Any]:
    """(Q)LoRA fine-tuning on the train split; writes an LLM bundle.

    Training runs in ``work_dir`` (checkpoints there), so a retried task
    resumes where the killed one stopped; the finished bundle is then copied
    to ``bundle_dir``.
    """
    from cohortlm.models.llm.qlora import train_qlora
    from cohortlm.run.profiles import get_profile

    spec = study_from_text(study_yaml)
    prof = get_profile(profile)
    base = base_for(base_model, profile)
    df = read_table(split_table, what="split table")
    trained = train_qlora(
        df[df["split"] == "train"],
        spec,
        prof.qlora,
        out_dir=Path(work_dir) / base.name / "bundle",
        base_model=prof.base_model_or(base.source or None),
    )
    copy_tree(trained, bundle_dir)
    info = json.loads((Path(bundle_dir) / "bundle.json").read_text())
    training = info.get("training", {})
    flat = {k: v for k, v in training.items() if isinstance(v, (int, float, str)) and not isinstance(v, bool)}
    return {"kind": "llm", "model_version": info.get("model_version", ""), **flat, "model": base.fine_tuned}


def score_bundle_step(bundle_dir: str, split_table: str, scores_out: str, profile: str) -> dict[str, Any]:
    """Score the validation and (profile's) test rows with a saved bundle (baseline or LLM)."""
    from cohortlm.models.llm.scoring import LLMPredictor
    from cohortlm.models.loaders import load_bundle, score_table
    from cohortlm.run.profiles import get_profile

    predictor = load_bundle(bundle_dir)
    if isinstance(predictor, LLMPredictor):
        predictor.scorer.enable_trunk_cache()
    df = eval_rows(read_table(split_table, what="split table"), profile)
    table = score_table(predictor, df, predictor.spec, batch_size=get_profile(profile).score_batch_size)
    write_table(table, scores_out)
    return {"n_scored": len(df), "model_version": predictor.version}


# ----------------------------------------------------------------------------- evaluate and gate


def _load_scores(path: str, spec: StudySpec) -> pd.DataFrame:
    df = read_table(path, what="scores table")
    return df.set_index(spec.id_column)[spec.endpoint_names]


def choose_candidate(
    labels: pd.DataFrame,
    scores: Mapping[str, pd.DataFrame],
    contenders: Sequence[str],
    split: pd.Series,
    *,
    gating_split: str = "test",
    endpoints: Sequence[str] | None = None,
) -> tuple[str, dict[str, Any]]:
    """The gate's candidate among several models, chosen without looking at the gating split.

    The rule: the highest mean AUC over the endpoints on the validation split
    (the test split when the policy gates on validation), ties to the first
    contender. Choosing the best of several on the split the gate then judges
    would bias the gate towards promotion (the winner's curse).

    Returns:
        ``(name, selection)``; ``selection`` is the decision record's field
        (empty when there is one contender).
    """
    from sklearn.metrics import roc_auc_score

    from cohortlm.evaluation.evaluate import endpoint_arrays

    if len(contenders) == 1:
        return contenders[0], {}
    look_at = "test" if gating_split == "validation" else "validation"
    rows = split.index[split == look_at]
    eps = list(endpoints) if endpoints is not None else [str(c) for c in labels.columns]
    means: dict[str, float | None] = {}
    for name in contenders:
        aucs = []
        for ep in eps:
            y, s = endpoint_arrays(labels, scores[name], ep, model=name, rows=rows)
            if len(np.unique(y)) == 2:
                aucs.append(float(roc_auc_score(y, s)))
        means[name] = float(np.mean(aucs)) if aucs else None
    ranked = [n for n in contenders if means[n] is not None]
    if not ranked:
        raise DataError(
            f"cannot choose the candidate: no endpoint has both classes on the {look_at} split; "
            "give the split more patients"
        )
    chosen = max(ranked, key=lambda n: (means[n], -list(contenders).index(n)))
    return chosen, {
        "rule": f"highest mean AUC over the endpoints on the {look_at} split",
        "split": look_at,
        "gating_split": gating_split,
        "contenders": list(contenders),
        "mean_auc": means,
        "chosen": chosen,
    }


def evaluate_step(
    split_table: str,
    study_yaml: str,
    scores: Mapping[str, str],
    out_dir: str,
    *,
    model_store: str = "",
    policy_path: str = "",
) -> dict[str, Any]:
    """Table 1, ROC figure, the comparison families and the gate decision against the champion.

    ``scores`` maps every model's name to its score table: ``baseline`` and, per
    base LLM, ``<base>`` (zero-shot) and ``<base>+qlora`` (fine-tuned).

    The champion is the bundle now serving from ``model_store`` when there is
    one (scored here on this run's split); otherwise the baseline trained in
    this run. The candidate is one of the fine-tuned models or, when a champion
    serves, this run's freshly trained baseline too (retraining the champion's
    kind of model on new data is the common case); with several, it is chosen
    on the validation split (:func:`choose_candidate`), never on the gating one.
    ``out_dir`` becomes a run folder in :mod:`cohortlm.evaluation.report`'s layout
    (labels, scores, study, run.json, decision.json, report/).

    Returns:
        Metadata with ``winner``: ``"candidate"`` (promote the candidate),
        ``"baseline"`` (no champion yet and the candidate failed the gate: the
        baseline becomes the first champion) or ``"none"`` (keep the champion);
        ``promoted_model``: the name of the model to promote ("" for none).
    """
    from dataclasses import replace

    from cohortlm.evaluation.comparisons import comparison_families, family_records, llm_pairs
    from cohortlm.evaluation.evaluate import roc_points
    from cohortlm.evaluation.gates import decide, load_policy
    from cohortlm.evaluation.render import write_report

    spec = study_from_text(study_yaml)
    raw = read_table(split_table, what="split table")
    labels = spec.labels(raw).set_axis(raw[spec.id_column].to_numpy())
    df = raw.set_index(spec.id_column)
    model_scores = {name: _load_scores(path, spec) for name, path in scores.items()}
    # Every model is judged on the same patients: those all of them scored.
    common = df.index[df["split"].isin(["validation", "test"])]
    for frame in model_scores.values():
        common = common.intersection(frame.index)
    df = df.loc[common]
    labels = labels.loc[common]
    model_scores = {name: frame.loc[common] for name, frame in model_scores.items()}
    pairs = llm_pairs(list(model_scores))
    if not pairs:
        raise DataError("no fine-tuned model to gate: the scores hold no '<base>+qlora' with its '<base>'")
    champion_name, champion_version = "baseline", None
    if model_store:
        from cohortlm.models.loaders import load_bundle
        from cohortlm.store.registry import champion as find_champion

        current = find_champion(model_store, spec.name)
        if current is not None:
            predictor = load_bundle(current, spec=spec)
            rows = df.reset_index()
            probs = predictor.predict_proba(rows)
            champion_version = predictor.version
            champion_name = f"champion_{predictor.kind}_{predictor.version}"
            model_scores[champion_name] = pd.DataFrame(
                probs[spec.endpoint_names].to_numpy(), index=rows[spec.id_column], columns=spec.endpoint_names
            )
    if champion_name not in model_scores:
        raise DataError("no champion to gate against: the baseline scores are missing")
    policy = load_policy(policy_path or None)
    contenders = [f for _, f in pairs] + (["baseline"] if champion_version is not None else [])
    candidate, selection = choose_candidate(
        labels,
        model_scores,
        contenders,
        df["split"],
        gating_split=policy.split,
        endpoints=spec.endpoint_names,
    )
    # Every decision is a look at the test split; the store's ledger counts them (gates.py).
    look, digest = 1, ""
    if model_store:
        from cohortlm.store.registry import next_look, record_look, split_hash

        digest = split_hash(df.index[df["split"] == policy.split])
        look = next_look(model_store, spec.name, digest)
    decision = decide(
        labels,
        model_scores[candidate],
        model_scores[champion_name],
        policy=policy,
        candidate_name=candidate,
        champion_name=champion_name,
        split=df["split"],
        endpoints=spec.endpoint_names,
        look=look,
        split_hash=digest,
    )
    gating = df.index[df["split"] == policy.split]
    families = comparison_families(labels, model_scores, rows=gating, endpoints=spec.endpoint_names)
    reasons = decision.reasons
    if selection:
        figures = ", ".join(
            f"{n} {v:.3f}" if v is not None else f"{n} -" for n, v in selection["mean_auc"].items()
        )
        reasons = (
            f"Candidate {candidate}: {selection['rule']} among {len(contenders)} ({figures}); "
            f"the {policy.split} split was not looked at to choose it.",
            *reasons,
        )
    decision = replace(decision, reasons=reasons, selection=selection, comparisons=family_records(families))
    if model_store:
        record_look(
            model_store,
            spec.name,
            split=digest,
            candidate=candidate,
            champion=champion_name,
            promote=decision.promote,
            look=look,
            alpha_look=decision.alpha_look,
        )

    out = Path(out_dir)
    (out / "scores").mkdir(parents=True, exist_ok=True)
    (out / "study.yaml").write_text(study_yaml)
    lab = labels.copy()
    lab.insert(0, "split", df["split"])
    lab.reset_index().to_parquet(out / "labels.parquet", index=False)
    for name, frame in model_scores.items():
        frame.reset_index().to_parquet(out / "scores" / f"{name}.parquet", index=False)
    # Legend order (and so colours): the baseline, each base zero-shot then fine-tuned, the champion.
    models: list[str] = ["baseline"] + [m for pair in pairs for m in pair]
    models += [m for m in model_scores if m not in models]
    llms = [{"zero_shot": z, "fine_tuned": f} for z, f in pairs]
    (out / "run.json").write_text(
        json.dumps(
            {"candidate": candidate, "champion": champion_name, "models": models, "llms": llms}, indent=2
        )
    )
    (out / "decision.json").write_text(decision.to_json())
    paths = write_report(out)
    # One ROC curve for KFP's ClassificationMetrics view (the figure has them all).
    test = df.index[df["split"] == "test"]
    first = spec.endpoint_names[0]
    y = labels.loc[test, first]
    keep = y.notna()
    pts = roc_points(y[keep].to_numpy(dtype=int), model_scores[candidate].loc[test, first][keep].to_numpy())
    pts.assign(endpoint=first, model=candidate).to_csv(out / "report" / "roc_points.csv", index=False)
    _write_html_report(out / "report", paths.roc_png, paths.table1_csv, decision.summary())
    if decision.promote:
        winner, promoted = "candidate", candidate
    elif champion_version is None:
        winner, promoted = "baseline", "baseline"
    else:
        winner, promoted = "none", ""
    return {
        "winner": winner,
        "promote": bool(decision.promote),
        "candidate": candidate,
        "champion": champion_name,
        "promoted_model": promoted,
    }


def _write_html_report(folder: Path, roc_png: Path, table1_csv: Path, summary: str) -> Path:
    """A self-contained HTML page (figure inlined) for KFP's HTML artifact viewer."""
    import base64
    import html

    image = base64.b64encode(roc_png.read_bytes()).decode()
    table = pd.read_csv(table1_csv).to_html(index=False, float_format=lambda x: f"{x:.3f}", border=0)
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>cohortlm report</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;font-size:12px}"
        "td,th{padding:2px 6px;border-bottom:1px solid #ddd;text-align:right}</style></head><body>"
        f"<h1>Gate decision</h1><pre>{html.escape(summary)}</pre>"
        f"<h1>ROC curves</h1><img style='max-width:100%' src='data:image/png;base64,{image}'>"
        f"<h1>Table 1</h1>{table}</body></html>"
    )
    path = folder / "report.html"
    path.write_text(page)
    return path


def promote_step(bundle_dir: str, model_store: str, decision_dir: str, model: str) -> dict[str, Any]:
    """Make ``bundle_dir`` the champion in the local model store (atomic).

    The promoted copy carries the gate's decision record and ``thresholds.json``:
    each endpoint's decision threshold for ``model``, chosen on the validation
    split (Table 1), which the server applies to its probabilities.
    """
    import tempfile

    from cohortlm.store.registry import promote

    decision = Path(decision_dir) / "decision.json"
    table1 = Path(decision_dir) / "report" / "table1.csv"
    with tempfile.TemporaryDirectory(prefix="promote-") as tmp:
        staged = copy_tree(bundle_dir, Path(tmp) / "bundle")  # inputs are never modified
        if table1.exists():
            from cohortlm.evaluation.evaluate import serving_thresholds

            rows = pd.read_csv(table1)
            study_file = Path(decision_dir) / "study.yaml"
            names = (
                study_from_text(study_file.read_text()).endpoint_names
                if study_file.exists()
                else list(dict.fromkeys(rows["endpoint"].astype(str)))
            )
            # Every endpoint gets a threshold; one that could not be chosen gets the serving
            # default, and thresholds_record.json says so (never dropped silently).
            thresholds, record = serving_thresholds(rows, model, names)
            (staged / "thresholds.json").write_text(json.dumps(thresholds, indent=2))
            (staged / "thresholds_record.json").write_text(json.dumps(record, indent=2))
        version = promote(staged, model_store, decision=decision if decision.exists() else None)
    return {"model_version": version, "model_store": model_store, "model": model}


def export_metrics_step(
    decision_dir: str, llm_bundles: Mapping[str, str], pushgateway: str, run_id: str
) -> str:
    """Push AUCs per model and endpoint, the verdict and training tokens/s to a Pushgateway.

    ``llm_bundles`` maps each fine-tuned model's name to its bundle; tokens/s are
    the gate candidate's when it is one of them, else the first's. Labels are
    model and endpoint names only: no patient identifier or value. Returns
    ``"pushed"`` or ``"skipped"`` (no gateway configured).
    """
    from cohortlm.run.metrics import push_run_metrics

    folder = Path(decision_dir)
    decision = json.loads((folder / "decision.json").read_text())
    table1 = pd.read_csv(folder / "report" / "table1.csv")
    aucs: dict[str, dict[str, float]] = {}
    for r in table1.itertuples():
        if pd.notna(r.auc):
            aucs.setdefault(str(r.model), {})[str(r.endpoint)] = float(r.auc)
    tps = None
    if llm_bundles:
        path = llm_bundles.get(str(decision.get("candidate")), next(iter(llm_bundles.values())))
        tps = json.loads((Path(path) / "bundle.json").read_text()).get("training", {}).get("tokens_per_s")
    study = yaml.safe_load((folder / "study.yaml").read_text())["name"]
    pushed = push_run_metrics(
        pushgateway or None,
        run_id=run_id or "local",
        study=study,
        aucs=aucs,
        decision_promoted=bool(decision.get("promote")),
        tokens_per_second=float(tps) if isinstance(tps, (int, float)) else None,
        # The validate step pushes its own counts (group cohortlm-validation), before a
        # failure stops the run; here they would only repeat them.
        validation_failures={},
    )
    return "pushed" if pushed else "skipped"


def _rule_label(name: str) -> str:
    """An expectation name as a label value: ``in_range(age)`` -> ``in_range:age``.

    Names are built from the spec's column and rule names, never from data values.
    """
    import re

    return re.sub(r"[^A-Za-z0-9_.:+-]", "", name.replace("(", ":").replace(",", ":"))[:100]


def validation_failures(report: Mapping[str, Any]) -> dict[str, int]:
    """Failing rows per expectation of a ``validation.json`` (0 where it passed).

    An expectation that fails as a whole (a missing column, a wrong type) has no
    row count; it counts every row then.
    """
    n_rows = int(report.get("n_rows") or 0)
    out: dict[str, int] = {}
    for e in report.get("expectations", []):
        count = e.get("unexpected_count")
        if e.get("success"):
            n = 0
        else:
            n = int(count) if isinstance(count, int) else int(e.get("element_count") or n_rows or 1)
        out[_rule_label(str(e["name"]))] = n
    return out


def push_validation_step(report_dir: str, study_yaml: str, pushgateway: str, run_id: str) -> str:
    """Push the failing rows per validation rule of ``report_dir/validation.json``.

    Returns:
        ``"pushed"``, ``"skipped"`` (no gateway) or ``"no report"`` (validation did not get
        as far as a report, e.g. the study spec was refused: the run outcome says so).
    """
    from cohortlm.run.metrics import push_validation_metrics

    path = Path(report_dir) / "validation.json"
    if not path.is_file():
        return "no report"
    report = json.loads(path.read_text())
    study = study_from_text(study_yaml).name
    pushed = push_validation_metrics(
        pushgateway or None, run_id=run_id or "local", study=study, failures=validation_failures(report)
    )
    return "pushed" if pushed else "skipped"


def report_run_outcome_step(state: str, study_yaml: str, pushgateway: str, run_id: str) -> str:
    """The exit handler's work: push whether the run succeeded (KFP final state ``SUCCEEDED``).

    Returns:
        ``"pushed <state>"`` or ``"skipped <state>"`` (no gateway configured).
    """
    from cohortlm.run.metrics import push_run_outcome

    study = study_from_text(study_yaml).name
    succeeded = state.upper() == "SUCCEEDED"
    pushed = push_run_outcome(pushgateway or None, run_id=run_id or "local", study=study, succeeded=succeeded)
    return f"{'pushed' if pushed else 'skipped'} {state.upper()}"


def copy_tree(src: str | Path, dst: str | Path) -> Path:
    """Copy a folder (replacing ``dst``), used to collect artifacts into a run folder."""
    d = Path(dst)
    if d.exists():
        shutil.rmtree(d)
    shutil.copytree(src, d)
    return d
