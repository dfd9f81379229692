"""Live performance of the served champion per endpoint, against the gate's figures.

With outcomes (the patients whose two-year outcome has arrived):

* AUC with its DeLong interval (:func:`cohortlm.evaluation.stats.delong.auc_ci`);
* calibration intercept (``citl``) and slope with Wald intervals
  (:func:`cohortlm.evaluation.stats.calibration.recalibration`), O/E (observed over
  expected events) and the Brier score;
* the drop from the AUC the gate recorded at promotion, tested one-sided with
  ``z = (AUC_gate - AUC_live) / sqrt(se_gate² + se_live²)`` (two independent samples;
  ``se_gate`` recovered from the recorded interval);
* calibration outside the gate's tolerance (the policy's ``citl_tolerance`` and
  ``slope_range``): the whole interval lies outside the allowed range.

An endpoint is *degraded* when the drop is significant or its calibration is shown
to be outside the tolerance, at the level the caller gives (Bonferroni over the
endpoints' tests keeps a window's false alarms at the family level).

Before outcomes, the *expected* AUC (NannyML's confidence-based performance
estimation, CBPE): if the champion's probabilities are calibrated on the served
population, a patient with probability ``p`` is a case with probability ``p``, and
the expected AUC is ``Σ_{i≠j} p_i (1 - p_j) [s_i > s_j] / Σ_{i≠j} p_i (1 - p_j)``
(ties count one half). Its assumptions: no concept shift (P(y | x) unchanged) and
calibrated probabilities; a covariate shift moves it, a concept shift does not.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import norm

from cohortlm.evaluation.stats.calibration import CalibrationResult, recalibration
from cohortlm.evaluation.stats.delong import AUCResult, DeLongWarning, auc_ci

MIN_CLASS = 10
DEFAULT_CITL_TOLERANCE = 0.2
DEFAULT_SLOPE_RANGE = (0.8, 1.25)


@dataclass(frozen=True)
class GateFigures:
    """What the gate recorded for the promoted model on one endpoint."""

    auc: float
    auc_ci: tuple[float, float]
    citl: float
    slope: float
    conf_level: float = 0.95

    @property
    def se(self) -> float:
        """The AUC's standard error, from its (logit) interval by the delta method."""
        lo, hi = self.auc_ci
        a = self.auc
        if not all(math.isfinite(x) for x in (lo, hi, a)) or not 0 < lo < hi < 1 or not 0 < a < 1:
            return math.nan
        z = float(norm.ppf(0.5 + self.conf_level / 2))
        half_logit = (math.log(hi / (1 - hi)) - math.log(lo / (1 - lo))) / (2 * z)
        return half_logit * a * (1 - a)


@dataclass(frozen=True)
class Tolerance:
    """The gate's calibration tolerance (its policy's ``citl_tolerance`` and ``slope_range``)."""

    citl: float = DEFAULT_CITL_TOLERANCE
    slope_low: float = DEFAULT_SLOPE_RANGE[0]
    slope_high: float = DEFAULT_SLOPE_RANGE[1]


def _num(x: Any) -> float:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return math.nan
    return v


def gate_figures(decision: Mapping[str, Any]) -> tuple[dict[str, GateFigures], Tolerance]:
    """The promoted model's figures per endpoint, and the calibration tolerance, from a decision record.

    The promoted model is the candidate when the record says ``promote``, the champion
    otherwise (the gate kept it); where the champion has no figures (a first run, no
    champion), the candidate's are used.
    """
    policy = decision.get("policy") or {}
    slope_range = policy.get("slope_range") or DEFAULT_SLOPE_RANGE
    tol = Tolerance(
        citl=_num(policy.get("citl_tolerance", DEFAULT_CITL_TOLERANCE)),
        slope_low=_num(slope_range[0]),
        slope_high=_num(slope_range[1]),
    )
    level = _num(policy.get("conf_level", 0.95))
    side = "candidate" if decision.get("promote") else "champion"
    out: dict[str, GateFigures] = {}
    for ep in decision.get("endpoints") or []:
        s = side
        if not math.isfinite(_num(ep.get(f"auc_{s}"))):
            s = "candidate"
        ci = ep.get(f"ci_auc_{s}") or (math.nan, math.nan)
        out[str(ep.get("endpoint"))] = GateFigures(
            auc=_num(ep.get(f"auc_{s}")),
            auc_ci=(_num(ci[0]), _num(ci[1])),
            citl=_num(ep.get(f"citl_{s}")),
            slope=_num(ep.get(f"slope_{s}")),
            conf_level=level if math.isfinite(level) else 0.95,
        )
    return out, tol


def expected_auc(probabilities: ArrayLike) -> float:
    """CBPE's expected AUC of calibrated probabilities (NaN for fewer than two patients)."""
    p = np.asarray(probabilities, dtype=float)
    p = p[np.isfinite(p)]
    if len(p) < 2:
        return math.nan
    values, inverse = np.unique(p, return_inverse=True)
    w_case = np.bincount(inverse, weights=p)  # expected cases per distinct score
    w_ctrl = np.bincount(inverse, weights=1 - p)  # expected controls per distinct score
    below = np.concatenate([[0.0], np.cumsum(w_ctrl)[:-1]])
    # pairs at one distinct score: expected case-control pairs among different patients, half credit
    same = w_case * w_ctrl - np.bincount(inverse, weights=p * (1 - p))
    num = float(np.sum(w_case * below) + 0.5 * np.sum(same))
    den = float(p.sum() * (1 - p).sum() - np.sum(p * (1 - p)))
    del values
    return num / den if den > 0 else math.nan


