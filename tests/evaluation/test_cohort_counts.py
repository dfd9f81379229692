"""The cohort in counts: patients and cases per split and endpoint, no single patient's date."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cohortlm.cohort.study import load_study
from cohortlm.evaluation.cohort_counts import MIN_PERIOD_COUNT, CohortSummary, cohort_summary


def test_cohort_summary_counts_and_keeps_a_lone_date_out_of_the_period():
    spec = load_study("ra_iorra")
    rng = np.random.default_rng(0)
    n = 200
    table = pd.DataFrame(
        {
            "split": ["train"] * 120 + ["validation"] * 30 + ["test"] * 50,
            "baseline_date": pd.to_datetime("2005-01-01")
            + pd.to_timedelta(rng.integers(0, 3 * 365, n), unit="D"),
        }
    )
    for column in spec.endpoint_columns:
        table[column] = rng.uniform(0, 6, n)
    table.loc[0, "baseline_date"] = pd.Timestamp("1901-06-30")  # one unusual patient
    table.loc[1, "das28_esr_2y"] = np.nan
    summary = cohort_summary(table, spec)
    assert summary.n == {"train": 120, "validation": 30, "test": 50}
    assert summary.labelled["train"]["das28_esr_high"] == 119
    expected = int((table.loc[table["split"] == "test", "das28_esr_2y"] > 5.1).sum())
    assert summary.cases["test"]["das28_esr_high"] == expected
    assert summary.period is not None and summary.period[0] >= 2005  # 1901 has fewer than the floor
    assert MIN_PERIOD_COUNT > 1
    again = CohortSummary.from_dict(summary.to_dict())
    assert again == summary
    assert summary.prevalence("das28_esr_high", "test") == pytest.approx(expected / 50)
