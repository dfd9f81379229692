"""L2-penalised logistic regression by Newton–Raphson, with scikit-learn's objective.

The baseline's out-of-fold scores and the bootstrap optimism correction refit the
same regression hundreds of times on an already encoded design; a warm-started
Newton solve in numpy does that in a few steps each, where building a scikit-learn
pipeline per refit would cost more than the fit. The objective is scikit-learn's
``LogisticRegression(C, penalty="l2")`` (intercept unpenalised):
``Σ wᵢ·loss(yᵢ, ηᵢ) + ‖β‖² / (2C)``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import expit

__all__ = ["balanced_weights", "fit_logistic"]

_MAX_STEPS = 50
_TOL = 1e-8


def balanced_weights(y: ArrayLike) -> NDArray[np.float64]:
    """scikit-learn's ``class_weight="balanced"`` per patient: ``n / (2 · count of its class)``."""
    labels = np.asarray(y).astype(bool)
    m = int(labels.sum())
    return np.where(labels, labels.size / (2.0 * max(m, 1)), labels.size / (2.0 * max(labels.size - m, 1)))


def fit_logistic(
    X: ArrayLike,
    y: ArrayLike,
    *,
    C: float = 1.0,
    sample_weight: ArrayLike | None = None,
    start: NDArray[np.float64] | None = None,
) -> NDArray[np.float64]:
    """L2-penalised logistic regression by Newton–Raphson; returns ``[intercept, coef...]``.

    Args:
        X: Design, shape ``(n, d)`` (no intercept column).
        y: Outcomes 0/1.
        C: Inverse penalty strength, as scikit-learn's ``C``.
        sample_weight: Weight per patient (class weighting); default 1.
        start: Coefficients to start from (a warm start); default zeros.

    Returns:
        Coefficients, shape ``(d + 1,)``.
    """
    Xa = np.asarray(X, dtype=np.float64)
    yf = np.asarray(y, dtype=np.float64)
    w = np.ones(yf.shape) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    if not C > 0:
        raise ValueError(f"C must be positive, got {C!r}")
    d = Xa.shape[1]
    penalty = np.full(d + 1, 1.0 / C)
    penalty[0] = 0.0
    beta = np.zeros(d + 1) if start is None else np.array(start, dtype=np.float64)
    for _ in range(_MAX_STEPS):
        eta = beta[0] + Xa @ beta[1:]
        mu = expit(eta)
        r = w * (mu - yf)
        grad = np.concatenate([[r.sum()], Xa.T @ r]) + penalty * beta
        h = w * mu * (1.0 - mu)
        hx = Xa * h[:, None]
        hess = np.empty((d + 1, d + 1))
        hess[0, 0] = h.sum()
        hess[0, 1:] = hess[1:, 0] = hx.sum(axis=0)
        hess[1:, 1:] = Xa.T @ hx
        hess[np.diag_indices(d + 1)] += penalty
        step = np.linalg.solve(hess + 1e-10 * np.eye(d + 1), grad)
        beta = beta - step
        if np.max(np.abs(step)) < _TOL:
            break
    return beta