@dataclass(frozen=True)
class EndpointReport:
    """Live figures of one endpoint over a window."""

    endpoint: str
    n_predictions: int
    n_outcomes: int
    n_cases: int
    auc: float
    auc_ci_low: float
    auc_ci_high: float
    calibration: CalibrationResult
    oe_ratio: float
    brier: float
    expected_auc: float
    gate_auc: float
    gate_citl: float
    gate_slope: float
    auc_drop: float
    auc_drop_p: float
    auc_drop_significant: bool
    calibration_off: bool
    degraded: bool

    @property
    def citl(self) -> float:
        """Calibration-in-the-large (0 is ideal)."""
        return self.calibration.citl

    @property
    def slope(self) -> float:
        """Calibration slope (1 is ideal)."""
        return self.calibration.slope

    def to_dict(self) -> dict[str, Any]:
        f = _json_num
        cal = self.calibration
        return {
            "n_predictions": self.n_predictions,
            "n_outcomes": self.n_outcomes,
            "n_cases": self.n_cases,
            "auc": f(self.auc),
            "auc_ci_low": f(self.auc_ci_low),
            "auc_ci_high": f(self.auc_ci_high),
            "citl": f(cal.citl),
            "citl_ci": [f(cal.citl_ci[0]), f(cal.citl_ci[1])],
            "slope": f(cal.slope),
            "slope_ci": [f(cal.slope_ci[0]), f(cal.slope_ci[1])],
            "oe_ratio": f(self.oe_ratio),
            "brier": f(self.brier),
            "expected_auc": f(self.expected_auc),
            "gate": {"auc": f(self.gate_auc), "citl": f(self.gate_citl), "slope": f(self.gate_slope)},
            "auc_drop": f(self.auc_drop),
            "auc_drop_p": f(self.auc_drop_p),
            "auc_drop_significant": self.auc_drop_significant,
            "calibration_off": self.calibration_off,
            "degraded": self.degraded,
        }


def _json_num(x: float) -> float | None:
    return round(float(x), 6) if math.isfinite(x) else None


def endpoint_report(
    endpoint: str,
    served_probabilities: ArrayLike,
    y_true: ArrayLike,
    y_prob: ArrayLike,
    *,
    gate: GateFigures | None,
    tolerance: Tolerance,
    alpha: float,
) -> EndpointReport:
    """Figures of one endpoint: CBPE on every served prediction, the rest on those with outcomes.

    Args:
        endpoint: its name.
        served_probabilities: every probability served in the window.
        y_true: outcomes (0/1) of the patients with outcomes.
        y_prob: their served probabilities, aligned with ``y_true``.
        gate: the figures the gate recorded (None: nothing to compare with).
        tolerance: the gate's calibration tolerance.
        alpha: the level of each test (the drop, and the calibration intervals at 1 - alpha).
    """
    served = np.asarray(served_probabilities, dtype=float)
    y = np.asarray(y_true, dtype=float)
    p = np.asarray(y_prob, dtype=float)
    m = int(y.sum())
    n_out = len(y)
    oe = brier = math.nan
    if n_out:
        brier = float(np.mean((p - y) ** 2))
        oe = float(m / p.sum()) if p.sum() > 0 else math.nan
    # Too few cases or controls: no figures, so no alarm.
    enough = m >= MIN_CLASS and n_out - m >= MIN_CLASS
    res = AUCResult.undefined(0.95)
    cal = CalibrationResult.undefined(1 - alpha)
    if enough:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeLongWarning)
            res = auc_ci(y.astype(int), p)
        cal = recalibration(y.astype(int), p, conf_level=1 - alpha)
    drop = p_drop = math.nan
    significant = calibration_off = False
    if enough and gate is not None and math.isfinite(gate.auc):
        drop = gate.auc - res.auc
        se_total = math.sqrt((gate.se if math.isfinite(gate.se) else 0.0) ** 2 + res.se**2)
        if se_total > 0:
            p_drop = float(norm.sf(drop / se_total))
            significant = bool(drop > 0 and p_drop < alpha)
    if enough:
        citl_out = cal.citl_ci[0] > tolerance.citl or cal.citl_ci[1] < -tolerance.citl
        slope_out = cal.slope_ci[0] > tolerance.slope_high or cal.slope_ci[1] < tolerance.slope_low
        calibration_off = bool(citl_out or slope_out)
    return EndpointReport(
        endpoint=endpoint,
        n_predictions=len(served),
        n_outcomes=n_out,
        n_cases=m,
        auc=res.auc,
        auc_ci_low=res.ci[0],
        auc_ci_high=res.ci[1],
        calibration=cal,
        oe_ratio=oe,
        brier=brier,
        expected_auc=expected_auc(served),
        gate_auc=gate.auc if gate else math.nan,
        gate_citl=gate.citl if gate else math.nan,
        gate_slope=gate.slope if gate else math.nan,
        auc_drop=drop,
        auc_drop_p=p_drop,
        auc_drop_significant=significant,
        calibration_off=calibration_off,
        degraded=significant or calibration_off,
    )
