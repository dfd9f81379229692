"""Index formulas against values worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cohortlm.cohort import indices


def test_das28_esr_hand_value():
    # 0.56*sqrt(4) + 0.28*sqrt(9) + 0.70*ln(36) + 0.014*50 = 1.12 + 0.84 + 2.5084631 + 0.7
    assert indices.das28_esr(4, 9, 36, 50) == pytest.approx(1.12 + 0.84 + 0.70 * math.log(36) + 0.7)
    assert float(indices.das28_esr(4, 9, 36, 50)) == pytest.approx(5.168463, abs=1e-6)


def test_das28_crp_hand_value():
    # 0.56*2 + 0.28*3 + 0.36*ln(19+1) + 0.014*50 + 0.96
    assert float(indices.das28_crp(4, 9, 19, 50)) == pytest.approx(4.698464, abs=1e-6)


def test_cdai_converts_globals_from_mm_to_cm():
    assert float(indices.cdai(4, 9, 50, 30)) == pytest.approx(21.0)


def test_jhaq_mean_of_categories_and_missing_rule():
    assert indices.jhaq([1, 1, 2, 0, 0, 1, 2, 1])[0] == pytest.approx(1.0)
    two_missing = [1, 1, np.nan, np.nan, 0, 1, 2, 1]
    assert indices.jhaq(two_missing)[0] == pytest.approx(1.0)
    three_missing = [1, np.nan, np.nan, np.nan, 0, 1, 2, 1]
    assert np.isnan(indices.jhaq(three_missing)[0])


def test_vectorised_and_nan_propagating():
    out = indices.das28_esr([0, 28], [0, 28], [1, np.nan], [0, 100])
    assert out[0] == pytest.approx(0.0)
    assert np.isnan(out[1])


def test_esr_below_one_is_clipped_not_minus_infinity():
    assert np.isfinite(indices.das28_esr(0, 0, 0, 0))


@pytest.mark.parametrize(
    ("value", "expected"),
    [(2.59, "remission"), (2.6, "low"), (3.2, "low"), (3.21, "moderate"), (5.1, "moderate"), (5.11, "high")],
)
def test_das28_esr_categories_at_cut_offs(value, expected):
    assert indices.das28_esr_category([value])[0] == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [(2.29, "remission"), (2.3, "low"), (2.7, "low"), (4.1, "moderate"), (4.11, "high")],
)
def test_das28_crp_categories_at_cut_offs(value, expected):
    assert indices.das28_crp_category([value])[0] == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [(2.8, "remission"), (2.81, "low"), (10, "low"), (10.1, "moderate"), (22, "moderate"), (22.1, "high")],
)
def test_cdai_categories_at_cut_offs(value, expected):
    assert indices.cdai_category([value])[0] == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0.49, "normal"), (0.5, "mild"), (1.5, "mild"), (2.5, "moderate"), (2.51, "severe")],
)
def test_jhaq_categories(value, expected):
    assert indices.jhaq_category([value])[0] == expected


def test_categories_keep_missing():
    assert indices.cdai_category([np.nan])[0] is None
