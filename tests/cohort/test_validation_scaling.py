"""Validation of wide cohorts: cost linear in the number of features, same outcomes however run."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

import cohortlm.cohort.validation_gx as validation_gx
from benchmarks.bench_validation import wide_cohort
from cohortlm.cohort.validation import validate_table


def _cpu_seconds(df: pd.DataFrame, spec) -> float:
    start = time.process_time()
    result = validate_table(df, spec)
    assert result.success, result.summary()
    return time.process_time() - start


@pytest.mark.slow
@pytest.mark.parametrize("varied", [False, True])
def test_cost_per_feature_is_flat_from_25_to_250_features(varied):
    # CPU time, not wall time: other processes on the machine do not count.
    # One GX suite built with add_expectation, or one batch holding every
    # column, makes 10x the features cost 40x the time or more.
    validate_table(*wide_cohort(4, rows=300))  # GX imported and warmed up
    narrow = _cpu_seconds(*wide_cohort(25, rows=300, varied=varied))
    wide = _cpu_seconds(*wide_cohort(250, rows=300, varied=varied))
    assert wide / narrow < 16, f"25 features {narrow:.2f} s, 250 features {wide:.2f} s"


@pytest.mark.parametrize("varied", [False, True])
def test_gx_expectations_grow_at_most_linearly(varied):
    small = validate_table(*wide_cohort(25, rows=60, varied=varied))
    large = validate_table(*wide_cohort(250, rows=60, varied=varied))
    assert small.success and large.success
    # The report keeps one row per column and check; GX runs at most that many.
    assert len(large.outcomes) <= 10 * len(small.outcomes)
    assert large.gx_expectations <= 10 * small.gx_expectations
    assert large.gx_expectations <= len(large.outcomes)
    if not varied:
        # Features of a kind share their checks: a few expectations run many columns.
        assert large.gx_expectations * 20 < len(large.outcomes)


def test_a_broken_column_in_a_wide_cohort_is_named():
    df, spec = wide_cohort(400, rows=200, seed=1)
    df.loc[df.index[7], "f200"] = 100.5  # out of 0-100
    df.loc[df.index[:30], "f41"] = np.nan  # 15 % missing, over its 10 % limit
    df.loc[df.index[:5], "f121"] = np.nan  # 2.5 %: allowed
    df.loc[df.index[3], "f302"] = 3  # not 0/1
    df = df.drop(columns=["f77"])
    result = validate_table(df, spec)
    failed = {o.name: o.unexpected_count for o in result.failed}
    assert failed == {"in_range(f200)": 1, "not_null(f41)": 30, "binary(f302)": 1, "exists(f77)": None}
    assert result.outcome("not_null(f121)").unexpected_count == 5
    assert "in_range(f200) (1 row)" in result.summary()
    assert result.gx_expectations < len(result.outcomes) / 5


def _broken_wide(seed: int) -> pd.DataFrame:
    df, _ = wide_cohort(40, rows=120, seed=seed)
    df = df.drop(columns=["f5"])  # missing: exists fails, the rest is left out
    df["f8"] = df["f8"].astype(str)  # wrong type
    df.loc[df.index[:3], "f0"] = 500.0  # out of range
    df.loc[df.index[:20], "f1"] = np.nan  # over its 10 % limit
    df.loc[df.index[:2], "f2"] = 2  # not 0/1
    df.loc[df.index[:5], "f3"] = "z"  # not a category
    df.loc[df.index[1], "patient_id"] = df.loc[df.index[2], "patient_id"]
    # Dtypes a stack must keep apart or keep as they are.
    df["f6"] = df["f6"].astype(bool)
    df["f7"] = df["f7"].astype("category")
    df["f11"] = pd.Categorical(df["f11"], categories=["c", "b", "a"])
    df["f13"] = df["f13"].astype("Int64")
    df["f15"] = df["f15"].astype(object)
    df.loc[df.index[4], "f15"] = 7  # an int among the text: not a text value
    df["f19"] = df["f19"].astype("string")
    df.loc[df.index[:6], "f12"] = np.nan  # 5 %: allowed
    df["f27"] = np.nan  # all missing: nothing out of range, over the limit
    return df


def test_outcomes_do_not_depend_on_how_checks_are_run(monkeypatch):
    _, spec = wide_cohort(40, rows=120, seed=3)
    df = _broken_wide(3)
    monkeypatch.setattr(validation_gx, "STACK_COLUMNS", 1)  # every check on its own column
    monkeypatch.setattr(validation_gx, "CHUNK_COLUMNS", 10_000)
    per_column = validate_table(df, spec)
    monkeypatch.setattr(validation_gx, "STACK_COLUMNS", 3)
    monkeypatch.setattr(validation_gx, "CHUNK_COLUMNS", 3)
    monkeypatch.setattr(validation_gx, "BATCH_CELLS", 500)  # a long table's batches: 1-2 stacks each
    small_stacks = validate_table(df, spec)
    monkeypatch.setattr(validation_gx, "STACK_COLUMNS", 10_000)
    one_stack = validate_table(df, spec)
    assert not per_column.success
    assert per_column.outcomes == small_stacks.outcomes == one_stack.outcomes
    assert one_stack.gx_expectations < small_stacks.gx_expectations < per_column.gx_expectations
    failed = {o.name: o.unexpected_count for o in one_stack.failed}
    assert failed == {
        "unique(patient_id)": 2,
        "exists(f5)": None,
        "type(f8)": 120,
        "in_range(f0)": 3,
        "not_null(f1)": 20,
        "binary(f2)": 2,
        "in_set(f3)": 5,
        "type(f15)": 1,
        "in_set(f15)": 1,
        "type(f27)": None,  # all missing: float
        "not_null(f27)": 120,
        # GX 1.24 matches none of the type list's names to these pandas dtypes.
        "type(f7)": None,
        "type(f11)": None,
        "type(f13)": None,
        "type(f19)": None,
    }
    assert one_stack.outcome("not_null(f12)").unexpected_count == 6
    assert one_stack.outcome("exists(f0)").gx_type == "expect_table_columns_to_match_set"
