"""The pipeline's steps as plain functions over files: what each KFP component calls.

Every step reads its inputs from paths, writes its outputs to paths and returns
a small dict of metadata that the component attaches to its output artifact.
Nothing here imports kfp, kserve or feast, so each step is unit-tested without
a cluster, and a retried step rewrites the same outputs (idempotent).

Steps take the study as a :class:`~cohortlm.cohort.study.StudySpec`: the pipeline's
``study_yaml`` parameter is validated once, by :func:`study_step`, whose output (the
study artifact) each component loads once and hands on as the object. Each step
returns what it measured, its own wall time included (``seconds``), for the
component to attach to its output artifact; the gate step returns a typed
:class:`~cohortlm.run.outcome.GateOutcome`.
"""

from __future__ import annotations

import functools
import json
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec

import pandas as pd
import yaml

from cohortlm.cohort.io import read_provenance, read_table, write_table
from cohortlm.cohort.study import StudySpec, study_from_dict
from cohortlm.contracts import (
    DECISION_FILE,
    LABELS_FILE,
    RUN_FILE,
    SCORES_DIR,
    STUDY_FILE,
    SUBGROUP_LEVELS_FILE,
    THRESHOLDS_FILE,
    scores_file,
)
from cohortlm.errors import DataError, SpecError
from cohortlm.models.training import TrainingFigures
from cohortlm.run.gate_inputs import (
    GateInputs,
    add_champion,
    baseline_internal_validation,
    decide_against_champion,
    gate_inputs,
    subgroup_levels_of,
    subgroup_rows,
)
from cohortlm.run.outcome import GateOutcome
from cohortlm.yamlsafe import load_yaml_text

if TYPE_CHECKING:
    from cohortlm.evaluation.gate import Decision
    from cohortlm.models.llm.bases import BaseModel
    from cohortlm.run.profiles import Profile

_P = ParamSpec("_P")


def study_text(spec: StudySpec) -> str:
    """The spec as YAML text: the pipeline's ``study_yaml`` parameter, which the study step reads once.

    YAML, not a JSON dict parameter: a category code map (``{1: male, 2: female}``)
    keeps its integer codes, which a JSON object's string keys would not.
    """
    return yaml.safe_dump(spec.to_dict(), sort_keys=False)


def study_step(study_yaml: str, out: str) -> dict[str, Any]:
    """Validate the pipeline's ``study_yaml`` parameter once; write it as the run's study artifact.

    Every later step reads the artifact (:func:`~cohortlm.cohort.study.load_study`, once
    per process), so the spec is a versioned input in the run's lineage.
    """
    source = "the pipeline's study_yaml parameter"
    spec = study_from_dict(load_yaml_text(study_yaml, source=source), source=source)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(study_text(spec))
    return {"study": spec.name, "version": spec.version, "spec_hash": spec.spec_hash}


def timed(step: Callable[_P, dict[str, Any]]) -> Callable[_P, dict[str, Any]]:
    """Add the step's own wall time (``seconds``) to the metadata it returns."""

    @functools.wraps(step)
    def run(*args: _P.args, **kwargs: _P.kwargs) -> dict[str, Any]:
        started = time.perf_counter()
        info = step(*args, **kwargs)
        return {**info, "seconds": round(time.perf_counter() - started, 2)}

    return run


# ----------------------------------------------------------------------------- data


@timed
def featurise_step(raw: str, spec: StudySpec, out: str) -> dict[str, Any]:
    """Raw registry folder (or flat file) -> one row per eligible patient.

    The cohort file keeps the input's provenance in its metadata
    (:func:`~cohortlm.cohort.featurise.data_provenance`: the synthetic cohort says so, a
    user's data is not synthetic), for the split and gate steps; ``synthetic`` reports it.
    """
    from cohortlm.cohort.featurise import featurise

    result = featurise(raw, spec)
    write_table(result.table, out, provenance=result.provenance)
    return {
        "n_input": result.n_input,
        "n_included": result.n_included,
        **result.exclusions,
        "synthetic": bool(result.provenance["synthetic"]),
    }


