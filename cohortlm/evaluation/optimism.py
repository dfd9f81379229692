"""Internal validation of a logistic regression: Harrell's bootstrap optimism correction.

A model's performance on the patients it was fitted on (the *apparent*
performance) is optimistic. Harrell's bootstrap (Harrell, Lee & Mark, Stat Med
1996;15:361; R ``rms::validate``) estimates by how much: for each of ``B``
resamples (with replacement) of the training patients, refit the model on the
resample, measure it on the resample (apparent) and on the original patients
(test); the mean of the differences is the optimism, and

    corrected = apparent (full fit, training patients) − optimism.

Here for the AUC and the calibration slope (whose apparent value is about 1 for
an unpenalised fit, and whose corrected value estimates the shrinkage a new
population would need).

The refits are penalised logistic regressions solved by Newton–Raphson in
numpy, each warm-started from the full-data coefficients (a resample's
solution is close to it, so 3-5 steps suffice), with the same objective as
scikit-learn's ``LogisticRegression(C, penalty="l2")`` (intercept unpenalised):
``Σ wᵢ·loss(yᵢ, ηᵢ) + ‖β‖² / (2C)``. The AUCs of all resamples are one
vectorised rank computation and the slopes one batched recalibration
(:func:`cohortlm.evaluation.stats.calibration.recalibration_batch`). The design
matrix is passed in already encoded: the caller's unsupervised preprocessing
(imputation, scaling, one-hot) is fitted once on the training patients, not per
resample; it uses no outcome, so the optimism it adds is negligible.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from scipy.special import expit
from scipy.stats import rankdata
from threadpoolctl import threadpool_limits

from cohortlm.evaluation.stats.calibration import recalibration_batch
from cohortlm.models.baseline import encoded_endpoints
from cohortlm.models.logistic import balanced_weights, fit_logistic

if TYPE_CHECKING:
    from cohortlm.cohort.study import StudySpec

__all__ = [
    "OptimismResult",
    "balanced_weights",
    "bootstrap_optimism",
    "fit_logistic",
    "internal_validation",
    "rank_auc",
    "weighted_auc",
]

_DECREMENT = 1e-12


@dataclass(frozen=True)
class OptimismResult:
    """Apparent, optimism and corrected AUC and calibration slope of one fit.

    Attributes:
        n: Training patients.
        cases: Cases among them.
        n_boot: Resamples used (resamples with one class only are skipped).
        auc_apparent: AUC of the full fit on the training patients.
        auc_optimism: Mean of (resample's AUC on itself − on the training patients).
        auc_corrected: ``auc_apparent − auc_optimism``.
        slope_apparent: Calibration slope of the full fit on the training patients.
        slope_optimism: As for the AUC.
        slope_corrected: ``slope_apparent − slope_optimism``.
        seconds: Wall time.
    """

    n: int
    cases: int
    n_boot: int
    auc_apparent: float
    auc_optimism: float
    auc_corrected: float
    slope_apparent: float
    slope_optimism: float
    slope_corrected: float
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python form (NaN as None)."""
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in asdict(self).items()}


def _refit_all(
    X: NDArray[np.float64],
    y: NDArray[np.bool_],
    counts: NDArray[np.float64],
    beta: NDArray[np.float64],
    *,
    C: float,
    full_weight: NDArray[np.float64] | None,
) -> NDArray[np.float64]:
    """Every resample's penalised fit at once: ``counts`` (R, n) are the resamples' patient weights.

    A chord (simplified Newton) iteration: each resample's step solves its gradient
    against the full fit's Hessian, factorised once. A resample's Hessian differs
    from the full one by O(1/√n), so the error shrinks by about that factor per
    step; the fixed point is the resample's exact optimum (its gradient is 0).
    The gradients of all resamples are one (R, n) × (n, d) product per step.
    """
    from scipy.linalg import cho_factor, cho_solve

    d = X.shape[1]
    yf = y.astype(np.float64)
    penalty = np.full(d + 1, 1.0 / C)
    penalty[0] = 0.0
    mu = expit(beta[0] + X @ beta[1:])
    h = mu * (1.0 - mu) * (1.0 if full_weight is None else full_weight)
    hess = np.empty((d + 1, d + 1))
    hess[0, 0] = h.sum()
    hess[0, 1:] = hess[1:, 0] = (X * h[:, None]).sum(axis=0)
    hess[1:, 1:] = X.T @ (X * h[:, None])
    hess[np.diag_indices(d + 1)] += penalty
    factor = cho_factor(hess)
    betas = np.tile(beta, (counts.shape[0], 1))
    active = np.ones(counts.shape[0], dtype=bool)
    for _ in range(200):
        rows = np.flatnonzero(active)
        if rows.size == 0:
            break
        b = betas[rows]
        r = counts[rows] * (expit(b[:, :1] + b[:, 1:] @ X.T) - yf)
        grad = np.concatenate([r.sum(axis=1, keepdims=True), r @ X], axis=1) + penalty * b
        step = cho_solve(factor, grad.T).T
        betas[rows] = b - step
        # Newton decrement (gradᵀ H⁻¹ grad): what a step still gains in log-likelihood. The
        # coefficients can drift along a direction the data barely determine (the intercept
        # against a full one-hot set) without changing any prediction; the decrement ignores it.
        active[rows] = np.sum(step * grad, axis=1) >= _DECREMENT
    return betas


