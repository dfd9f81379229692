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
    }
    assert one_stack.outcome("not_null(f12)").unexpected_count == 6
    assert one_stack.outcome("exists(f0)").gx_type == "expect_table_columns_to_match_set"


def _as_extension_dtypes(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` as pandas reads a table that an R or Arrow writer typed: nullable and categorical dtypes."""
    out = df.copy()
    for name, kind in zip(df.columns[1:9], ("Float64", "Int64", "boolean", "category") * 2, strict=True):
        out[name] = out[name].astype(kind) if kind != "boolean" else out[name].astype(bool).astype(kind)
    out["f7"] = out["f7"].astype("string")  # text as pandas' string dtype instead of a category
    out.loc[out.index[0], ["f0", "f1"]] = pd.NA  # missing values, under the features' 10 % limit
    return out


def test_pandas_extension_dtypes_are_checked_like_numpy_dtypes():
    df, spec = wide_cohort(8, rows=120, seed=4)
    plain, typed = validate_table(df, spec), validate_table(_as_extension_dtypes(df), spec)
    assert typed.success, typed.summary()
    assert [o.name for o in typed.outcomes] == [o.name for o in plain.outcomes]
    assert typed.outcome("type(f3)").note == "pandas category: its dtype name checked by cohortlm"

    broken = _as_extension_dtypes(df)
    broken.loc[broken.index[1:3], "f1"] = 500  # Int64 out of range
    broken.loc[broken.index[1:4], "f0"] = pd.NA  # Float64 missing: 4 of 120, under the 10 % limit
    broken.loc[broken.index[1:9], "f4"] = -1.0  # Float64 out of range
    broken["f3"] = broken["f3"].cat.add_categories(["z"])
    broken.loc[broken.index[:5], "f3"] = "z"  # a category outside the study's levels
    broken.loc[broken.index[:6], "f7"] = "zz"  # a string outside them
    result = validate_table(broken, spec)
    failed = {o.name: o.unexpected_count for o in result.failed}
    assert failed == {"in_range(f1)": 2, "in_range(f4)": 8, "in_set(f3)": 5, "in_set(f7)": 6}
    assert result.outcome("not_null(f0)").unexpected_count == 4

    numbers_as_text = _as_extension_dtypes(df)
    numbers_as_text["f5"] = numbers_as_text["f5"].astype("string")
    assert validate_table(numbers_as_text, spec).outcome("type(f5)").success is False