@timed
def validate_step(cohort: str, spec: StudySpec, report_dir: str) -> dict[str, Any]:
    """Validate the featurised cohort with Great Expectations; raise DataError when it fails.

    The report (JSON + HTML, no patient values) is written either way, so a
    failed run still shows which expectations broke and for how many rows.
    """
    import logging

    # KFP's executor logs at INFO; GX's import chatter is noise there.
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    from cohortlm.cohort.validation import validate_table, write_report

    result = validate_table(read_table(cohort, what="cohort"), spec)
    write_report(result, report_dir)
    if not result.success:
        raise DataError(result.summary())
    return {
        "expectations": len(result.outcomes),
        "failed": len(result.failed),
        "rows": result.n_rows,
        "validation_seconds": round(result.seconds, 2),
    }


@timed
def split_step(
    table: str, spec: StudySpec, out: str, *, split_override: Mapping[str, float] | None = None
) -> dict[str, Any]:
    """Add the seeded patient-level ``split`` column; ``split_override`` replaces the spec's sizes.

    The split table keeps ``table``'s provenance (whether the data is synthetic), which the
    gate step reads.
    """
    from cohortlm.cohort.split import split_table

    if split_override:
        spec = spec.with_split(split_override, source="split_override")
    df = split_table(read_table(table, what="training table"), spec)
    write_table(df, out, provenance=read_provenance(table))
    counts = df["split"].value_counts()
    return {k: int(counts.get(k, 0)) for k in ("train", "validation", "test")}


def scores_frame(df: pd.DataFrame, probabilities: pd.DataFrame, spec: StudySpec) -> pd.DataFrame:
    """The scores table layout: id column, split, one probability column per endpoint."""
    out = pd.DataFrame({spec.id_column: df[spec.id_column].to_numpy(), "split": df["split"].to_numpy()})
    for e in spec.endpoint_names:
        out[e] = probabilities[e].to_numpy(dtype=float)
    return out


# ----------------------------------------------------------------------------- models


@timed
def train_baseline_step(
    split_table: str, spec: StudySpec, bundle_dir: str, scores_out: str
) -> dict[str, Any]:
    """Logistic regression per endpoint on the train split; scores for every split.

    The training rows' scores are out of fold (:func:`~cohortlm.models.baseline.out_of_fold_proba`):
    the gate pools them with validation's to choose the baseline's thresholds, which
    in-sample scores of the patients it was fitted on would bias.
    """
    from cohortlm.models.baseline import out_of_fold_proba, train_baseline

    df = read_table(split_table, what="split table")
    train = df["split"] == "train"
    model = train_baseline(df[train], spec)
    model.save(bundle_dir)
    probabilities = model.predict_proba(df)
    probabilities.loc[train.to_numpy(), spec.endpoint_names] = out_of_fold_proba(df[train], spec).to_numpy()
    write_table(scores_frame(df, probabilities, spec), scores_out)
    return {
        "kind": "baseline",
        "model": "baseline",
        "n_train": int(train.sum()),
        "train_scores": "out-of-fold",
    }


def eval_rows(df: pd.DataFrame, profile: str | Profile) -> pd.DataFrame:
    """The rows the LLMs score: validation (thresholds) and test (metrics, gate).

    The ``quick`` profile scores a seeded subset of the test split to fit a CPU
    budget; every model is then compared on exactly those patients. Scoring
    the training split would cost the most time and is used by nothing.
    """
    from cohortlm.run.profiles import as_profile, eval_subset

    prof = as_profile(profile)
    validation = df[df["split"] == "validation"]
    test = eval_subset(df[df["split"] == "test"], prof)
    return pd.concat([validation, test])


def base_for(base_model: str, profile: str | Profile) -> BaseModel:
    """The :class:`~cohortlm.models.llm.bases.BaseModel` of a pipeline item ``NAME=SOURCE``."""
    from cohortlm.models.llm.bases import parse_base
    from cohortlm.run.profiles import as_profile

    return parse_base(base_model, profile_default=as_profile(profile).base_model)