def _auc_pair(
    y: NDArray[np.bool_], score: NDArray[np.float64], weight: NDArray[np.float64]
) -> tuple[float, float]:
    """``(weighted_auc(y, score, weight), weighted_auc(y, score))`` with one sort of the controls."""
    ctrl_s = score[~y]
    order = np.argsort(ctrl_s, kind="mergesort")
    ctrl_s = ctrl_s[order]
    case_s = score[y]
    lo = np.searchsorted(ctrl_s, case_s, side="left")
    hi = np.searchsorted(ctrl_s, case_s, side="right")
    out = []
    for case_w, ctrl_w in ((weight[y], weight[~y][order]), (np.ones(case_s.shape), np.ones(ctrl_s.shape))):
        cum = np.concatenate([[0.0], np.cumsum(ctrl_w)])
        den = case_w.sum() * cum[-1]
        out.append(
            float(np.sum(case_w * (cum[lo] + 0.5 * (cum[hi] - cum[lo]))) / den) if den > 0 else math.nan
        )
    return out[0], out[1]


def weighted_auc(y: ArrayLike, score: ArrayLike, weight: ArrayLike | None = None) -> float:
    """AUC with patient weights (a bootstrap resample's counts): ties between a case and a control count half.

    Args:
        y: Outcomes 0/1.
        score: Scores.
        weight: Weight per patient; default 1 (the Mann–Whitney AUC).

    Returns:
        The AUC, NaN when the cases' or the controls' weight is 0.
    """
    yb = np.asarray(y).astype(bool)
    s = np.asarray(score, dtype=np.float64)
    w = np.ones(s.shape) if weight is None else np.asarray(weight, dtype=np.float64)
    ctrl_s, ctrl_w = s[~yb], w[~yb]
    order = np.argsort(ctrl_s, kind="mergesort")
    ctrl_s = ctrl_s[order]
    cum = np.concatenate([[0.0], np.cumsum(ctrl_w[order])])
    case_s, case_w = s[yb], w[yb]
    lo = np.searchsorted(ctrl_s, case_s, side="left")
    hi = np.searchsorted(ctrl_s, case_s, side="right")
    den = case_w.sum() * cum[-1]
    if not den > 0:
        return math.nan
    return float(np.sum(case_w * (cum[lo] + 0.5 * (cum[hi] - cum[lo]))) / den)


def rank_auc(y: ArrayLike, score: ArrayLike) -> NDArray[np.float64]:
    """AUC (Mann–Whitney, ties counted half) of each row of ``score`` against each row of ``y``.

    Args:
        y: Outcomes, shape ``(R, n)`` or ``(n,)``.
        score: Scores of the same shape.

    Returns:
        AUC per row (NaN where a row has one class only).
    """
    yb = np.atleast_2d(np.asarray(y, dtype=bool))
    s = np.atleast_2d(np.asarray(score, dtype=np.float64))
    ranks = rankdata(s, axis=1)
    m = yb.sum(axis=1).astype(np.float64)
    k = yb.shape[1] - m
    with np.errstate(invalid="ignore", divide="ignore"):
        return ((ranks * yb).sum(axis=1) - m * (m + 1) / 2.0) / (m * k)


