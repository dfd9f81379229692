"""A run folder, read: what the pipeline's gate step writes and ``cohortlm report RUN_DIR`` reads back.

Run folder layout (what the pipeline writes and ``cohortlm report RUN_DIR`` reads)::

    RUN_DIR/
      labels.parquet        one row per patient: <id column>, split, one column per endpoint
                            (0, 1 or empty). labels.csv is read when there is no Parquet file.
      scores/<model>.parquet
                            one file per model, file stem = model name: <id column>, one column
                            per endpoint with the predicted probability of a case (a split
                            column, if present, is ignored; labels.parquet's split rules).
                            scores/<model>.csv likewise.
      study.yaml            optional: the study spec (id column, endpoint order, definitions);
                            without it the id column is ``patient_id`` and the endpoints are
                            the label columns other than id and split.
      run.json              optional: {"candidate": "<model>", "champion": "<model>",
                            "models": ["<model>", ...]} (legend order; default sorted names).
      policy.yaml           optional: the GatePolicy; the packaged default otherwise.
      summary.json          optional: what ``cohortlm run`` records at the end (run id, profile,
                            wall time); the report names the run and warns on a smoke run.
      validation/validation.json
                            optional: the validation step's report; its summary goes into
                            index.html (expectation names and row counts, never values).
      threshold_pool/       optional: labels.parquet and scores/<model>.parquet of the patients pooled
                            with validation to choose thresholds (the regression's out-of-fold
                            training scores, written by the gate step)
      subgroup_levels.parquet
                            optional: each gated patient's level in every subgroup the study
                            declares (levels such as ``>=65``, never the values); the report's
                            subgroups.csv is computed from it
      decision.json         optional: the gate's Decision record (cohortlm.evaluation.gate). When it is
                            absent and run.json names a candidate and a champion, the report
                            computes the decision and writes it to report/decision.json.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from cohortlm import contracts
from cohortlm.cohort.study import StudySpec, load_study
from cohortlm.errors import DataError, SpecError, UsageError
from cohortlm.evaluation.evaluate import ThresholdPool
from cohortlm.evaluation.gate import Decision, GatePolicy

__all__ = ["DEFAULT_ID_COLUMN", "SPLIT_COLUMN", "RunData", "read_run_dir"]

SPLIT_COLUMN = "split"
DEFAULT_ID_COLUMN = "patient_id"


@dataclass
class RunData:
    """A run folder's contents in memory."""

    labels: pd.DataFrame
    split: pd.Series
    scores: dict[str, pd.DataFrame]
    endpoints: list[str]
    study: StudySpec | None = None
    candidate: str | None = None
    champion: str | None = None
    policy: GatePolicy | None = None
    decision: Decision | None = None
    #: summary.json (run id, profile, wall time), when the run folder has one
    run_info: dict[str, Any] | None = None
    #: validation/validation.json, when the run folder has one
    validation: dict[str, Any] | None = None
    #: threshold_pool/: the out-of-fold training scores the gate step pooled for thresholds
    threshold_pool: ThresholdPool | None = None
    #: subgroup_levels.parquet: each gated patient's level in every declared subgroup, by id
    subgroup_levels: pd.DataFrame | None = None


def _read_table(stem: Path, what: str) -> pd.DataFrame:
    for suffix, reader in ((".parquet", pd.read_parquet), (".csv", pd.read_csv)):
        path = stem.with_suffix(suffix)
        if path.is_file():
            try:
                return reader(path)
            except Exception as exc:  # pyarrow and pandas raise many types for a bad file
                raise DataError(f"{path}: cannot read {what} ({type(exc).__name__})") from None
    raise UsageError(f"{stem}.parquet (or .csv) not found: the run folder needs {what}")


def read_run_dir(run_dir: str | Path) -> RunData:
    """Read a run folder (layout in the module docstring).

    Args:
        run_dir: The run folder.

    Returns:
        A :class:`RunData` indexed by patient id.

    Raises:
        UsageError: If the folder, the labels or the scores are missing.
        DataError: If a table cannot be read or lacks the id, split or an endpoint column.
        SpecError: If study.yaml, run.json, policy.yaml or decision.json is invalid.
    """
    root = Path(run_dir)
    if not root.is_dir():
        raise UsageError(f"run folder not found: {root}")
    study = load_study(root / contracts.STUDY_FILE) if (root / contracts.STUDY_FILE).is_file() else None
    id_col = study.id_column if study is not None else DEFAULT_ID_COLUMN
    labels, split, endpoints = _read_labels(root, id_col, study)
    scores = _read_scores(root, id_col)
    run = _read_run_json(root)
    legend = [m for m in run.get("models", []) if m in scores]
    scores = {m: scores[m] for m in legend + sorted(m for m in scores if m not in legend)}
    for key in ("candidate", "champion"):
        if run.get(key) is not None and run[key] not in scores:
            raise SpecError(
                f"{root / contracts.RUN_FILE}: {key} '{run[key]}' has no {contracts.scores_file(run[key])}"
            )
    decision = None
    if (root / contracts.DECISION_FILE).is_file():
        decision = Decision.from_json((root / contracts.DECISION_FILE).read_text(encoding="utf-8"))
    return RunData(
        labels=labels,
        split=split,
        scores=scores,
        endpoints=endpoints,
        study=study,
        candidate=run.get("candidate"),
        champion=run.get("champion"),
        policy=GatePolicy.from_yaml(root / "policy.yaml") if (root / "policy.yaml").is_file() else None,
        decision=decision,
        run_info=_optional_json(root / contracts.SUMMARY_FILE),
        validation=_optional_json(root / "validation" / "validation.json"),
        threshold_pool=_read_threshold_pool(root, id_col),
        subgroup_levels=_read_subgroup_levels(root, id_col),
    )