@timed
def score_zero_shot_step(
    split_table: str, spec: StudySpec, profile: str | Profile, base_model: str, scores_out: str
) -> dict[str, Any]:
    """Zero-shot P(Yes) of the base model for the validation and (profile's) test rows.

    ``base_model`` is one item of the pipeline's ``base_models`` (``NAME=SOURCE``,
    a path, or empty for the profile's model); the scores are model ``NAME``.
    """
    from cohortlm.models.llm.scoring import zero_shot_scorer
    from cohortlm.run.profiles import as_profile

    prof = as_profile(profile)  # a name, a file, or the pipeline's resolved recipe
    base = base_for(base_model, prof)
    df = eval_rows(read_table(split_table, what="split table"), prof)
    # Scored like the fine-tuned model (same dtype, same frozen trunk), so that the
    # two differ by the adapters only and share the trunk states of these rows.
    scorer = zero_shot_scorer(
        prof.base_model_or(base.source or None),
        spec,
        compute_dtype=prof.qlora.compute_dtype,
        lora_layers=prof.qlora.lora_layers if prof.qlora.cache_trunk else None,
        prompt_version=prof.qlora.prompt_version,
        quantization=prof.qlora.quantization,
        blocks=prof.qlora.base_blocks,
    )
    probs = scorer.score(df, batch_size=prof.score_batch_size, progress=True)
    write_table(scores_frame(df, probs, spec), scores_out)
    return {"n_scored": len(df), "model": base.name, "base_model": scorer.name}


@timed
def train_llm_step(
    split_table: str,
    spec: StudySpec,
    profile: str | Profile,
    base_model: str,
    bundle_dir: str,
    work_dir: str,
) -> dict[str, Any]:
    """(Q)LoRA fine-tuning on the train split; writes an LLM bundle.

    Training runs in ``work_dir`` (checkpoints there), so a retried task
    resumes where the killed one stopped; the finished bundle is then copied
    to ``bundle_dir``. The metadata holds the bundle's :class:`TrainingFigures`
    (tokens/s, training time, peak memory, losses) by their names.
    """
    from cohortlm.models.llm.qlora import train_qlora
    from cohortlm.run.profiles import as_profile

    prof = as_profile(profile)  # a name, a file, or the pipeline's resolved recipe
    base = base_for(base_model, prof)
    df = read_table(split_table, what="split table")
    trained = train_qlora(
        df[df["split"] == "train"],
        spec,
        prof.qlora,
        out_dir=Path(work_dir) / base.name / "bundle",
        base_model=prof.base_model_or(base.source or None),
    )
    record_recipe(trained, prof)
    copy_tree(trained, bundle_dir)
    return llm_bundle_info(bundle_dir, model=base.fine_tuned)


def record_recipe(bundle_dir: str | Path, recipe: Profile) -> None:
    """Write the resolved recipe into the bundle's ``bundle.json`` (``recipe``), beside its training record.

    ``training.config`` is the fine-tune's part; ``recipe`` is the whole profile it ran
    with (the ``--set`` overrides applied), so a bundle says how to make it again.
    """
    from cohortlm.models.bundle import BUNDLE_FILE

    path = Path(bundle_dir) / BUNDLE_FILE
    meta = json.loads(path.read_text(encoding="utf-8"))
    meta["recipe"] = recipe.to_dict()
    tmp = path.with_name(BUNDLE_FILE + ".tmp")
    tmp.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)


def llm_bundle_info(bundle_dir: str | Path, *, model: str) -> dict[str, Any]:
    """A trained LLM bundle's artifact metadata: kind, version, model name and training figures."""
    from cohortlm.models.bundle import read_bundle_metadata

    info = read_bundle_metadata(bundle_dir)
    figures = TrainingFigures.from_record(info.get("training") or {})
    version = info.get("model_version", "")
    recipe = {"recipe": info["recipe"]} if isinstance(info.get("recipe"), dict) else {}
    return {"kind": "llm", "model_version": version, **figures.scalars(), "model": model, **recipe}


