"""Calibration as a test: logistic recalibration (Cox 1958) of predicted probabilities.

For outcomes ``y`` and predicted probabilities ``p`` the recalibration model is
``logit P(y = 1) = a + b · logit(p)``. A perfectly calibrated model has
``a = 0, b = 1``. Two summaries are reported, each with a Wald interval:

- **calibration-in-the-large** (``citl``): ``a`` with the slope fixed at 1
  (``logit(p)`` as an offset). ``citl < 0`` means the model predicts too much
  risk on average: predicting twice the observed risk of a rare outcome gives
  ``citl ≈ −ln 2 ≈ −0.69``;
- **calibration slope** (``slope``): ``b`` of the two-parameter fit. ``< 1`` means
  the predictions are too extreme (overfitting), ``> 1`` too timid.

The likelihood-ratio statistic of ``(a, b) = (0, 1)`` against the fitted pair is
Cox's test of perfect calibration (χ² with 2 df, so ``p = exp(−LR/2)``).

The fits are Newton–Raphson on arrays of shape ``(R, N)``: one row per
replicate, so the simulation of the gate (:mod:`cohortlm.evaluation.stats.simulate`) and
the gate on one data set (:func:`recalibration`, ``R = 1``) run the same code.
Probabilities are clipped to ``[1e-6, 1 − 1e-6]`` before the logit so that a
score of exactly 0 or 1 stays finite.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import expit
from scipy.stats import norm

from cohortlm.evaluation.stats.delong import _as_labels, _as_scores

__all__ = [
    "CALIBRATION_COLUMNS",
    "CalibrationResult",
    "calibration_summary",
    "integrated_calibration_index",
    "recalibration",
    "recalibration_batch",
    "smoothed_calibration",
]

_EPS = 1e-6
_ITERATIONS = 50
_TOL = 1e-8  # Newton stops when every replicate's step is below this


@dataclass(frozen=True)
class CalibrationResult:
    """Logistic recalibration of one model's probabilities on one endpoint.

    Attributes:
        citl: Calibration-in-the-large (intercept with slope fixed at 1); 0 is ideal.
        citl_ci: Two-sided Wald interval for ``citl`` at ``conf_level``.
        se_citl: Standard error of ``citl``.
        slope: Calibration slope of the two-parameter fit; 1 is ideal.
        slope_ci: Two-sided Wald interval for ``slope``.
        se_slope: Standard error of ``slope``.
        lr_stat: Likelihood-ratio statistic of ``(a, b) = (0, 1)`` (Cox's test).
        p_value: p-value of Cox's test (χ², 2 df).
        observed: Observed event rate.
        expected: Mean predicted probability.
        conf_level: Level of the intervals.
        n: Patients.
    """

    citl: float
    citl_ci: tuple[float, float]
    se_citl: float
    slope: float
    slope_ci: tuple[float, float]
    se_slope: float
    lr_stat: float
    p_value: float
    observed: float
    expected: float
    conf_level: float
    n: int

    @classmethod
    def undefined(cls, conf_level: float) -> CalibrationResult:
        """No fit (no patients, one class, or scores that are no probabilities): NaN numbers, n = 0."""
        nan = math.nan
        return cls(nan, (nan, nan), nan, nan, (nan, nan), nan, nan, nan, nan, nan, float(conf_level), 0)

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python form (lists for intervals)."""
        out = asdict(self)
        out["citl_ci"] = list(self.citl_ci)
        out["slope_ci"] = list(self.slope_ci)
        return out


def _loglik(y: NDArray[np.float64], eta: NDArray[np.float64]) -> NDArray[np.float64]:
    # y·η − log(1 + e^η), written to stay finite for large |η|.
    return np.sum(y * eta - np.logaddexp(0.0, eta), axis=-1)


def _halved(
    y: NDArray[np.float64], eta: NDArray[np.float64], deta: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Per replicate, the largest t in 1, 1/2, 1/4, ... with loglik(eta + t·deta) >= loglik(eta).

    A Newton step of a logistic fit can overshoot (far from the optimum, or with a
    nearly singular information); halving makes every iteration an ascent. ``eta``
    and ``deta`` are the linear predictor and its Newton change, shape ``(R, N)``.
    """
    t = np.ones(eta.shape[:-1])
    base = _loglik(y, eta)
    for _ in range(40):
        worse = ~(_loglik(y, eta + t[..., None] * deta) >= base - 1e-12 * np.abs(base))
        if not worse.any():
            break
        t = np.where(worse, t / 2.0, t)
    return t


def recalibration_batch(
    y: NDArray[np.bool_] | NDArray[np.float64],
    p: NDArray[np.float64],
    *,
    with_test: bool = True,
    with_citl: bool = True,
) -> dict[str, NDArray[np.float64]]:
    """Recalibration fits for ``R`` replicates at once.

    Args:
        y: Outcomes, shape ``(R, N)`` (bool or 0/1).
        p: Predicted probabilities, shape ``(R, N)``.
        with_test: Also compute Cox's likelihood-ratio test (the simulation of the
            gate, which does not use it, skips it).
        with_citl: Also fit calibration-in-the-large (the bootstrap of the slope skips it;
            ``citl`` and ``se_citl`` are then NaN).

    Returns:
        Arrays of shape ``(R,)``: ``citl``, ``se_citl``, ``slope``, ``se_slope`` and,
        with ``with_test``, ``lr_stat`` and ``p_value``. NaN where a fit does not
        exist (one class only). Standard errors come from the information at the
        last Newton iterate (its step was below 1e-8).
    """
    yf = np.asarray(y, dtype=np.float64)
    pc = np.clip(p, _EPS, 1 - _EPS)
    x = np.log(pc) - np.log1p(-pc)
    n_events = yf.sum(axis=-1)
    degenerate = (n_events == 0) | (n_events == yf.shape[-1])

    # Slope fixed at 1: one-parameter Newton on the intercept (offset x), with step halving.
    a = np.zeros(yf.shape[:-1])
    info = np.ones(yf.shape[:-1])
    for _ in range(_ITERATIONS if with_citl else 0):
        mu = expit(a[..., None] + x)
        info = np.maximum(np.sum(mu * (1 - mu), axis=-1), 1e-12)
        step = np.sum(yf - mu, axis=-1) / info
        a = a + _halved(yf, a[..., None] + x, np.broadcast_to(step[..., None], x.shape)) * step
        if not np.nanmax(np.abs(np.where(degenerate, 0.0, step)), initial=0.0) > _TOL:
            break
    mu = expit(a[..., None] + x)
    info = np.maximum(np.sum(mu * (1 - mu), axis=-1), 1e-12)
    se_a = 1.0 / np.sqrt(info)

    # Two parameters (intercept, slope): Newton from the ideal (0, 1) with step halving, on
    # the centred logit (a narrow band of predicted risks far from 1/2 makes the uncentred
    # information nearly singular, and an undamped or merely clipped Newton then cycles).
    centre = np.mean(x, axis=-1, keepdims=True)
    xc = x - centre
    c0 = centre[..., 0].copy()  # intercept on the centred scale: b0 + b1 · mean(x), at (0, 1)
    b1 = np.ones(yf.shape[:-1])
    for _ in range(_ITERATIONS):
        mu = expit(c0[..., None] + b1[..., None] * xc)
        w = mu * (1 - mu)
        r = yf - mu
        wx = w * xc
        g0, g1 = r.sum(axis=-1), (r * xc).sum(axis=-1)
        h00, h01, h11 = w.sum(axis=-1), wx.sum(axis=-1), (wx * xc).sum(axis=-1)
        det = np.maximum(h00 * h11 - h01 * h01, 1e-300)
        d0 = (h11 * g0 - h01 * g1) / det
        d1 = (h00 * g1 - h01 * g0) / det
        t = _halved(yf, c0[..., None] + b1[..., None] * xc, d0[..., None] + d1[..., None] * xc)
        c0, b1 = c0 + t * d0, b1 + t * d1
        if not np.nanmax(np.where(degenerate, 0.0, np.abs(d0) + np.abs(d1)), initial=0.0) > _TOL:
            break
    mu = expit(c0[..., None] + b1[..., None] * xc)
    w = mu * (1 - mu)
    h00, h01, h11 = w.sum(axis=-1), (w * xc).sum(axis=-1), (w * xc * xc).sum(axis=-1)
    det = np.maximum(h00 * h11 - h01 * h01, 1e-300)
    b0 = c0 - b1 * centre[..., 0]
    if not with_citl:
        a = se_a = np.full(yf.shape[:-1], np.nan)
    out = {"citl": a, "se_citl": se_a, "slope": b1, "se_slope": np.sqrt(h00 / det)}
    if with_test:
        lr = np.maximum(2.0 * (_loglik(yf, b0[..., None] + b1[..., None] * x) - _loglik(yf, x)), 0.0)
        out["lr_stat"] = lr
        out["p_value"] = np.exp(-lr / 2.0)
    for key in out:
        out[key] = np.where(degenerate, np.nan, out[key])
    return out


def recalibration(y_true: ArrayLike, y_prob: ArrayLike, *, conf_level: float = 0.95) -> CalibrationResult:
    """Calibration-in-the-large, calibration slope and Cox's test for one model on one endpoint.

    Args:
        y_true: Outcomes, 1 = case, 0 = control.
        y_prob: Predicted probabilities in [0, 1].
        conf_level: Level of the two-sided Wald intervals, in (0, 1).

    Returns:
        A :class:`CalibrationResult`; NaN numbers when ``y_true`` holds one class only.

    Raises:
        ValueError: If an argument is malformed or a probability lies outside [0, 1].
    """
    if not 0.0 < float(conf_level) < 1.0:
        raise ValueError(f"conf_level must be in (0, 1), got {conf_level!r}")
    labels = _as_labels(y_true, "y_true")
    prob = _as_scores(y_prob, "y_prob", labels.shape[0])
    if ((prob < 0) | (prob > 1)).any():
        raise ValueError("y_prob must hold probabilities in [0, 1]")
    n = int(labels.shape[0])
    if n == 0:
        return CalibrationResult.undefined(conf_level)
    fit = {k: float(v[0]) for k, v in recalibration_batch(labels[None, :], prob[None, :]).items()}
    z = float(norm.ppf(0.5 + float(conf_level) / 2.0))

    def interval(est: float, se: float) -> tuple[float, float]:
        return (
            (est - z * se, est + z * se) if math.isfinite(est) and math.isfinite(se) else (math.nan, math.nan)
        )

    return CalibrationResult(
        citl=fit["citl"],
        citl_ci=interval(fit["citl"], fit["se_citl"]),
        se_citl=fit["se_citl"],
        slope=fit["slope"],
        slope_ci=interval(fit["slope"], fit["se_slope"]),
        se_slope=fit["se_slope"],
        lr_stat=fit["lr_stat"],
        p_value=fit["p_value"],
        observed=float(labels.mean()),
        expected=float(prob.mean()),
        conf_level=float(conf_level),
        n=n,
    )


# ----------------------------------------------------------------------------- the calibration table

#: span of the lowess smoother behind the ICI and the smoothed curve (R loess's default)
LOWESS_FRAC = 0.75


def smoothed_calibration(
    y_true: ArrayLike, y_prob: ArrayLike, *, at: ArrayLike | None = None, frac: float = LOWESS_FRAC
) -> NDArray[np.float64]:
    """Observed risk as a smooth function of predicted risk (lowess of outcome on prediction).

    The smoother is statsmodels' locally linear lowess with tricube weights, span
    ``frac`` and no robustness iterations (they would treat rare cases as
    outliers). Austin & Steyerberg (Stat Med 2019;38:4051) use R's loess, which is
    locally quadratic; on the curves of a calibration plot they agree closely.

    Args:
        y_true: Outcomes, 1 = case, 0 = control.
        y_prob: Predicted probabilities in [0, 1].
        at: Predicted risks to evaluate the curve at; default each patient's own.
        frac: Share of the patients in each local fit.

    Returns:
        The smoothed observed risk at ``at``, clipped to [0, 1]; NaN for no patients.
    """
    from statsmodels.nonparametric.smoothers_lowess import lowess

    labels = _as_labels(y_true, "y_true").astype(np.float64)
    prob = _as_scores(y_prob, "y_prob", labels.shape[0])
    where = prob if at is None else np.asarray(at, dtype=np.float64)
    if labels.shape[0] == 0:
        return np.full(where.shape, math.nan)
    if np.ptp(prob) == 0:  # one predicted value: the curve is the observed rate there
        return np.full(where.shape, float(labels.mean()))
    # delta: points closer than 1 % of the range share one local fit (linear interpolation
    # between them), which keeps the smoother linear in n without a visible change.
    fit = lowess(labels, prob, frac=frac, it=0, delta=0.01 * float(np.ptp(prob)), return_sorted=True)
    curve = np.interp(where, fit[:, 0], fit[:, 1])
    return np.clip(curve, 0.0, 1.0)


def integrated_calibration_index(y_true: ArrayLike, y_prob: ArrayLike, *, frac: float = LOWESS_FRAC) -> float:
    """ICI: the mean absolute gap between predicted and smoothed observed risk (Austin & Steyerberg 2019).

    Args:
        y_true: Outcomes, 1 = case, 0 = control.
        y_prob: Predicted probabilities in [0, 1].
        frac: Span of the smoother (:func:`smoothed_calibration`).

    Returns:
        The ICI in [0, 1] (0 is perfect), weighted by the distribution of predicted
        risk; NaN for no patients.
    """
    labels = _as_labels(y_true, "y_true")
    prob = _as_scores(y_prob, "y_prob", labels.shape[0])
    if labels.shape[0] == 0:
        return math.nan
    return float(np.mean(np.abs(smoothed_calibration(labels, prob, frac=frac) - prob)))


#: the columns of ``report/calibration.csv``, in order
CALIBRATION_COLUMNS: tuple[str, ...] = (
    "endpoint",
    "model",
    "n",
    "cases",
    "citl",
    "citl_ci_low",
    "citl_ci_high",
    "slope",
    "slope_ci_low",
    "slope_ci_high",
    "oe_ratio",
    "ici",
    "brier",
)


def calibration_summary(
    y_true: ArrayLike, y_prob: ArrayLike, *, conf_level: float = 0.95, endpoint: str = "", model: str = ""
) -> dict[str, Any]:
    """One row of the calibration table (:data:`CALIBRATION_COLUMNS`).

    Calibration-in-the-large and slope with Wald intervals (:func:`recalibration`),
    the observed/expected ratio (observed cases over the sum of predicted risks; 1
    is ideal, above 1 the model under-predicts), the ICI and the Brier score.

    Args:
        y_true: Outcomes, 1 = case, 0 = control.
        y_prob: Predicted probabilities in [0, 1].
        conf_level: Level of the intervals.
        endpoint: The endpoint's name, for the row.
        model: The model's name, for the row.

    Returns:
        The row as a dict; NaN where a number does not exist (one class only).
    """
    labels = _as_labels(y_true, "y_true")
    prob = _as_scores(y_prob, "y_prob", labels.shape[0])
    fit = recalibration(labels, prob, conf_level=conf_level)
    n, cases = int(labels.shape[0]), int(labels.sum())
    expected = float(prob.sum())
    return {
        "endpoint": endpoint,
        "model": model,
        "n": n,
        "cases": cases,
        "citl": fit.citl,
        "citl_ci_low": fit.citl_ci[0],
        "citl_ci_high": fit.citl_ci[1],
        "slope": fit.slope,
        "slope_ci_low": fit.slope_ci[0],
        "slope_ci_high": fit.slope_ci[1],
        "oe_ratio": cases / expected if expected > 0 else math.nan,
        "ici": integrated_calibration_index(labels, prob) if n else math.nan,
        "brier": float(np.mean((prob - labels) ** 2)) if n else math.nan,
    }
