"""Validation of wide cohorts: cost linear in the number of features, same outcomes however batched."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

import cohortlm.cohort.validation as validation
from benchmarks.bench_validation import wide_cohort
from cohortlm.cohort.validation import validate_table


def _cpu_seconds(df: pd.DataFrame, spec) -> float:
    start = time.process_time()
    result = validate_table(df, spec)
    assert result.success, result.summary()
    return time.process_time() - start


@pytest.mark.slow
def test_cost_per_feature_is_flat_from_25_to_250_features():
    # CPU time, not wall time: other processes on the machine do not count.
    # One GX suite built with add_expectation, or one batch holding every
    # column, makes 10x the features cost 40x the time or more.
    validate_table(*wide_cohort(4, rows=300))  # GX imported and warmed up
    narrow = _cpu_seconds(*wide_cohort(25, rows=300))
    wide = _cpu_seconds(*wide_cohort(250, rows=300))
    assert wide / narrow < 16, f"25 features {narrow:.2f} s, 250 features {wide:.2f} s"


def test_outcomes_do_not_depend_on_how_columns_are_batched(monkeypatch):
    df, spec = wide_cohort(40, rows=120, seed=3)
    df = df.drop(columns=["f5"])  # missing: exists fails, the rest is left out
    df["f8"] = df["f8"].astype(str)  # wrong type
    df.loc[df.index[:3], "f0"] = 500.0  # out of range
    df.loc[df.index[:20], "f1"] = np.nan  # over its 10 % limit
    df.loc[df.index[:2], "f2"] = 2  # not 0/1
    df.loc[df.index[:5], "f3"] = "z"  # not a category
    df.loc[df.index[1], "patient_id"] = df.loc[df.index[2], "patient_id"]
    monkeypatch.setattr(validation, "CHUNK_COLUMNS", 10_000)
    whole = validate_table(df, spec)
    monkeypatch.setattr(validation, "CHUNK_COLUMNS", 3)
    batched = validate_table(df, spec)
    assert not whole.success
    assert whole.outcomes == batched.outcomes
    failed = {o.name: o.unexpected_count for o in batched.failed}
    assert failed == {
        "unique(patient_id)": 2,
        "exists(f5)": None,
        "type(f8)": 120,
        "in_range(f0)": 3,
        "not_null(f1)": 20,
        "binary(f2)": 2,
        "in_set(f3)": 5,
    }