@timed
def score_bundle_step(
    bundle_dir: str, split_table: str, scores_out: str, profile: str | Profile
) -> dict[str, Any]:
    """Score the validation and (profile's) test rows with a saved bundle (baseline or LLM)."""
    from cohortlm.models.llm.scoring import LLMPredictor
    from cohortlm.models.loaders import load_bundle, score_table
    from cohortlm.run.profiles import as_profile

    prof = as_profile(profile)
    predictor = load_bundle(bundle_dir)
    if isinstance(predictor, LLMPredictor):
        predictor.scorer.enable_trunk_cache()
    df = eval_rows(read_table(split_table, what="split table"), prof)
    table = score_table(predictor, df, predictor.spec, batch_size=prof.score_batch_size)
    write_table(table, scores_out)
    return {"n_scored": len(df), "model_version": predictor.version}


# ----------------------------------------------------------------------------- evaluate and gate


def _write_threshold_pool(out: Path, inputs: GateInputs, spec: StudySpec) -> None:
    """``threshold_pool/``: the labels and out-of-fold scores pooled with validation for thresholds.

    ``cohortlm report RUN_DIR`` reads them back, so a re-rendered Table 1 chooses the
    same thresholds as the gate step did (layout: ``labels.parquet``, ``scores/<model>.parquet``).
    """
    pool = inputs.threshold_pool
    if pool is None:
        return
    (out / "threshold_pool" / SCORES_DIR).mkdir(parents=True, exist_ok=True)
    pool.labels.rename_axis(spec.id_column).reset_index().to_parquet(
        out / "threshold_pool" / LABELS_FILE, index=False
    )
    for name, frame in pool.scores.items():
        frame.rename_axis(spec.id_column).reset_index().to_parquet(
            out / "threshold_pool" / scores_file(name), index=False
        )


def _write_run_files(
    out: Path, inputs: GateInputs, spec: StudySpec, models: list[str], decision: Decision
) -> None:
    """The run folder's data files, for people and ``cohortlm report`` (nothing here reads them back)."""
    (out / SCORES_DIR).mkdir(parents=True, exist_ok=True)
    (out / STUDY_FILE).write_text(study_text(spec))
    lab = inputs.labels.copy()
    lab.insert(0, "split", inputs.split)
    lab.rename_axis(spec.id_column).reset_index().to_parquet(out / LABELS_FILE, index=False)
    for name, frame in inputs.scores.items():
        table = frame.rename_axis(spec.id_column).reset_index()
        table.to_parquet(out / scores_file(name), index=False)
    levels = subgroup_levels_of(inputs, spec)
    if levels is not None:  # so that `cohortlm report RUN_DIR` re-renders subgroups.csv
        levels.rename_axis(spec.id_column).reset_index().to_parquet(out / SUBGROUP_LEVELS_FILE, index=False)
    llms = [{"zero_shot": z, "fine_tuned": f} for z, f in inputs.pairs]
    run = {"candidate": decision.candidate, "champion": decision.champion, "models": models, "llms": llms}
    (out / RUN_FILE).write_text(json.dumps(run, indent=2))


