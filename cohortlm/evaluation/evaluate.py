"""Evaluation of per-endpoint probabilities: AUC with CI, Table 1 threshold metrics, calibration, ROC.

Two layers:

- array functions (:mod:`cohortlm.evaluation.endpoint_metrics`: ``choose_threshold``,
  ``threshold_metrics``, ``brier_score``, ``calibration_data``, ``roc_points``) take
  one endpoint's labels and scores;
- :func:`evaluate` takes plain DataFrames for a whole study and returns an
  :class:`Evaluation` (Table 1 as a DataFrame, ROC and calibration data per
  endpoint and model). It reads no files, so a KFP component or the report
  can call it on data already in memory.

DataFrame inputs (all indexed by patient id, in any order):

- ``labels``: one column per endpoint, values 0, 1 or NaN (NaN = no label for
  that endpoint; those rows are dropped for that endpoint only);
- ``scores``: ``{model name: DataFrame}`` with the same endpoint columns, the
  predicted probability of a case; every labelled patient needs a score;
- ``split``: a Series of split names (``train``, ``validation``, ``test``).

Table 1 follows seed 000: the decision threshold is chosen on the validation
split (Youden's J by default) and applied unchanged to the test split, where
sensitivity, specificity, PPV, NPV, precision, recall, F1 and accuracy are
counted; a patient is predicted a case when ``score >= threshold``. AUC (with
the logit-transformed DeLong CI, :func:`cohortlm.evaluation.stats.delong.auc_interval`) and
Brier score are computed on the test split.

Thresholds on few cases: the RA study's validation split has 102 patients, so a
3.4 % endpoint has about 3 cases there. When the threshold split holds fewer
than ``threshold_min_cases`` cases (or controls) of an endpoint and the model
has scores for labelled rows of ``threshold_fallback_split`` (the training
split: the baseline scores it; an LLM run scores only validation and test), the
threshold is chosen on both splits pooled. Where the threshold came from is
stated per endpoint and model (``threshold_source`` in Table 1, and
:attr:`Evaluation.thresholds`); a threshold that cannot be chosen at all is NaN
in Table 1 and named in the notes, and :func:`serving_thresholds` writes the
serving default for it with the reason, never leaving it out silently.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from cohortlm.errors import DataError, UsageError
from cohortlm.evaluation.decision_curve import DECISION_CURVE_COLUMNS, decision_curve, threshold_grid
from cohortlm.evaluation.endpoint_metrics import (
    ThresholdMetrics,
    brier_score,
    calibration_data,
    choose_threshold,
    roc_points,
    threshold_metrics,
)
from cohortlm.evaluation.intervals import THRESHOLD_METRICS, threshold_metric_intervals
from cohortlm.evaluation.stats.calibration import CALIBRATION_COLUMNS, calibration_summary
from cohortlm.evaluation.stats.delong import AUCResult, DeLongWarning, auc_ci

__all__ = [
    "COUNT_COLUMNS",
    "DECLARED_SOURCE",
    "TABLE1_AUC_COLUMNS",
    "TABLE1_COLUMNS",
    "Evaluation",
    "ThresholdPool",
    "endpoint_arrays",
    "evaluate",
    "serving_thresholds",
]

DEFAULT_SERVING_THRESHOLD = 0.5
#: ``threshold_source`` of a threshold the study spec declares (``decision_threshold``)
DECLARED_SOURCE = "study spec (declared risk)"


#: Table 1's patients and cases, the AUC with its 95 % interval, and the threshold
#: the operating point is counted at: the head of every row and of every operating point.
TABLE1_AUC_COLUMNS: tuple[str, ...] = ("n", "n_cases", "auc", "auc_ci_low", "auc_ci_high", "threshold")
#: The confusion counts at the threshold.
COUNT_COLUMNS: tuple[str, ...] = ("tp", "fp", "tn", "fn")
TABLE1_COLUMNS: tuple[str, ...] = (
    "endpoint",
    "model",
    *TABLE1_AUC_COLUMNS,
    *THRESHOLD_METRICS,
    "brier",
    *COUNT_COLUMNS,
    "threshold_source",
    *(f"{m}_ci_{side}" for m in THRESHOLD_METRICS for side in ("low", "high")),
)


# ----------------------------------------------------------------------------- DataFrame level


def endpoint_arrays(
    labels: pd.DataFrame,
    scores: pd.DataFrame,
    endpoint: str,
    *,
    model: str = "model",
    rows: pd.Index | None = None,
) -> tuple[NDArray[np.int8], NDArray[np.float64]]:
    """One endpoint's labels and one model's scores, aligned by patient id, unlabelled rows dropped.

    Args:
        labels: Labels, one column per endpoint (0/1/NaN), indexed by patient id.
        scores: One model's probabilities, same columns, indexed by patient id.
        endpoint: The endpoint (column) to take.
        model: The model's name, for error messages.
        rows: Patient ids to keep (e.g. the test split); all when None.

    Returns:
        ``(y_true, y_score)`` as arrays of equal length.

    Raises:
        DataError: If the endpoint column is missing, a label is not 0/1/NaN, or a
            labelled patient has no score. Messages give counts, never ids or values.
    """
    if endpoint not in labels.columns:
        raise DataError(f"labels have no column for endpoint '{endpoint}'")
    if endpoint not in scores.columns:
        raise DataError(f"scores of model '{model}' have no column for endpoint '{endpoint}'")
    y = labels[endpoint]
    if rows is not None:
        y = y[y.index.isin(rows)]
    y = pd.to_numeric(y, errors="coerce").where(y.notna())
    y = y.dropna()
    bad = ~y.isin([0, 1])
    if bad.any():
        raise DataError(
            f"labels for endpoint '{endpoint}' must be 0, 1 or empty; {int(bad.sum())} row(s) are not"
        )
    if not scores.index.is_unique:
        raise DataError(f"scores of model '{model}' have duplicate patient ids")
    missing = ~y.index.isin(scores.index)
    s = scores[endpoint].reindex(y.index)
    n_missing = int(missing.sum()) + int(s[~missing].isna().sum())
    if n_missing:
        raise DataError(
            f"scores of model '{model}' for endpoint '{endpoint}' are missing "
            f"for {n_missing} labelled patient(s)"
        )
    return y.to_numpy(dtype=np.int8), s.to_numpy(dtype=np.float64)


@dataclass
class Evaluation:
    """Everything :func:`evaluate` computes for a study.

    Attributes:
        table1: One row per (endpoint, model), columns :data:`TABLE1_COLUMNS`.
        roc: ROC points per ``(endpoint, model)`` on the evaluation split.
        calibration: Calibration bins per ``(endpoint, model)`` on the evaluation split.
        threshold_method: How thresholds were chosen.
        threshold_split: The split thresholds were chosen on.
        eval_split: The split the metrics were computed on.
        conf_level: Level of the AUC intervals.
        notes: Warnings in words (e.g. an endpoint with one class in a split).
        thresholds: Per endpoint and model, the threshold and where it was chosen
            (``endpoint``, ``model``, ``threshold``, ``source``, ``n``, ``n_cases``).
        calibration_table: Per endpoint and model on the evaluation split: calibration-in-the-large
            and slope with intervals, O/E ratio, ICI, Brier (:data:`CALIBRATION_COLUMNS`).
        decision_curve: Net benefit per endpoint, model (and ``treat_all``, ``treat_none``)
            and threshold probability (:data:`DECISION_CURVE_COLUMNS`).
        decision_thresholds: The study spec's declared decision threshold per endpoint.
        eval_arrays: Per endpoint and model, the evaluation split's labels and scores
            (for figures; not written to JSON).
    """

    table1: pd.DataFrame
    roc: dict[tuple[str, str], pd.DataFrame] = field(default_factory=dict)
    calibration: dict[tuple[str, str], pd.DataFrame] = field(default_factory=dict)
    threshold_method: str = "youden"
    threshold_split: str | None = "validation"
    eval_split: str | None = "test"
    conf_level: float = 0.95
    notes: list[str] = field(default_factory=list)
    thresholds: list[dict[str, Any]] = field(default_factory=list)
    calibration_table: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=list(CALIBRATION_COLUMNS))
    )
    decision_curve: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=list(DECISION_CURVE_COLUMNS))
    )
    decision_thresholds: dict[str, float] = field(default_factory=dict)
    eval_arrays: dict[tuple[str, str], tuple[NDArray[np.int8], NDArray[np.float64]]] = field(
        default_factory=dict, repr=False
    )

    def calibration_records(self) -> list[dict[str, Any]]:
        """The calibration table's rows as JSON-ready dicts."""
        return [
            {k: _clean(v) for k, v in r.items()} for r in self.calibration_table.to_dict(orient="records")
        ]

    def decision_curve_records(self) -> list[dict[str, Any]]:
        """The decision curves' rows as JSON-ready dicts."""
        return [{k: _clean(v) for k, v in r.items()} for r in self.decision_curve.to_dict(orient="records")]

    def table1_records(self) -> list[dict[str, Any]]:
        """Table 1's rows as JSON-ready dicts (NaN as None, numpy scalars as Python)."""
        return [{k: _clean(v) for k, v in row.items()} for row in self.table1.to_dict(orient="records")]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: Table 1 rows, calibration table and bins, decision curves, settings, notes.

        ``calibration`` is the calibration table (``report/calibration.csv``'s rows),
        ``calibration_bins`` the reliability bins per ``endpoint/model``, ``decision_curve``
        ``report/decision_curve.csv``'s rows; ROC points are left out.
        """
        rows = self.table1_records()
        calib = {
            f"{ep}/{model}": [{k: _clean(v) for k, v in r.items()} for r in df.to_dict(orient="records")]
            for (ep, model), df in self.calibration.items()
        }
        return {
            "threshold_method": self.threshold_method,
            "threshold_split": self.threshold_split,
            "eval_split": self.eval_split,
            "conf_level": self.conf_level,
            "table1": rows,
            "calibration": self.calibration_records(),
            "calibration_bins": calib,
            "decision_curve": self.decision_curve_records(),
            "decision_thresholds": dict(self.decision_thresholds),
            "thresholds": [{k: _clean(v) for k, v in t.items()} for t in self.thresholds],
            "notes": list(self.notes),
        }


def _clean(value: Any) -> Any:
    """NaN to None and numpy scalars to Python, so json.dumps writes standard JSON."""
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return None if math.isnan(float(value)) else float(value)
    return value


@dataclass(frozen=True)
class ThresholdPool:
    """Extra scored patients pooled with the threshold split's to choose a model's thresholds.

    The pipeline's baseline brings its out-of-fold training scores
    (:func:`cohortlm.models.baseline.out_of_fold_proba`): every training patient
    scored by a regression fitted without them, so pooling them with validation
    never chooses a threshold on patients the model was fitted on.

    Attributes:
        labels: Labels of the extra patients, one column per endpoint (0/1/NaN).
        scores: ``{model: DataFrame}`` of those patients' scores (models absent here pool nothing).
        name: What the rows are, for ``threshold_source`` (e.g. ``train (out-of-fold)``).
    """

    labels: pd.DataFrame
    scores: Mapping[str, pd.DataFrame]
    name: str = "train (out-of-fold)"


def evaluate(
    labels: pd.DataFrame,
    scores: Mapping[str, pd.DataFrame],
    split: pd.Series | None = None,
    *,
    endpoints: Sequence[str] | None = None,
    threshold_method: str | float = "youden",
    threshold_split: str = "validation",
    eval_split: str = "test",
    conf_level: float = 0.95,
    n_bins: int = 10,
    threshold_min_cases: int = 20,
    threshold_fallback_split: str | None = "train",
    decision_thresholds: Mapping[str, float] | None = None,
    threshold_pool: ThresholdPool | None = None,
) -> Evaluation:
    """Table 1, ROC and calibration for every endpoint and model.

    Args:
        labels: One column per endpoint (0/1/NaN), indexed by patient id.
        scores: ``{model name: DataFrame}`` of probabilities with the endpoint columns.
        split: Split name per patient id. When None, every row is evaluated and
            thresholds are chosen on the same rows (optimistic; say so in a report).
        endpoints: Endpoints to evaluate, in order; default: the columns of ``labels``.
        threshold_method: See :func:`choose_threshold`.
        threshold_split: Split on which thresholds are chosen.
        eval_split: Split on which metrics are computed.
        conf_level: Level of the AUC confidence intervals.
        n_bins: Calibration bins.
        threshold_min_cases: Fewest cases (and controls) of an endpoint on
            ``threshold_split`` before the fallback split is pooled in.
        threshold_fallback_split: The split pooled in when the threshold split has
            too few cases and the model scored it; None never pools.
        decision_thresholds: A declared clinical decision threshold (a risk) per endpoint;
            every model's Table 1 row for that endpoint uses it (source :data:`DECLARED_SOURCE`),
            and the decision curve has a point there.
        threshold_pool: Out-of-fold scores pooled with the threshold split for the models
            it holds, whatever the threshold split's case count (:class:`ThresholdPool`).

    Where each threshold comes from, in order: the declared one; the threshold split
    pooled with ``threshold_pool``; the threshold split alone when it has at least
    ``threshold_min_cases`` cases and controls; the threshold split pooled with
    ``threshold_fallback_split`` when the model scored it; else the threshold split
    alone, its source marked unstable. Every interval of Table 1 is at ``conf_level``:
    Wilson for proportions, a stratified bootstrap for F1
    (:func:`cohortlm.evaluation.intervals.threshold_metric_intervals`).

    Returns:
        An :class:`Evaluation`.

    Raises:
        UsageError: If no model is given or a split name is absent from ``split``.
        DataError: If an endpoint or score is missing (see :func:`endpoint_arrays`).
    """
    if not scores:
        raise UsageError("scores: give at least one model's scores")
    eps = list(endpoints) if endpoints is not None else [str(c) for c in labels.columns]
    notes: list[str] = []
    fit_rows, eval_rows, fit_name, eval_name = _split_rows(split, threshold_split, eval_split, notes)
    method_name = threshold_method if isinstance(threshold_method, str) else f"fixed {threshold_method:g}"
    setup = _PairSetup(  # positional, in field order: each argument is named as its field
        split,
        fit_rows,
        eval_rows,
        fit_name,
        threshold_method,
        conf_level,
        n_bins,
        threshold_min_cases,
        threshold_fallback_split,
        {str(k): float(v) for k, v in (decision_thresholds or {}).items()},
        threshold_pool,
    )
    pairs = [
        _evaluate_pair(labels, frame, ep, model, setup, notes)
        for ep in eps
        for model, frame in scores.items()
    ]
    calibration_rows = [p.calibration_row for p in pairs if p.calibration_row is not None]
    return Evaluation(
        table1=pd.DataFrame([p.row for p in pairs], columns=list(TABLE1_COLUMNS)),
        roc={(p.row["endpoint"], p.row["model"]): p.roc for p in pairs},
        calibration={
            (p.row["endpoint"], p.row["model"]): p.calibration for p in pairs if p.calibration is not None
        },
        threshold_method=method_name,
        threshold_split=fit_name,
        eval_split=eval_name,
        conf_level=conf_level,
        notes=notes,
        thresholds=[p.threshold for p in pairs],
        calibration_table=pd.DataFrame(calibration_rows, columns=list(CALIBRATION_COLUMNS)),
        decision_curve=_decision_curves(pairs, eps, setup.decision_thresholds),
        decision_thresholds=dict(setup.decision_thresholds),
        eval_arrays={(p.row["endpoint"], p.row["model"]): p.arrays for p in pairs},
    )


def _decision_curves(
    pairs: Sequence[_PairResult], endpoints: Sequence[str], declared: Mapping[str, float]
) -> pd.DataFrame:
    """Net benefit of every model with probabilities, per endpoint, on a grid fitted to its prevalence."""
    frames = []
    for ep in endpoints:
        mine = [p for p in pairs if p.row["endpoint"] == ep and p.calibration_row is not None]
        if not mine:
            continue
        y = mine[0].arrays[0]
        if y.size == 0:
            continue
        grid = threshold_grid(float(y.mean()), decision_threshold=declared.get(ep))
        # Every model was scored on the same patients (the gate's inputs); one not was left out.
        same = [p for p in mine if p.arrays[0].shape == y.shape and np.array_equal(p.arrays[0], y)]
        frames.append(decision_curve(y, {p.row["model"]: p.arrays[1] for p in same}, grid, endpoint=ep))
    if not frames:
        return pd.DataFrame(columns=list(DECISION_CURVE_COLUMNS))
    return pd.concat(frames, ignore_index=True)


def _split_rows(
    split: pd.Series | None, threshold_split: str, eval_split: str, notes: list[str]
) -> tuple[pd.Index | None, pd.Index | None, str | None, str | None]:
    """The threshold rows, the evaluation rows and their split names (all None without a split).

    Raises:
        UsageError: If ``threshold_split`` or ``eval_split`` is not a split in ``split``.
    """
    if split is None:
        notes.append("no split given: thresholds were chosen on the rows they are evaluated on")
        return None, None, None, None
    present = set(split.dropna().astype(str).unique())
    for arg, name in (("threshold_split", threshold_split), ("eval_split", eval_split)):
        if name not in present:
            raise UsageError(
                f"{arg} '{name}' is not a split in the data (have: {', '.join(sorted(present))})"
            )
    fit_rows = split.index[split.astype(str) == threshold_split]
    eval_rows = split.index[split.astype(str) == eval_split]
    return fit_rows, eval_rows, threshold_split, eval_split


@dataclass(frozen=True)
class _PairSetup:
    """The rows and settings every (endpoint, model) pair is evaluated with."""

    split: pd.Series | None
    fit_rows: pd.Index | None
    eval_rows: pd.Index | None
    fit_name: str | None
    threshold_method: str | float
    conf_level: float
    n_bins: int
    threshold_min_cases: int
    threshold_fallback_split: str | None
    decision_thresholds: dict[str, float] = field(default_factory=dict)
    threshold_pool: ThresholdPool | None = None


@dataclass(frozen=True)
class _PairResult:
    """What one (endpoint, model) pair adds to an :class:`Evaluation`."""

    row: dict[str, Any]
    threshold: dict[str, Any]
    roc: pd.DataFrame
    calibration: pd.DataFrame | None
    calibration_row: dict[str, Any] | None
    arrays: tuple[NDArray[np.int8], NDArray[np.float64]]


def _evaluate_pair(
    labels: pd.DataFrame, frame: pd.DataFrame, ep: str, model: str, setup: _PairSetup, notes: list[str]
) -> _PairResult:
    """Threshold, AUC, ROC, Table 1 row and calibration of one model on one endpoint (notes to ``notes``)."""
    y_fit, s_fit = endpoint_arrays(labels, frame, ep, model=model, rows=setup.fit_rows)
    y_ev, s_ev = endpoint_arrays(labels, frame, ep, model=model, rows=setup.eval_rows)
    declared = setup.decision_thresholds.get(ep)
    if declared is not None:
        y_fit, s_fit, source = y_fit[:0], s_fit[:0], DECLARED_SOURCE
    else:
        y_fit, s_fit, source = _pool_fallback(labels, frame, ep, model, setup, y_fit, s_fit)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DeLongWarning)
        method = declared if declared is not None else setup.threshold_method
        thr = choose_threshold(y_fit, s_fit, method=method)
        auc = auc_ci(y_ev, s_ev, conf_level=setup.conf_level, method="logit")
        points = roc_points(y_ev, s_ev)
    for w in caught:
        where = f"{ep}/{model}"
        notes.append(f"{where}: {w.message}")
    tm = threshold_metrics(y_ev, s_ev, thr)
    fit_cases = int(y_fit.sum())
    if math.isnan(thr):
        source = "none"
        notes.append(
            f"{ep}/{model}: no threshold could be chosen ({fit_cases} case(s) among {y_fit.size} "
            f"patient(s) on {setup.fit_name or 'the evaluated rows'}); Table 1 shows none"
        )
    elif (
        declared is None
        and isinstance(setup.threshold_method, str)
        and min(fit_cases, y_fit.size - fit_cases) < setup.threshold_min_cases
    ):
        notes.append(
            f"{ep}/{model}: threshold chosen on {fit_cases} case(s) among {y_fit.size} patient(s) "
            f"({source}); fewer than {setup.threshold_min_cases}, so it is unstable"
        )
        source = f"{source} (unstable: {min(fit_cases, y_fit.size - fit_cases)} cases or controls)"
    threshold = {
        "endpoint": ep,
        "model": model,
        "threshold": thr,
        "source": source,
        "n": int(y_fit.size),
        "n_cases": fit_cases,
    }
    if ((s_ev < 0) | (s_ev > 1)).any():
        notes.append(f"{ep}/{model}: scores are not probabilities in [0, 1]; no Brier score")
        brier = math.nan
    else:
        brier = brier_score(y_ev, s_ev)
    calibration = None if math.isnan(brier) else calibration_data(y_ev, s_ev, n_bins=setup.n_bins)
    calibration_row = (
        None
        if math.isnan(brier)
        else calibration_summary(y_ev, s_ev, conf_level=setup.conf_level, endpoint=ep, model=model)
    )
    row = _table1_row(ep, model, y_ev, auc, tm, brier, source)
    if math.isfinite(thr):
        intervals = threshold_metric_intervals(tm.to_dict(), conf_level=setup.conf_level)
    else:
        intervals = {m: (math.nan, math.nan) for m in THRESHOLD_METRICS}
    for metric, (low, high) in intervals.items():
        row[f"{metric}_ci_low"], row[f"{metric}_ci_high"] = low, high
    return _PairResult(
        row=row,
        threshold=threshold,
        roc=points,
        calibration=calibration,
        calibration_row=calibration_row,
        arrays=(y_ev, s_ev),
    )


def _pool_fallback(
    labels: pd.DataFrame,
    frame: pd.DataFrame,
    ep: str,
    model: str,
    setup: _PairSetup,
    y_fit: NDArray[np.int8],
    s_fit: NDArray[np.float64],
) -> tuple[NDArray[np.int8], NDArray[np.float64], str]:
    """The threshold's labels and scores (the pool or fallback split pooled in) and their source."""
    source = setup.fit_name or "evaluated rows"
    pool = setup.threshold_pool
    if pool is not None and model in pool.scores and ep in pool.labels.columns:
        rows = pool.labels.index[pool.labels[ep].notna()].intersection(pool.scores[model].index)
        rows = rows[pool.scores[model].loc[rows, ep].notna().to_numpy()] if len(rows) else rows
        if len(rows):
            y_x, s_x = endpoint_arrays(pool.labels, pool.scores[model], ep, model=model, rows=rows)
            return np.concatenate([y_fit, y_x]), np.concatenate([s_fit, s_x]), f"{source}+{pool.name}"
    few = min(int(y_fit.sum()), int(y_fit.size - y_fit.sum())) < setup.threshold_min_cases
    fallback = setup.threshold_fallback_split
    if few and setup.split is not None and fallback and isinstance(setup.threshold_method, str):
        extra = _scored_rows(labels, frame, ep, setup.split, fallback)
        if extra is not None and len(extra):
            y_x, s_x = endpoint_arrays(labels, frame, ep, model=model, rows=extra)
            y_fit, s_fit = np.concatenate([y_fit, y_x]), np.concatenate([s_fit, s_x])
            source = f"{setup.fit_name}+{fallback}"
    return y_fit, s_fit, source


def _table1_row(
    ep: str,
    model: str,
    y_ev: NDArray[np.int8],
    auc: AUCResult,
    tm: ThresholdMetrics,
    brier: float,
    source: str,
) -> dict[str, Any]:
    """One Table 1 row (:data:`TABLE1_COLUMNS`) from the evaluation split's metrics."""
    return {
        "endpoint": ep,
        "model": model,
        "n": int(y_ev.shape[0]),
        "n_cases": int(y_ev.sum()),
        "auc": auc.auc,
        "auc_ci_low": auc.ci[0],
        "auc_ci_high": auc.ci[1],
        "threshold": tm.threshold,
        "sensitivity": tm.sensitivity,
        "specificity": tm.specificity,
        "ppv": tm.ppv,
        "npv": tm.npv,
        "precision": tm.precision,
        "recall": tm.recall,
        "f1": tm.f1,
        "accuracy": tm.accuracy,
        "brier": brier,
        "tp": tm.tp,
        "fp": tm.fp,
        "tn": tm.tn,
        "fn": tm.fn,
        "threshold_source": source,
    }


def _scored_rows(
    labels: pd.DataFrame, frame: pd.DataFrame, ep: str, split: pd.Series, name: str
) -> pd.Index | None:
    """Labelled rows of split ``name`` that the model has a score for (None when it scored none)."""
    rows = split.index[split.astype(str) == name]
    if ep not in labels.columns or ep not in frame.columns:
        return None
    labelled = labels.loc[labels.index.isin(rows), ep].dropna().index
    scored = frame.index[frame[ep].notna()] if frame.index.is_unique else pd.Index([])
    keep = labelled.intersection(scored)
    return keep if len(keep) else None


def serving_thresholds(
    table1: pd.DataFrame, model: str, endpoints: Sequence[str]
) -> tuple[dict[str, float], dict[str, dict[str, Any]]]:
    """The thresholds a promoted bundle serves with, for every endpoint, and where each came from.

    Args:
        table1: Table 1 (:data:`TABLE1_COLUMNS`; ``threshold_source`` may be absent in old tables).
        model: The promoted model's name in Table 1.
        endpoints: Every endpoint the model predicts.

    Returns:
        ``(thresholds, record)``: a threshold for every endpoint (``thresholds.json``,
        the server's format) and per endpoint ``threshold``, ``source`` and ``reason``
        (``thresholds_record.json``). An endpoint whose threshold is NaN or missing gets
        the serving default 0.5 with ``source: "default"`` and the reason in words.
    """
    rows = table1[table1["model"] == model].set_index("endpoint") if len(table1) else table1
    thresholds: dict[str, float] = {}
    record: dict[str, dict[str, Any]] = {}
    for ep in endpoints:
        value = float(rows.loc[ep, "threshold"]) if ep in rows.index else math.nan
        source = (
            str(rows.loc[ep, "threshold_source"])
            if "threshold_source" in rows.columns and ep in rows.index
            else "validation"
        )
        if math.isfinite(value):
            thresholds[ep] = value
            record[ep] = {"threshold": value, "source": source, "reason": f"chosen on {source}"}
        else:
            thresholds[ep] = DEFAULT_SERVING_THRESHOLD
            why = (
                "not in Table 1" if ep not in rows.index else "no threshold could be chosen (one class only)"
            )
            record[ep] = {
                "threshold": DEFAULT_SERVING_THRESHOLD,
                "source": "default",
                "reason": f"{why}; the serving default {DEFAULT_SERVING_THRESHOLD} is used",
            }
    return thresholds, record
