"""The vectorised simulation against the one-data-set code, calibration against scikit-learn, and
the default policy's false promotion on a reduced simulation (slow)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from cohortlm.evaluation.gate import GatePolicy, apply_policy, load_policy, operating_characteristics
from cohortlm.evaluation.stats.calibration import recalibration, recalibration_batch
from cohortlm.evaluation.stats.delong import auc_ci, auc_interval, delong_test
from cohortlm.evaluation.stats.simulate import (
    RA_SUBGROUP_SHARES,
    Scenario,
    _masked_mean_var,
    _paired_numbers,
    _placements_batch,
    simulate_gate_stats,
)


def test_batched_placements_equal_delong_test() -> None:
    rng = np.random.default_rng(3)
    y = rng.random((4, 300)) < 0.2
    a = rng.normal(size=(4, 300)) + y
    b = rng.normal(size=(4, 300)) + 0.5 * y
    va, vb = _placements_batch(y, a), _placements_batch(y, b)
    m = y.sum(axis=1).astype(float)
    auc_a, _ = _masked_mean_var(va, y, m)
    _, v10 = _masked_mean_var(va - vb, y, m)
    _, v01 = _masked_mean_var(va - vb, ~y, 300 - m)
    for i in range(4):
        r = delong_test(y[i].astype(int), a[i], b[i])
        assert auc_a[i] == pytest.approx(r.auc_a, abs=1e-12)
        assert (v10 / m + v01 / (300 - m))[i] == pytest.approx(r.var_delta, rel=1e-10)


def test_simulated_statistics_have_the_intended_truth() -> None:
    st = simulate_gate_stats(Scenario(n=1000, delta=(0.05, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)), reps=200)
    assert st.auc_candidate.shape == (1, 200, 8)
    assert np.mean(st.delta[0, :, 0]) == pytest.approx(0.05, abs=0.006)
    assert np.mean(st.delta[0, :, 1]) == pytest.approx(0.0, abs=0.004)
    assert np.mean(st.n_cases[0], axis=0)[4] == pytest.approx(38, abs=3)
    assert abs(np.nanmean(st.citl[0])) < 0.05 and abs(np.nanmean(st.slope[0]) - 1) < 0.05
    z = st.delta[0, :, 1:] / np.sqrt(st.var_delta[0, :, 1:])
    assert np.std(z) == pytest.approx(1.0, abs=0.1)


def test_stats_with_alt_calibration_replace_one_endpoint() -> None:
    st = simulate_gate_stats(Scenario(n=600), reps=20, alt_risk_multiplier=2.0)
    alt = st.with_alt_calibration(1)
    assert np.array_equal(alt.citl[..., 0], st.citl[..., 0])
    assert np.nanmean(alt.citl[..., 1]) < -0.3 < np.nanmean(st.citl[..., 1])
    assert np.array_equal(alt.auc_candidate, st.auc_candidate)


def test_recalibration_matches_unpenalised_logistic_regression() -> None:
    rng = np.random.default_rng(0)
    y = rng.random(2000) < 0.15
    p = np.clip(1 / (1 + np.exp(-(rng.normal(-2, 1, 2000) + 1.2 * y))), 0, 1)
    r = recalibration(y.astype(int), p)
    x = np.log(p / (1 - p)).reshape(-1, 1)
    lr = LogisticRegression(C=np.inf, tol=1e-10, max_iter=1000).fit(x, y)
    assert r.slope == pytest.approx(lr.coef_[0, 0], abs=1e-5)
    assert r.citl_ci[0] < r.citl < r.citl_ci[1]
    batch = recalibration_batch(y[None, :], p[None, :])
    assert batch["slope"][0] == pytest.approx(r.slope) and batch["p_value"][0] == pytest.approx(r.p_value)
    # Twice the risk of a rare outcome: calibration-in-the-large about −ln 2.
    y2 = rng.random(20000) < 0.05
    doubled = recalibration(y2.astype(int), np.full(20000, 0.10))
    assert doubled.citl == pytest.approx(math.log(0.05 / 0.95) - math.log(0.1 / 0.9), abs=0.1)
    assert math.isnan(recalibration([1, 1], [0.2, 0.3]).citl)


def test_logit_auc_interval_covers_with_few_cases() -> None:
    # n = 102 at 5 % prevalence (the RA validation split): the logit interval covers, the Wald one does not.
    rng = np.random.default_rng(0)
    mu = 0.9539  # √2·Φ⁻¹(0.75): AUC 0.75
    cover_logit = cover_wald = done = 0
    while done < 600:
        y = rng.random(102) < 0.05
        if y.sum() < 2:
            continue
        s = rng.normal(size=102) + mu * y
        r = auc_ci(y.astype(int), s)
        w = auc_interval(r.auc, r.variance, method="wald")
        cover_logit += r.ci[0] <= 0.75 <= r.ci[1]
        cover_wald += w[0] <= 0.75 <= w[1]
        done += 1
    assert cover_logit / done > cover_wald / done
    assert cover_logit / done >= 0.93


def test_operating_characteristics_counts_any_look() -> None:
    sc = Scenario(n=600, n_candidates=3)
    out = operating_characteristics(GatePolicy(), sc, reps=30)
    assert out.reps == 30 and len(out.per_look) == 3 and 0 <= out.promoted <= 1


@pytest.mark.slow
def test_default_policy_false_promotion_on_a_reduced_simulation() -> None:
    """300 simulated RA test splits (n = 2,263) per truth: the targets of issue 12, with slack."""
    policy = load_policy()
    h0 = operating_characteristics(policy, Scenario(), reps=300, seed=11)
    assert h0.promoted <= 0.08
    small = operating_characteristics(policy, Scenario(n=400), reps=300, seed=12)
    assert small.promoted <= 0.08
    power = operating_characteristics(policy, Scenario(delta=0.05), reps=300, seed=13)
    assert power.promoted >= 0.9
    worse = Scenario(delta=(0.05, 0.05, 0.05, 0.05, 0.05, 0.05, -0.10, 0.05))
    assert operating_characteristics(policy, worse, reps=300, seed=14).promoted <= 0.08
    st = simulate_gate_stats(Scenario(delta=0.05), reps=300, seed=15, alt_risk_multiplier=2.0)
    for e in (0, 6):  # 2× the risk on a rare endpoint
        arrays = st.with_alt_calibration(e).rule_inputs(0)
        assert apply_policy(arrays, policy, [f"e{i}" for i in range(8)]).promote.mean() <= 0.08


def test_simulated_subgroup_levels_have_the_intended_truth_and_equal_delong() -> None:
    """Men 15 %: the candidate 0.10 worse among them on endpoint 0, +0.04 elsewhere, equal on the rest."""
    deltas = (0.04, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    men = (-0.10, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    sc = Scenario(n=2263, delta=deltas, subgroup_shares=((0.85, 0.15),), level_delta=(0, 1, men))
    st = simulate_gate_stats(sc, reps=200, seed=4)
    sub = st.subgroup_inputs(0)
    assert sub is not None and sub.auc_candidate.shape == (200, 8 * 2)
    delta = sub.auc_candidate - sub.auc_champion
    assert np.mean(delta[:, 0]) == pytest.approx(0.04, abs=0.006)  # e1 women
    assert np.mean(delta[:, 1]) == pytest.approx(-0.10, abs=0.01)  # e1 men
    assert np.mean(delta[:, 3]) == pytest.approx(0.0, abs=0.006)  # e2 men
    assert np.mean(sub.n_cases[:, 1] + sub.n_controls[:, 1]) == round(0.15 * 2263)
    # Overall, the mixture: 0.85 × 0.04 + 0.15 × (−0.10) = +0.019.
    assert np.mean(st.delta[0, :, 0]) == pytest.approx(0.019, abs=0.006)
    z = delta[:, 2:] / np.sqrt(sub.var_delta[:, 2:])
    assert np.std(z) == pytest.approx(1.0, abs=0.1)
    # The level numbers are DeLong's on the level's patients.
    idx = sc.level_members()[1]
    rng = np.random.default_rng(0)
    y = rng.random((3, 2263)) < 0.3
    x_c, x_h = rng.normal(size=(3, 2263)) + y, rng.normal(size=(3, 2263)) + 0.5 * y
    m, n0, auc_c, auc_h, var = _paired_numbers(y[:, idx], x_c[:, idx], x_h[:, idx])
    for i in range(3):
        r = delong_test(y[i, idx].astype(int), x_c[i, idx], x_h[i, idx])
        assert (m[i], n0[i]) == (r.n_cases, r.n_controls)
        assert (auc_c[i], auc_h[i]) == pytest.approx((r.auc_a, r.auc_b), abs=1e-12)
        assert var[i] == pytest.approx(r.var_delta, rel=1e-10)


def test_subgroup_rule_blocks_only_through_a_shown_deficit() -> None:
    """Equal models: the subgroup rule rarely blocks; the same policy without it promotes as often."""
    sc = Scenario(n=1500, delta=0.03, subgroup_shares=RA_SUBGROUP_SHARES)
    st = simulate_gate_stats(sc, reps=60, seed=5)
    with_rule = operating_characteristics(GatePolicy(), sc, stats=st)
    without = operating_characteristics(GatePolicy(subgroups="none"), sc, stats=st)
    assert with_rule.promoted >= without.promoted - 0.05
