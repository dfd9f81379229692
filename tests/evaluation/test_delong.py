"""The fast DeLong test against pROC's reference values and a brute-force O(m·n) version."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score

from cohortlm.evaluation.stats import (
    DeLongWarning,
    auc_ci,
    benjamini_hochberg,
    delong_covariance,
    delong_test,
    delong_test_unpaired,
    holm,
)

REFERENCE = json.loads((Path(__file__).parent / "proc_reference.json").read_text())
PAIRED = [c for c in REFERENCE["cases"] if c["paired"]]
UNPAIRED = [c for c in REFERENCE["cases"] if not c["paired"]]
TOL = 1e-6


def brute_force(y: np.ndarray, *scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DeLong (1988) as written: every case against every control, O(m·n)."""
    y = np.asarray(y).astype(bool)
    v10, v01, aucs = [], [], []
    for s in scores:
        x, z = s[y], s[~y]
        psi = (x[:, None] > z[None, :]) + 0.5 * (x[:, None] == z[None, :])
        v10.append(psi.mean(axis=1))
        v01.append(psi.mean(axis=0))
        aucs.append(psi.mean())
    m, n = len(v10[0]), len(v01[0])
    s10 = np.atleast_2d(np.cov(np.array(v10)))
    s01 = np.atleast_2d(np.cov(np.array(v01)))
    return np.array(aucs), s10 / m + s01 / n


@pytest.mark.parametrize("case", PAIRED, ids=[c["name"] for c in PAIRED])
def test_paired_matches_proc(case: dict) -> None:
    r = delong_test(
        case["y"], case["a"], case["b"], alternative=case["alternative"], conf_level=case["conf_level"]
    )
    assert r.auc_a == pytest.approx(case["auc_a"], abs=TOL)
    assert r.auc_b == pytest.approx(case["auc_b"], abs=TOL)
    assert r.var_auc_a == pytest.approx(case["var_auc_a"], abs=TOL)
    assert r.var_auc_b == pytest.approx(case["var_auc_b"], abs=TOL)
    assert r.cov_ab == pytest.approx(case["cov_ab"], abs=TOL)
    assert r.z == pytest.approx(case["z"], abs=TOL)
    assert r.p_value == pytest.approx(case["p_value"], abs=TOL)
    assert r.ci_delta == pytest.approx(tuple(case["ci_delta"]), abs=TOL)
    assert r.ci_auc_a == pytest.approx(tuple(case["ci_auc_a"]), abs=TOL)
    assert r.ci_auc_b == pytest.approx(tuple(case["ci_auc_b"]), abs=TOL)
    assert (r.n_cases, r.n_controls) == (case["n_cases"], case["n_controls"])
    ci = auc_ci(case["y"], case["a"], conf_level=case["conf_level"], method="wald")
    assert ci.ci == pytest.approx(tuple(case["ci_auc_a"]), abs=TOL)
    assert ci.variance == pytest.approx(case["var_auc_a"], abs=TOL)


@pytest.mark.parametrize("case", UNPAIRED, ids=[c["name"] for c in UNPAIRED])
def test_unpaired_matches_proc(case: dict) -> None:
    r = delong_test_unpaired(case["y_a"], case["a"], case["y_b"], case["b"], alternative=case["alternative"])
    assert r.auc_a == pytest.approx(case["auc_a"], abs=TOL)
    assert r.auc_b == pytest.approx(case["auc_b"], abs=TOL)
    assert r.z == pytest.approx(case["z"], abs=TOL)
    assert r.df == pytest.approx(case["df"], abs=TOL)
    assert r.p_value == pytest.approx(case["p_value"], abs=TOL)
    assert r.ci_auc_a == pytest.approx(tuple(case["ci_auc_a"]), abs=TOL)
    assert not r.paired


def test_reference_covers_the_required_cases() -> None:
    names = " ".join(c["name"] for c in REFERENCE["cases"])
    for word in ("small", "ties", "rare", "near_identical", "greater", "less", "two.sided", "unpaired"):
        assert word in names


def test_p_adjust_matches_r() -> None:
    ref = REFERENCE["p_adjust"]
    np.testing.assert_allclose(holm(ref["p"]), ref["holm"], atol=1e-12)
    np.testing.assert_allclose(benjamini_hochberg(ref["p"]), ref["bh"], atol=1e-12)


def test_p_adjust_keeps_nan_out_of_the_count() -> None:
    out = holm([0.01, math.nan, 0.04])
    assert math.isnan(out[1])
    np.testing.assert_allclose(out[[0, 2]], [0.02, 0.04])


