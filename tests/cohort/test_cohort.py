"""Synthetic generator, featurisation and split."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest

from cohortlm.cohort.featurise import featurise
from cohortlm.cohort.rules import RULES
from cohortlm.cohort.split import assign_splits, split_counts, split_table
from cohortlm.cohort.study import SplitSpec
from cohortlm.cohort.synthetic import dropout_count, generate_cohort
from cohortlm.errors import DataError


def _digest(df: pd.DataFrame) -> str:
    return hashlib.sha256(pd.util.hash_pandas_object(df, index=True).to_numpy().tobytes()).hexdigest()


def test_same_seed_gives_identical_tables():
    a, b = generate_cohort(n=300, seed=7), generate_cohort(n=300, seed=7)
    for name in ("patients", "visits", "medications"):
        assert _digest(getattr(a, name)) == _digest(getattr(b, name))


def test_other_seed_differs():
    a, b = generate_cohort(n=300, seed=1), generate_cohort(n=300, seed=2)
    assert _digest(a.visits) != _digest(b.visits)


def test_written_files_are_identical_for_the_same_seed(tmp_path):
    generate_cohort(n=200, seed=3).write(tmp_path / "a")
    generate_cohort(n=200, seed=3).write(tmp_path / "b")
    for name in ("patients", "visits", "medications"):
        pa = pd.read_parquet(tmp_path / "a" / f"{name}.parquet")
        pb = pd.read_parquet(tmp_path / "b" / f"{name}.parquet")
        pd.testing.assert_frame_equal(pa, pb)


def test_dropout_count_scales():
    assert dropout_count(15004) == 3139
    assert dropout_count(1500) == 314


def test_featurise_excludes_short_follow_up(small_raw, ra_spec):
    result = featurise(small_raw, ra_spec)
    assert result.n_input == 600
    assert result.exclusions["follow_up_under_2y"] == dropout_count(600)
    assert result.n_included == 600 - dropout_count(600)
    assert result.table[ra_spec.id_column].is_unique
    assert (result.table["endpoint_visit_months"].between(21, 27)).all()
    ra_spec.check_columns(result.table)


def test_featurised_values_obey_spec_and_rules(small_cohort, ra_spec):
    for f in ra_spec.features:
        col = small_cohort[f.name]
        assert col.isna().mean() <= f.max_missing, f.name
        if f.min is not None:
            assert col.dropna().min() >= f.min, f.name
            assert col.dropna().max() <= f.max, f.name
        if f.categories:
            assert set(col.dropna()) <= set(f.categories), f.name
        if f.type == "binary":
            assert set(col.dropna().unique()) <= {0, 1}, f.name
    for rule in ra_spec.rules:
        assert not RULES[rule].broken(small_cohort).any(), rule


def test_outcomes_are_learnable_not_trivial(small_cohort, ra_spec):
    labels = ra_spec.labels(small_cohort)
    prev = labels.mean()
    assert (prev > 0.005).all() and (prev < 0.8).all()
    # baseline activity carries signal about activity at two years
    r = np.corrcoef(small_cohort["das28_esr"], small_cohort["das28_esr_2y"])[0, 1]
    assert 0.3 < r < 0.9


def test_baseline_drugs_are_active_at_baseline(small_raw, small_cohort):
    meds = pd.read_parquet(small_raw / "medications.parquet")
    assert (meds["stop_date"].isna() | (meds["stop_date"] > meds["start_date"])).all()
    assert small_cohort["methotrexate"].mean() > 0.4
    assert (small_cohort.loc[small_cohort["methotrexate"] == 0, "methotrexate_dose"] == 0).all()


def test_split_counts_exact_and_disjoint(small_cohort, ra_spec):
    n = len(small_cohort)
    spec = SplitSpec(sizes={"train": n - 60, "validation": 10, "test": 50}, seed=0)
    s = assign_splits(small_cohort["patient_id"], spec)
    assert s.value_counts().to_dict() == {"train": n - 60, "test": 50, "validation": 10}
    ids = {k: set(small_cohort.loc[s == k, "patient_id"]) for k in ("train", "validation", "test")}
    assert not (ids["train"] & ids["test"]) and not (ids["train"] & ids["validation"])
    assert not (ids["validation"] & ids["test"])


def test_split_is_stable_under_shuffling(small_cohort):
    spec = SplitSpec(sizes={"train": 0.7, "validation": 0.1, "test": 0.2}, seed=3)
    a = assign_splits(small_cohort["patient_id"], spec)
    shuffled = small_cohort.sample(frac=1.0, random_state=11)
    b = assign_splits(shuffled["patient_id"], spec)
    mapping_a = dict(zip(small_cohort["patient_id"], a, strict=True))
    mapping_b = dict(zip(shuffled["patient_id"], b, strict=True))
    assert mapping_a == mapping_b


def test_split_seed_changes_assignment(small_cohort):
    ids = small_cohort["patient_id"]
    a = assign_splits(ids, SplitSpec(sizes={"train": 0.7, "validation": 0.1, "test": 0.2}, seed=0))
    b = assign_splits(ids, SplitSpec(sizes={"train": 0.7, "validation": 0.1, "test": 0.2}, seed=1))
    assert (a != b).any()


def test_fraction_counts_add_up():
    counts = split_counts(101, SplitSpec(sizes={"train": 0.8, "validation": 0.05, "test": 0.15}, seed=0))
    assert sum(counts.values()) == 101


def test_counts_that_do_not_add_up_are_a_clear_error(small_cohort, ra_spec):
    with pytest.raises(DataError, match="add up to 11865"):
        split_table(small_cohort, ra_spec)


def test_duplicate_ids_are_rejected_without_showing_them():
    ids = pd.Series(["SECRET-ID-1", "SECRET-ID-1", "B"])
    with pytest.raises(DataError) as err:
        assign_splits(ids, SplitSpec(sizes={"train": 0.5, "validation": 0.0, "test": 0.5}, seed=0))
    assert "SECRET" not in str(err.value)


@pytest.mark.slow
def test_reference_cohort_sizes(tmp_path, ra_spec):
    """The seed study: 15,004 patients, 3,139 excluded, 11,865 split 9,500/102/2,263."""
    generate_cohort(n=15004, seed=0).write(tmp_path)
    result = featurise(tmp_path, ra_spec)
    assert result.n_included == 11865
    assert result.exclusions["follow_up_under_2y"] == 3139
    counts = split_table(result.table, ra_spec)["split"].value_counts().to_dict()
    assert counts == {"train": 9500, "validation": 102, "test": 2263}