def evaluate_step(
    split_table: str,
    spec: StudySpec,
    scores: Mapping[str, str],
    out_dir: str,
    *,
    model_store: str = "",
    policy_path: str = "",
    training: Mapping[str, TrainingFigures] | None = None,
    validation_dir: str = "",
    profile: str | None = None,
    run_id: str = "",
    recipe: Mapping[str, Any] | None = None,
) -> GateOutcome:
    """Table 1, ROC figure, the comparison families and the gate decision against the champion.

    ``scores`` maps every model's name to its score table: ``baseline`` and, per
    base LLM, ``<base>`` (zero-shot) and ``<base>+qlora`` (fine-tuned);
    ``training`` each fine-tuned model's training figures, carried to the outcome;
    ``validation_dir`` the validate step's folder (its summary goes into the page);
    ``profile`` and ``run_id`` name the run on the page (a smoke run's AUCs mean nothing);
    ``recipe`` is the resolved recipe the LLMs ran, recorded in the outcome.

    The champion is the bundle now serving from ``model_store`` when there is
    one (scored here on this run's split); otherwise the baseline trained in
    this run. The candidate is one of the fine-tuned models or, when a champion
    serves, this run's freshly trained baseline too (retraining the champion's
    kind of model on new data is the common case); with several, it is chosen
    on the validation split (:func:`choose_candidate`), never on the gating one.
    ``out_dir`` becomes a run folder in :mod:`cohortlm.evaluation.report`'s layout
    (labels, scores, study, run.json, decision.json, outcome.json, report/),
    its report rendered from what was computed here, not read back.

    Returns:
        The :class:`GateOutcome` (also written to ``out_dir/outcome.json``).
    """
    from cohortlm.evaluation.comparisons import comparison_families, family_records
    from cohortlm.evaluation.render import render_report
    from cohortlm.evaluation.report import compute_report

    inputs = gate_inputs(split_table, spec, scores)
    add_champion(inputs, spec, model_store)
    decision = decide_against_champion(inputs, spec, model_store=model_store, policy_path=policy_path)
    # Legend order (and so colours): the baseline, each base zero-shot then fine-tuned, the champion.
    models: list[str] = ["baseline"] + [m for pair in inputs.pairs for m in pair]
    models += [m for m in inputs.scores if m not in models]
    report = compute_report(
        inputs.labels,
        {m: inputs.scores[m] for m in models},
        inputs.split,
        endpoints=spec.endpoint_names,
        study=spec,
        decision=decision,
        profile=profile,
        threshold_pool=inputs.threshold_pool,
    )
    # The record's families are on the gating split: the report's when it is the evaluation split.
    families = report.families
    if decision.policy.split != report.evaluation.eval_split:
        gating = inputs.split.index[inputs.split == decision.policy.split]
        families = comparison_families(
            inputs.labels, inputs.scores, rows=gating, endpoints=spec.endpoint_names
        )
    decision = replace(decision, comparisons=family_records(families))
    subgroups = subgroup_rows(inputs, spec, models, report.evaluation.eval_split or decision.policy.split)
    report = replace(
        report,
        decision=decision,
        cohort=inputs.cohort,
        subgroups=subgroups,
        internal_validation=baseline_internal_validation(inputs, spec),
    )
    out = Path(out_dir)
    _write_run_files(out, inputs, spec, models, decision)
    _write_threshold_pool(out, inputs, spec)
    (out / DECISION_FILE).write_text(decision.to_json())
    outcome = GateOutcome.build(
        study=spec.name,
        endpoints=spec.endpoint_names,
        decision=decision,
        evaluation=report.evaluation,
        models=models,
        first_champion=inputs.champion_version is None,
        training=training,
        recipe=recipe,
        cohort=inputs.cohort,
        subgroups=subgroups,
        internal_validation=report.internal_validation,
    )
    outcome.write(out)
    validation = Path(validation_dir) / "validation.json" if validation_dir else None
    render_report(
        report,
        out / "report",
        run_info={"study": spec.name, "run_id": run_id, "profile": profile},
        validation=json.loads(validation.read_text()) if validation and validation.is_file() else None,
        study_name=spec.name,
    )
    return outcome


def gated_champion_version(outcome: GateOutcome) -> str | None:
    """The version of the champion the gate compared against; None when none served.

    With no champion, this run's baseline stands in (named ``baseline``); a serving one is
    named ``champion_<kind>_<version>`` by :func:`_add_champion`.
    """
    import re

    match = re.fullmatch(r"champion_[a-z0-9]+_(.+)", outcome.champion)
    return match.group(1) if match else None