def bootstrap_optimism(
    X: ArrayLike,
    y: ArrayLike,
    *,
    C: float = 1.0,
    class_weight: str | None = None,
    n_boot: int = 200,
    seed: int = 0,
) -> OptimismResult:
    """Harrell's bootstrap optimism correction of the AUC and calibration slope (module docstring).

    Args:
        X: The encoded training design, shape ``(n, d)``.
        y: Training outcomes 0/1 (no missing labels).
        C: The model's inverse penalty strength.
        class_weight: ``None`` or ``"balanced"``, as the model was fitted.
        n_boot: Resamples (at least 200 for a stable optimism, Steyerberg 2019).
        seed: Seed of the resampling.

    Returns:
        An :class:`OptimismResult`; NaN figures when ``y`` has one class only.

    Raises:
        ValueError: If the shapes disagree, ``n_boot`` < 1 or ``class_weight`` is unknown.
    """
    started = time.perf_counter()
    Xa = np.asarray(X, dtype=np.float64)
    yb = np.asarray(y).astype(bool)
    if Xa.ndim != 2 or Xa.shape[0] != yb.shape[0]:
        raise ValueError(f"X must be (n, d) with n = len(y) = {yb.shape[0]}, got shape {Xa.shape}")
    if int(n_boot) < 1:
        raise ValueError(f"n_boot must be at least 1, got {n_boot!r}")
    if class_weight not in (None, "balanced"):
        raise ValueError(f"class_weight must be None or 'balanced', got {class_weight!r}")
    n, cases = int(yb.shape[0]), int(yb.sum())
    nan = math.nan
    if cases == 0 or cases == n:
        return OptimismResult(n, cases, 0, nan, nan, nan, nan, nan, nan, time.perf_counter() - started)

    def weights(labels: NDArray[np.bool_]) -> NDArray[np.float64] | None:
        return balanced_weights(labels) if class_weight == "balanced" else None

    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(int(n_boot), n))
    y_boot = yb[idx]
    keep = (y_boot.sum(axis=1) > 0) & (y_boot.sum(axis=1) < n)
    idx, y_boot = idx[keep], y_boot[keep]
    # A resample is the original patients counted 0, 1, 2... times: a weighted fit on them.
    counts = np.stack([np.bincount(row, minlength=n) for row in idx]).astype(np.float64)
    if class_weight == "balanced":
        m_b = y_boot.sum(axis=1, keepdims=True).astype(np.float64)
        counts *= np.where(yb[None, :], n / (2.0 * m_b), n / (2.0 * (n - m_b)))
    # Small products: one BLAS thread is several times faster than many on a busy machine.
    with threadpool_limits(1):
        beta = fit_logistic(Xa, yb, C=C, sample_weight=weights(yb))
        p_full = expit(beta[0] + Xa @ beta[1:])
        betas = _refit_all(Xa, yb, counts, beta, C=C, full_weight=weights(yb))
        p_test = expit(betas[:, :1] + betas[:, 1:] @ Xa.T)
    p_app = np.take_along_axis(p_test, idx, axis=1)  # the resample's patients are rows of the original
    aucs = np.array([_auc_pair(yb, p_test[b], counts[b]) for b in range(p_test.shape[0])])
    auc_app, auc_test = aucs[:, 0], aucs[:, 1]
    y_orig = np.broadcast_to(yb, p_test.shape)
    slope_app = recalibration_batch(y_boot, p_app, with_test=False, with_citl=False)["slope"]
    slope_test = recalibration_batch(y_orig, p_test, with_test=False, with_citl=False)["slope"]
    apparent_auc = weighted_auc(yb, p_full)
    apparent_slope = float(recalibration_batch(yb[None, :], p_full[None, :], with_test=False)["slope"][0])
    auc_opt = float(np.nanmean(auc_app - auc_test))
    slope_opt = float(np.nanmean(slope_app - slope_test))
    return OptimismResult(
        n=n,
        cases=cases,
        n_boot=int(idx.shape[0]),
        auc_apparent=apparent_auc,
        auc_optimism=auc_opt,
        auc_corrected=apparent_auc - auc_opt,
        slope_apparent=apparent_slope,
        slope_optimism=slope_opt,
        slope_corrected=apparent_slope - slope_opt,
        seconds=round(time.perf_counter() - started, 3),
    )


def internal_validation(
    train_df: pd.DataFrame,
    spec: StudySpec,
    *,
    class_weight: str | None = None,
    n_boot: int = 200,
    seed: int = 0,
) -> dict[str, Any]:
    """Harrell's bootstrap optimism correction of each endpoint's baseline regression on the training rows.

    The feature encoding of :func:`cohortlm.models.baseline.build_pipeline` is fitted
    once on the training rows (:func:`cohortlm.models.baseline.encoded_endpoints`); the
    regression (its ``C`` and class weighting) is refitted on every resample
    (:func:`bootstrap_optimism`).

    Returns:
        ``{endpoint: OptimismResult.to_dict()}`` in spec order.
    """
    return {
        name: bootstrap_optimism(
            design, y, C=C, class_weight=class_weight, n_boot=n_boot, seed=seed
        ).to_dict()
        for name, _, design, y, C in encoded_endpoints(train_df, spec, class_weight=class_weight, seed=seed)
    }