# Scores drawn from a few values so that ties (within and across classes) are common.
scores_with_ties = st.lists(st.integers(min_value=0, max_value=6), min_size=4, max_size=60)


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_fast_equals_brute_force_with_ties(data: st.DataObject) -> None:
    n = data.draw(st.integers(min_value=4, max_value=60))
    y = np.array(data.draw(st.lists(st.integers(0, 1), min_size=n, max_size=n)))
    if y.sum() < 2 or (1 - y).sum() < 2:
        y[:2], y[2:4] = 1, 0
    a = np.array(data.draw(st.lists(st.integers(0, 6), min_size=n, max_size=n)), dtype=float) / 2
    b = np.array(data.draw(st.lists(st.floats(-3, 3, allow_nan=False), min_size=n, max_size=n)))
    b = np.round(b, 1)  # coarse rounding: ties again
    aucs, cov = delong_covariance(y, a, b)
    ref_aucs, ref_cov = brute_force(y, a, b)
    np.testing.assert_allclose(aucs, ref_aucs, atol=1e-12)
    np.testing.assert_allclose(cov, ref_cov, atol=1e-12)
    assert aucs[0] == pytest.approx(roc_auc_score(y, a), abs=1e-12)
    r = delong_test(y, a, b)
    var = ref_cov[0, 0] + ref_cov[1, 1] - 2 * ref_cov[0, 1]
    assert r.var_delta == pytest.approx(var, abs=1e-12)


@settings(max_examples=50, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    alternative=st.sampled_from(["two-sided", "greater", "less"]),
)
def test_alternatives_are_consistent(seed: int, alternative: str) -> None:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 40)
    y[:2], y[2:4] = 1, 0
    a, b = rng.normal(size=40) + y, rng.normal(size=40)
    g = delong_test(y, a, b, alternative="greater").p_value
    less = delong_test(y, a, b, alternative="less").p_value
    two = delong_test(y, a, b, alternative="two-sided").p_value
    assert g + less == pytest.approx(1.0)
    assert two == pytest.approx(min(1.0, 2 * min(g, less)))
    # Swapping the models mirrors the test.
    r, s = delong_test(y, a, b, alternative=alternative), delong_test(y, b, a, alternative=alternative)
    assert s.delta == pytest.approx(-r.delta)
    assert s.z == pytest.approx(-r.z)


def test_identical_scores_give_z_zero() -> None:
    y = [0, 1, 0, 1, 1, 0]
    s = [0.1, 0.8, 0.3, 0.4, 0.9, 0.2]
    r = delong_test(y, s, s, alternative="greater")
    assert r.delta == 0 and r.z == 0 and r.p_value == pytest.approx(0.5)


def test_one_class_is_nan_with_warning() -> None:
    with pytest.warns(DeLongWarning, match="0 control"):
        r = delong_test([1, 1, 1], [0.1, 0.2, 0.3], [0.3, 0.2, 0.1])
    assert math.isnan(r.auc_a) and math.isnan(r.p_value) and r.n_cases == 3
    with pytest.warns(DeLongWarning):
        assert math.isnan(auc_ci([0, 0], [0.1, 0.2]).auc)


def test_single_case_gives_auc_but_nan_variance() -> None:
    with pytest.warns(DeLongWarning, match="at least two"):
        r = delong_test([0, 0, 1, 0], [0.1, 0.2, 0.9, 0.3], [0.3, 0.2, 0.1, 0.4])
    assert r.auc_a == 1.0 and math.isnan(r.z)


def test_bool_labels_and_lists_work() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = delong_test([False, True, False, True], [0.1, 0.9, 0.2, 0.4], [0.3, 0.5, 0.6, 0.2])
    assert r.auc_a == 1.0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"alternative": "up"}, "alternative must be 'two-sided', 'greater' or 'less', got 'up'"),
        ({"conf_level": 1.5}, "conf_level must be in"),
    ],
)
def test_bad_options_name_the_argument(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        delong_test([0, 1], [0.1, 0.2], [0.2, 0.1], **kwargs)


@pytest.mark.parametrize(
    ("y", "a", "b", "match"),
    [
        ([0, 1, 2], [0.1, 0.2, 0.3], [0.1, 0.2, 0.3], "y_true must hold only 0 and 1"),
        ([0, 1, 1], [0.1, 0.2], [0.1, 0.2, 0.3], "y_score_a has 2 values but y_true has 3"),
        ([0, 1, 1], [0.1, 0.2, 0.3], [0.1, math.nan, 0.3], "y_score_b contains 1 NaN"),
        ([0, 1, 1], [0.1, math.inf, 0.3], [0.1, 0.2, 0.3], "y_score_a contains 1 NaN or infinite"),
        ([0, math.nan, 1], [0.1, 0.2, 0.3], [0.1, 0.2, 0.3], "y_true contains NaN"),
        (["a", "b", "a"], [0.1, 0.2, 0.3], [0.1, 0.2, 0.3], "y_true must hold 0/1 labels"),
    ],
)
def test_bad_inputs_name_the_argument(y: list, a: list, b: list, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        delong_test(y, a, b)


def test_large_input_runs_in_linearithmic_time() -> None:
    # 200,000 rows would take minutes and gigabytes in O(m·n); the fast version needs well under a second.
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200_000)
    a = rng.normal(size=y.size) + y
    b = rng.normal(size=y.size) + 0.5 * y
    r = delong_test(y, a, b)
    assert r.auc_a == pytest.approx(roc_auc_score(y, a), abs=1e-12)
    assert r.z > 10
