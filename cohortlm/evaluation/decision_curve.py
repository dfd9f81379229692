"""Decision curve analysis (Vickers & Elkin, Med Decis Making 2006;26:565).

Treating every patient whose predicted risk is at least ``t`` has net benefit
``TP/n − FP/n · t/(1 − t)``: true positives gained, minus false positives
weighed by the odds of the threshold (how many unnecessary treatments a
clinician accepts for one necessary one at that risk). Two references: treat
all (``prevalence − (1 − prevalence) · t/(1 − t)``) and treat none (0). A model
is useful at ``t`` where its curve lies above both.

:func:`net_benefit` counts TP and FP at every threshold at once (one sort of
the scores), so a curve of hundreds of points costs one pass over the patients.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from cohortlm.evaluation.stats.delong import _as_labels, _as_scores

__all__ = [
    "DECISION_CURVE_COLUMNS",
    "TREAT_ALL",
    "TREAT_NONE",
    "decision_curve",
    "net_benefit",
    "threshold_grid",
]

TREAT_ALL = "treat_all"
TREAT_NONE = "treat_none"
DECISION_CURVE_COLUMNS: tuple[str, ...] = ("endpoint", "model", "threshold", "net_benefit")


def _check_thresholds(thresholds: ArrayLike) -> NDArray[np.float64]:
    t = np.atleast_1d(np.asarray(thresholds, dtype=np.float64))
    if t.ndim != 1 or not np.all((t > 0) & (t < 1)):
        raise ValueError("thresholds must be risks strictly between 0 and 1")
    return t


def net_benefit(y_true: ArrayLike, y_prob: ArrayLike, thresholds: ArrayLike) -> NDArray[np.float64]:
    """Net benefit of treating patients with ``y_prob >= t``, at every threshold ``t``.

    Args:
        y_true: Outcomes, 1 = case, 0 = control.
        y_prob: Predicted risks.
        thresholds: Threshold probabilities, each in (0, 1).

    Returns:
        ``TP/n − FP/n · t/(1 − t)`` per threshold (NaN for no patients).

    Raises:
        ValueError: If a threshold lies outside (0, 1) or the arrays are malformed.
    """
    labels = _as_labels(y_true, "y_true")
    prob = _as_scores(y_prob, "y_prob", labels.shape[0])
    t = _check_thresholds(thresholds)
    n = labels.shape[0]
    if n == 0:
        return np.full(t.shape, math.nan)
    order = np.argsort(prob, kind="mergesort")
    sorted_prob = prob[order]
    cases_above = np.concatenate([np.cumsum(labels[order][::-1])[::-1], [0]])
    # First index with prob >= t: every patient from there on is treated.
    first = np.searchsorted(sorted_prob, t, side="left")
    tp = cases_above[first]
    fp = (n - first) - tp
    return tp / n - fp / n * t / (1.0 - t)


def threshold_grid(
    prevalence: float, *, points: int = 99, decision_threshold: float | None = None
) -> NDArray[np.float64]:
    """Threshold probabilities that suit an endpoint of this prevalence.

    The grid runs from 1 % of its top to the top, which is three times the
    prevalence rounded up to 0.05, at least 0.10 and at most 0.95: beyond it
    treating everyone with the model's risk is rarely a decision anyone takes, and
    the curves there are flat at 0. The declared decision threshold, when given,
    is added so the curve has a point exactly there.

    Args:
        prevalence: The endpoint's case rate on the evaluated patients.
        points: Grid points before the decision threshold is added.
        decision_threshold: The study spec's threshold for the endpoint, if any.

    Returns:
        Increasing thresholds in (0, 1).
    """
    prev = prevalence if math.isfinite(prevalence) else 0.5
    top = min(0.95, max(0.10, math.ceil(3.0 * prev / 0.05) * 0.05))
    if decision_threshold is not None and decision_threshold >= top:
        top = min(0.99, math.ceil((decision_threshold + 0.05) / 0.05) * 0.05)
    grid = np.linspace(top / 100.0, top, int(points))
    if decision_threshold is not None:
        grid = np.union1d(grid, [float(decision_threshold)])
    return np.round(grid, 6)


def decision_curve(
    y_true: ArrayLike, scores: dict[str, ArrayLike], thresholds: ArrayLike, *, endpoint: str = ""
) -> pd.DataFrame:
    """Net benefit of every model, treat-all and treat-none, in the ``decision_curve.csv`` layout.

    Args:
        y_true: Outcomes of one endpoint.
        scores: ``{model: predicted risks}`` on the same patients.
        thresholds: Threshold probabilities in (0, 1).
        endpoint: The endpoint's name, for the ``endpoint`` column.

    Returns:
        Columns :data:`DECISION_CURVE_COLUMNS`; the models in order, then ``treat_all``
        and ``treat_none``.
    """
    labels = _as_labels(y_true, "y_true")
    t = _check_thresholds(thresholds)
    n = labels.shape[0]
    frames = []
    for model, prob in scores.items():
        frames.append(
            pd.DataFrame({"model": model, "threshold": t, "net_benefit": net_benefit(labels, prob, t)})
        )
    prev = float(labels.mean()) if n else math.nan
    frames.append(
        pd.DataFrame({"model": TREAT_ALL, "threshold": t, "net_benefit": prev - (1 - prev) * t / (1 - t)})
    )
    frames.append(pd.DataFrame({"model": TREAT_NONE, "threshold": t, "net_benefit": np.zeros(t.shape)}))
    out = pd.concat(frames, ignore_index=True)
    out.insert(0, "endpoint", endpoint)
    return out[list(DECISION_CURVE_COLUMNS)]