def promote_step(bundle_dir: str, model_store: str, outcome: GateOutcome) -> dict[str, Any]:
    """Make ``bundle_dir`` (the outcome's promoted model) the champion in the local model store (atomic).

    The promoted copy carries the gate's decision record, ``thresholds.json``
    (each endpoint's threshold for the promoted model, chosen on the validation
    split, which the server applies to its probabilities) and
    ``thresholds_record.json`` (where each came from; an endpoint without one gets
    the serving default, and the record says so), and the model card
    (``model_card.json`` and ``model_card.md``, :mod:`cohortlm.models.model_card`),
    which the manifest and signature cover like every other file.

    The champion pointer moves only if it still names the champion the gate compared
    against (:func:`gated_champion_version`): when another run promoted in between, this
    raises :class:`cohortlm.store.registry.ChampionChangedError` and nothing changes.
    """
    import tempfile

    from cohortlm.models.model_card import write_model_card
    from cohortlm.store.registry import promote

    if not outcome.promoted_model:
        raise DataError("the gate promoted nothing (winner 'none'): there is no bundle to promote")
    with tempfile.TemporaryDirectory(prefix="promote-") as tmp:
        staged = copy_tree(bundle_dir, Path(tmp) / "bundle")  # inputs are never modified
        record = {ep: dict(outcome.serving_thresholds[ep]) for ep in outcome.endpoints}
        thresholds = {ep: float(r["threshold"]) for ep, r in record.items()}
        (staged / THRESHOLDS_FILE).write_text(json.dumps(thresholds, indent=2))
        (staged / "thresholds_record.json").write_text(json.dumps(record, indent=2))
        # Before the store's manifest and signature are made, so that both cover the card.
        write_model_card(staged, outcome.to_dict())
        version = promote(
            staged,
            model_store,
            decision=outcome.decision.to_dict(),
            expected_champion=gated_champion_version(outcome),
        )
    return {"model_version": version, "model_store": model_store, "model": outcome.promoted_model}


def export_metrics_step(outcome: GateOutcome, pushgateway: str, run_id: str) -> str:
    """Push AUCs per model and endpoint, the verdict and training tokens/s to a Pushgateway.

    Tokens/s are the gate candidate's when it is a fine-tuned model, else the
    first fine-tuned model's. Labels are model and endpoint names only: no
    patient identifier or value. Returns ``"pushed"`` or ``"skipped"`` (no
    gateway configured).
    """
    from cohortlm.run.metrics import push_run_metrics

    figures = outcome.training.get(outcome.candidate) or next(iter(outcome.training.values()), None)
    pushed = push_run_metrics(
        pushgateway or None,
        run_id=run_id or "local",
        study=outcome.study,
        aucs=outcome.aucs(),
        decision_promoted=outcome.promote,
        tokens_per_second=figures.tokens_per_s if figures is not None else None,
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


def push_validation_step(report_dir: str, spec: StudySpec, pushgateway: str, run_id: str) -> str:
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
    pushed = push_validation_metrics(
        pushgateway or None, run_id=run_id or "local", study=spec.name, failures=validation_failures(report)
    )
    return "pushed" if pushed else "skipped"


def report_run_outcome_step(state: str, study_yaml: str, pushgateway: str, run_id: str) -> str:
    """The exit handler's work: push whether the run succeeded (KFP final state ``SUCCEEDED``).

    Returns:
        ``"pushed <state>"`` or ``"skipped <state>"`` (no gateway configured).
    """
    from cohortlm.run.metrics import push_run_outcome

    # The exit handler runs even when the study step failed: only the name is read, not validated.
    try:
        study = load_yaml_text(study_yaml, source="study_yaml")
    except SpecError:
        study = None
    name = study.get("name") if isinstance(study, dict) else None
    succeeded = state.upper() == "SUCCEEDED"
    pushed = push_run_outcome(
        pushgateway or None, run_id=run_id or "local", study=str(name or "unknown"), succeeded=succeeded
    )
    return f"{'pushed' if pushed else 'skipped'} {state.upper()}"


def copy_tree(src: str | Path, dst: str | Path) -> Path:
    """Copy a folder (replacing ``dst``), used to collect artifacts into a run folder."""
    d = Path(dst)
    if d.exists():
        shutil.rmtree(d)
    shutil.copytree(src, d)
    return d
