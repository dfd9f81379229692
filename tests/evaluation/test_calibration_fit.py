"""The recalibration fit converges where a plain Newton cycles.

A zero-shot LLM's predicted risks sit in a narrow band far from 1/2 (here around
0.5 %), with a prevalence ten times higher and a rank order that may even be
reversed. From the ideal start (intercept 0, slope 1) an undamped Newton step
overshoots, and a step merely clipped to ±5 cycles between two points forever,
ending where it started: slope 1.000 with a standard error in the hundreds, a
silent wrong number in the calibration table and the gate. statsmodels' GLM is
the independent reference.
"""

from __future__ import annotations

import numpy as np
import pytest
import statsmodels.api as sm
from scipy.special import expit

from cohortlm.evaluation.stats.calibration import calibration_summary, recalibration, recalibration_batch


def _narrow_band(seed: int, *, n: int = 1500, prevalence: float = 0.04, reversed_order: bool = True):
    rng = np.random.default_rng(seed)
    x = rng.normal(-5.3, 0.3, n)  # logit of ~0.5 % risks
    signal = -x if reversed_order else x
    y = rng.random(n) < expit(np.log(prevalence / (1 - prevalence)) + 0.8 * (signal - signal.mean()) / 0.3)
    return y.astype(float), expit(x)


def _statsmodels(y, p):
    x = np.log(p / (1 - p))
    full = sm.GLM(y, sm.add_constant(x), family=sm.families.Binomial()).fit()
    citl = sm.GLM(y, np.ones((len(y), 1)), offset=x, family=sm.families.Binomial()).fit()
    return full.params[1], full.bse[1], citl.params[0], citl.bse[0]


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("reversed_order", [True, False])
def test_a_narrow_band_of_small_risks_fits_like_statsmodels(seed, reversed_order):
    y, p = _narrow_band(seed, reversed_order=reversed_order)
    slope, se_slope, citl, se_citl = _statsmodels(y, p)
    fit = recalibration(y, p)
    assert fit.slope == pytest.approx(slope, abs=1e-6)
    assert fit.se_slope == pytest.approx(se_slope, rel=1e-5)
    assert fit.citl == pytest.approx(citl, abs=1e-6)
    assert fit.se_citl == pytest.approx(se_citl, rel=1e-5)
    # the batch (the bootstrap's and the simulation's path) agrees replicate by replicate
    batch = recalibration_batch(np.stack([y, y[::-1]]), np.stack([p, p[::-1]]))
    assert batch["slope"][0] == pytest.approx(slope, abs=1e-6)
    assert batch["slope"][1] == pytest.approx(slope, abs=1e-6)


def test_the_calibration_table_row_carries_the_converged_slope():
    y, p = _narrow_band(0)
    slope, se_slope, _, _ = _statsmodels(y, p)
    row = calibration_summary(y, p, endpoint="e", model="m")
    assert row["slope"] == pytest.approx(slope, abs=1e-6)
    assert row["slope_ci_high"] - row["slope_ci_low"] == pytest.approx(2 * 1.959964 * se_slope, rel=1e-4)
    assert row["slope"] != pytest.approx(1.0, abs=1e-3)
