"""The monitor's statistics (cohortlm.monitoring): bins, merging, PSI, CBPE, the gate's figures."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from cohortlm.monitoring.bins import spec_bins
from cohortlm.monitoring.drift import feature_drift, group_bins, privacy_merge, psi
from cohortlm.monitoring.performance import (
    GateFigures,
    Tolerance,
    endpoint_report,
    expected_auc,
    gate_figures,
)


def test_bins_come_from_the_spec_and_count_missing_apart(ra_spec):
    bins = spec_bins(ra_spec)
    assert bins["tjc28"].n_bins == 29 and bins["tjc28"].integer_step  # one bin per joint count 0..28
    assert bins["age"].n_bins == 50
    assert bins["sex"].categories == ("female", "male")
    c = bins["age"].counts(np.array([16.0, 100.0, 58.0, math.nan, 200.0]))
    assert c.sum() == 5 and c[0] == 1 and c[49] == 2 and c[bins["age"].missing_bin] == 1
    s = bins["smoking"].counts(np.array(["never", None, "current"], dtype=object))
    assert list(s) == [1, 0, 1, 1]


def test_no_group_holds_fewer_than_ten_patients():
    served = np.array([3, 0, 12, 4, 4, 1, 30, 2])
    groups = group_bins(served, min_count=10)
    assert all(served[g].sum() >= 10 for g in groups)
    assert sorted(i for g in groups for i in g) == [0, 2, 3, 4, 5, 6, 7]  # empty bins left out
    assert min(privacy_merge(served)) >= 10
    assert privacy_merge(np.array([3, 4])) == [7]  # too few for two groups: one


def test_psi_is_zero_for_equal_shares_and_grows_with_a_shift():
    assert psi([10, 20, 30], [20, 40, 60]) == pytest.approx(0.0)
    assert psi([50, 50], [90, 10]) > psi([50, 50], [60, 40]) > 0


def test_drift_needs_a_large_psi_and_a_rejecting_test():
    rng = np.random.default_rng(3)
    ref = np.bincount(np.clip(rng.normal(25, 5, 20_000).astype(int), 0, 49), minlength=51)
    same = np.bincount(np.clip(rng.normal(25, 5, 2_000).astype(int), 0, 49), minlength=51)
    moved = np.bincount(np.clip(rng.normal(30, 5, 2_000).astype(int), 0, 49), minlength=51)
    assert not feature_drift("x", ref, same).drifted
    d = feature_drift("x", ref, moved)
    assert d.drifted and d.psi > 0.5 and d.p_value < 1e-10
    tiny = feature_drift("x", ref, np.bincount([40] * 12 + [5] * 3, minlength=51))
    assert tiny.n_groups >= 1


def test_expected_auc_matches_the_auc_of_outcomes_drawn_from_the_probabilities():
    rng = np.random.default_rng(0)
    p = rng.beta(2, 5, 20_000)
    drawn = np.mean([roc_auc_score(rng.random(len(p)) < p, p) for _ in range(10)])
    assert expected_auc(p) == pytest.approx(drawn, abs=0.005)
    rounded = np.round(p, 1)  # ties count one half
    drawn = np.mean([roc_auc_score(rng.random(len(p)) < rounded, rounded) for _ in range(10)])
    assert expected_auc(rounded) == pytest.approx(drawn, abs=0.005)
    assert math.isnan(expected_auc([0.3]))


def test_gate_figures_take_the_promoted_side_and_the_policy_tolerance():
    decision = {
        "promote": True,
        "policy": {"citl_tolerance": 0.3, "slope_range": [0.7, 1.3], "conf_level": 0.95},
        "endpoints": [
            {
                "endpoint": "a",
                "auc_candidate": 0.8,
                "ci_auc_candidate": [0.75, 0.845],
                "citl_candidate": 0.0,
                "slope_candidate": 1.0,
                "auc_champion": 0.7,
                "ci_auc_champion": [0.6, 0.8],
            },
        ],
    }
    figures, tol = gate_figures(decision)
    assert figures["a"].auc == 0.8 and tol == Tolerance(0.3, 0.7, 1.3)
    assert 0.02 < figures["a"].se < 0.03
    figures, _ = gate_figures({**decision, "promote": False})
    assert figures["a"].auc == 0.7


def _sample(rng, n, signal, shift=0.0):
    x = rng.normal(size=n)
    p_true = 1 / (1 + np.exp(-(-1.0 + signal * x + shift)))
    y = (rng.random(n) < p_true).astype(float)
    p_model = 1 / (1 + np.exp(-(-1.0 + 1.2 * x)))
    return y, p_model


def test_a_healthy_endpoint_is_not_degraded_and_a_worse_one_is():
    rng = np.random.default_rng(1)
    gate = GateFigures(auc=0.78, auc_ci=(0.75, 0.81), citl=0.0, slope=1.0)
    y, p = _sample(rng, 3000, 1.2)
    ok = endpoint_report("e", p, y, p, gate=gate, tolerance=Tolerance(), alpha=0.002)
    assert not ok.degraded and ok.auc_ci_low < ok.auc < ok.auc_ci_high
    assert abs(ok.citl) < 0.2 and ok.oe_ratio == pytest.approx(1, abs=0.1)
    y, p = _sample(rng, 3000, 0.5, shift=-0.8)  # weaker signal, fewer events than predicted
    bad = endpoint_report("e", p, y, p, gate=gate, tolerance=Tolerance(), alpha=0.002)
    assert bad.auc_drop_significant and bad.calibration_off and bad.degraded
    assert bad.citl < -0.2 and bad.oe_ratio < 0.8
    few = endpoint_report("e", p[:15], y[:15], p[:15], gate=gate, tolerance=Tolerance(), alpha=0.002)
    assert math.isnan(few.auc) and not few.degraded  # too few cases: no figures, no alarm
