"""Metrics of one endpoint's labels and scores: threshold choice, operating point, Brier, calibration, ROC.

The array layer under :func:`cohortlm.evaluation.evaluate.evaluate`: each function
takes one endpoint's 0/1 labels and predicted probabilities (any array-like) and
reads nothing else, so the gate, the monitor and the benchmarks call the same
numbers Table 1 prints. A patient is predicted a case when ``score >= threshold``.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from sklearn.metrics import precision_recall_curve, roc_curve

from cohortlm.evaluation.intervals import wilson_interval
from cohortlm.evaluation.stats.delong import DeLongWarning, _as_labels, _as_scores

THRESHOLD_METHODS: tuple[str, ...] = ("youden", "closest_topleft", "max_f1")


def _arrays(y_true: ArrayLike, y_score: ArrayLike) -> tuple[NDArray[np.bool_], NDArray[np.float64]]:
    labels = _as_labels(y_true, "y_true")
    return labels, _as_scores(y_score, "y_score", labels.shape[0])


def choose_threshold(y_true: ArrayLike, y_score: ArrayLike, *, method: str | float = "youden") -> float:
    """Choose a decision threshold on (validation) data.

    Args:
        y_true: Labels, 1 = case, 0 = control.
        y_score: Scores; a patient is predicted a case when ``score >= threshold``.
        method: ``"youden"`` (maximise sensitivity + specificity − 1),
            ``"closest_topleft"`` (ROC point nearest (0, 1)), ``"max_f1"``, or a
            number used as the threshold as it is.

    Returns:
        The threshold, one of the observed scores (the highest among equally
        good ones), or NaN with a :class:`DeLongWarning` when ``y_true`` has one class only.

    Raises:
        ValueError: If ``method`` is unknown or the arrays are malformed.
    """
    if isinstance(method, (int, float)) and not isinstance(method, bool):
        if not math.isfinite(float(method)):
            raise ValueError(f"method must be a finite number or one of {THRESHOLD_METHODS}, got {method!r}")
        return float(method)
    if method not in THRESHOLD_METHODS:
        raise ValueError(
            f"method must be one of {', '.join(map(repr, THRESHOLD_METHODS))} or a number, got {method!r}"
        )
    labels, score = _arrays(y_true, y_score)
    m = int(labels.sum())
    if m == 0 or m == labels.shape[0]:
        warnings.warn(
            f"y_true has {m} case(s) and {labels.shape[0] - m} control(s); no threshold can be chosen (NaN)",
            DeLongWarning,
            stacklevel=2,
        )
        return math.nan
    if method == "max_f1":
        precision, recall, thr = precision_recall_curve(labels, score)
        with np.errstate(divide="ignore", invalid="ignore"):
            f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)[:-1]
        # thresholds ascend here; take the highest threshold among ties, as for the ROC criteria.
        best = np.flatnonzero(f1 == f1.max())[-1]
        return float(thr[best])
    fpr, tpr, thr = roc_curve(labels, score, drop_intermediate=False)
    # The first ROC point has threshold +inf (nobody positive): never a useful cut-off.
    fpr, tpr, thr = fpr[1:], tpr[1:], thr[1:]
    crit = tpr - fpr if method == "youden" else -((1 - tpr) ** 2 + fpr**2)
    return float(thr[int(np.argmax(crit))])


@dataclass(frozen=True)
class ThresholdMetrics:
    """Counts and rates at one threshold (``score >= threshold`` predicts a case).

    Rates whose denominator is 0 (e.g. PPV with nobody predicted positive) are NaN.
    """

    threshold: float
    tp: int
    fp: int
    tn: int
    fn: int
    sensitivity: float
    specificity: float
    ppv: float
    npv: float
    precision: float
    recall: float
    f1: float
    accuracy: float

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python form."""
        return asdict(self)


def _ratio(num: float, den: float) -> float:
    return num / den if den > 0 else math.nan


def threshold_metrics(y_true: ArrayLike, y_score: ArrayLike, threshold: float) -> ThresholdMetrics:
    """Sensitivity, specificity, PPV, NPV, precision, recall, F1 and accuracy at ``threshold``.

    Args:
        y_true: Labels, 1 = case, 0 = control.
        y_score: Scores.
        threshold: Cut-off; ``score >= threshold`` predicts a case. NaN gives NaN rates.

    Returns:
        A :class:`ThresholdMetrics`.
    """
    labels, score = _arrays(y_true, y_score)
    if math.isnan(threshold):
        nan = math.nan
        return ThresholdMetrics(nan, 0, 0, 0, 0, nan, nan, nan, nan, nan, nan, nan, nan)
    pred = score >= threshold
    tp = int((pred & labels).sum())
    fp = int((pred & ~labels).sum())
    fn = int((~pred & labels).sum())
    tn = int((~pred & ~labels).sum())
    sens = _ratio(tp, tp + fn)
    ppv = _ratio(tp, tp + fp)
    f1 = _ratio(2 * tp, 2 * tp + fp + fn)
    return ThresholdMetrics(
        threshold=float(threshold),
        tp=tp,
        fp=fp,
        tn=tn,
        fn=fn,
        sensitivity=sens,
        specificity=_ratio(tn, tn + fp),
        ppv=ppv,
        npv=_ratio(tn, tn + fn),
        precision=ppv,
        recall=sens,
        f1=f1,
        accuracy=_ratio(tp + tn, labels.shape[0]),
    )