def _read_subgroup_levels(root: Path, id_col: str) -> pd.DataFrame | None:
    """``subgroup_levels.parquet`` by patient id, when the study declares subgroups."""
    path = root / contracts.SUBGROUP_LEVELS_FILE
    if not path.is_file():
        return None
    levels = _read_table(path.with_suffix(""), "the subgroup levels")
    if id_col not in levels.columns:
        raise DataError(f"{path}: no '{id_col}' column")
    return levels.set_index(id_col)


def _read_threshold_pool(root: Path, id_col: str) -> ThresholdPool | None:
    """``threshold_pool/`` (labels and out-of-fold scores by patient id), when the run folder has it."""
    folder = root / "threshold_pool"
    if not (folder / contracts.LABELS_FILE).is_file():
        return None
    labels = _read_table(folder / "labels", "the threshold pool's labels")
    if id_col not in labels.columns:
        raise DataError(f"{folder / contracts.LABELS_FILE}: no '{id_col}' column")
    scores = _read_scores(folder, id_col) if (folder / contracts.SCORES_DIR).is_dir() else {}
    return ThresholdPool(labels.set_index(id_col), scores, "train (out-of-fold)")


def _read_labels(
    root: Path, id_col: str, study: StudySpec | None
) -> tuple[pd.DataFrame, pd.Series, list[str]]:
    """``labels``: the label table by patient id, its split column and the endpoints, checked."""
    labels = _read_table(root / "labels", "labels")
    for col in (id_col, SPLIT_COLUMN):
        if col not in labels.columns:
            raise DataError(f"{root / 'labels'}: no '{col}' column")
    if labels[id_col].duplicated().any():
        raise DataError(
            f"{root / 'labels'}: '{id_col}' has {int(labels[id_col].duplicated().sum())} duplicate(s)"
        )
    labels = labels.set_index(id_col)
    split = labels.pop(SPLIT_COLUMN).astype(str)
    if study is not None:
        endpoints = [e for e in study.endpoint_names if e in labels.columns]
        missing = [e for e in study.endpoint_names if e not in labels.columns]
        if missing:
            raise DataError(f"{root / 'labels'}: no column for endpoint(s) {', '.join(missing)}")
    else:
        endpoints = [str(c) for c in labels.columns]
    if not endpoints:
        raise DataError(f"{root / 'labels'}: no endpoint columns")
    return labels, split, endpoints


def _read_scores(root: Path, id_col: str) -> dict[str, pd.DataFrame]:
    """``scores/<model>``: one table per model, by patient id."""
    score_dir = root / contracts.SCORES_DIR
    files = (
        sorted(p for p in score_dir.glob("*") if p.suffix in (".parquet", ".csv"))
        if score_dir.is_dir()
        else []
    )
    if not files:
        raise UsageError(f"{score_dir}: no <model>.parquet or <model>.csv score files")
    scores: dict[str, pd.DataFrame] = {}
    for path in files:
        frame = _read_table(path.with_suffix(""), f"scores of model '{path.stem}'")
        if id_col not in frame.columns:
            raise DataError(f"{path}: no '{id_col}' column")
        if frame[id_col].duplicated().any():
            raise DataError(f"{path}: '{id_col}' has duplicates")
        scores.setdefault(path.stem, frame.set_index(id_col).drop(columns=[SPLIT_COLUMN], errors="ignore"))
    return scores


def _read_run_json(root: Path) -> dict[str, Any]:
    """``run.json`` (candidate, champion, legend order), or an empty record when there is none."""
    if not (root / contracts.RUN_FILE).is_file():
        return {}
    try:
        run = json.loads((root / contracts.RUN_FILE).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise SpecError(f"{root / contracts.RUN_FILE}: not valid JSON ({exc.msg})") from None
    if not isinstance(run, dict):
        raise SpecError(f"{root / contracts.RUN_FILE}: must be a JSON object")
    return run


def _optional_json(path: Path) -> dict[str, Any] | None:
    """A JSON object from ``path``; None when the file is absent."""
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise SpecError(f"{path}: not valid JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise SpecError(f"{path}: must be a JSON object")
    return data