def brier_score(y_true: ArrayLike, y_score: ArrayLike) -> float:
    """Mean squared difference between predicted probability and outcome (lower is better).

    Args:
        y_true: Labels, 1 = case, 0 = control.
        y_score: Predicted probabilities in [0, 1].

    Returns:
        The Brier score, NaN for empty input.

    Raises:
        ValueError: If a probability lies outside [0, 1].
    """
    labels, score = _arrays(y_true, y_score)
    if ((score < 0) | (score > 1)).any():
        raise ValueError("y_score must hold probabilities in [0, 1] for the Brier score")
    if labels.shape[0] == 0:
        return math.nan
    return float(np.mean((score - labels) ** 2))


def calibration_data(
    y_true: ArrayLike, y_score: ArrayLike, *, n_bins: int = 10, strategy: str = "quantile"
) -> pd.DataFrame:
    """Reliability-diagram data: mean predicted probability against observed rate per bin.

    Args:
        y_true: Labels, 1 = case, 0 = control.
        y_score: Predicted probabilities in [0, 1].
        n_bins: Number of bins (fewer when quantiles coincide).
        strategy: ``"quantile"`` (equal counts) or ``"uniform"`` (equal widths on [0, 1]).

    Returns:
        A DataFrame with columns ``bin``, ``mean_predicted``, ``observed_rate``, ``n``,
        ``cases`` and the observed rate's 95 % Wilson interval ``ci_low``, ``ci_high``;
        empty bins are left out.

    Raises:
        ValueError: If ``n_bins`` < 1 or ``strategy`` is unknown.
    """
    if int(n_bins) < 1:
        raise ValueError(f"n_bins must be at least 1, got {n_bins!r}")
    if strategy not in ("quantile", "uniform"):
        raise ValueError(f"strategy must be 'quantile' or 'uniform', got {strategy!r}")
    labels, score = _arrays(y_true, y_score)
    columns = ["bin", "mean_predicted", "observed_rate", "n", "cases", "ci_low", "ci_high"]
    if labels.shape[0] == 0:
        return pd.DataFrame(columns=columns)
    if strategy == "quantile":
        edges = np.unique(np.quantile(score, np.linspace(0, 1, int(n_bins) + 1)))
    else:
        edges = np.linspace(0.0, 1.0, int(n_bins) + 1)
    # Inner edges only: np.digitize then puts every score, including the extremes, in a bin.
    idx = np.digitize(score, edges[1:-1], right=True) if edges.size > 2 else np.zeros(score.shape, int)
    frame = pd.DataFrame({"bin": idx, "p": score, "y": labels.astype(float)})
    out = frame.groupby("bin", sort=True).agg(
        mean_predicted=("p", "mean"), observed_rate=("y", "mean"), n=("y", "size"), cases=("y", "sum")
    )
    out["cases"] = out["cases"].astype(int)
    bounds = [wilson_interval(int(k), int(m)) for k, m in zip(out["cases"], out["n"], strict=True)]
    out["ci_low"] = [b[0] for b in bounds]
    out["ci_high"] = [b[1] for b in bounds]
    return out.reset_index()[columns]


def roc_points(y_true: ArrayLike, y_score: ArrayLike) -> pd.DataFrame:
    """ROC curve points (``fpr``, ``tpr``, ``threshold``), from (0, 0) to (1, 1).

    Args:
        y_true: Labels with both classes.
        y_score: Scores.

    Returns:
        A DataFrame; empty (with a :class:`DeLongWarning`) when ``y_true`` has one class only.
    """
    labels, score = _arrays(y_true, y_score)
    m = int(labels.sum())
    if m == 0 or m == labels.shape[0]:
        warnings.warn("y_true has one class only; no ROC curve", DeLongWarning, stacklevel=2)
        return pd.DataFrame(columns=["fpr", "tpr", "threshold"])
    fpr, tpr, thr = roc_curve(labels, score)
    return pd.DataFrame({"fpr": fpr, "tpr": tpr, "threshold": thr})
