"""Offline point-in-time retrieval and the SQLite online store, through featurestore and the CLI."""

from __future__ import annotations

import pandas as pd
import pytest

from cohortlm.cli import main
from cohortlm.cohort.features import EVENT_TIMESTAMP, entity_frame
from cohortlm.errors import DataError


def _history(small_cohort: pd.DataFrame) -> pd.DataFrame:
    """Two patients; the first has a second, later row whose values must not leak into the past."""
    rows = small_cohort.iloc[:2].copy()
    rows["patient_id"] = ["PIT-A", "PIT-B"]
    rows["baseline_date"] = pd.to_datetime(["2010-01-01", "2010-06-01"])
    rows["das28_esr"] = [3.0, 4.0]
    later = rows.iloc[[0]].copy()
    later["baseline_date"] = pd.to_datetime(["2013-01-01"])
    later["das28_esr"] = 6.5
    return pd.concat([rows, later], ignore_index=True)


@pytest.mark.slow
def test_point_in_time_no_leakage_and_online_latest(small_cohort, tmp_path, repo_factory):
    import featurestore as fs

    repo = repo_factory(tmp_path / "repo", _history(small_cohort))
    store = fs.open_store(repo)
    fs.apply(repo, store=store)
    entities = pd.DataFrame(
        {
            "patient_id": ["PIT-A", "PIT-A", "PIT-A", "PIT-B"],
            # the label time lies after the first row and before the later change
            EVENT_TIMESTAMP: pd.to_datetime(["2012-01-01", "2014-01-01", "2009-06-01", "2012-01-01"]),
            "das28_esr_2y": [1.0, 2.0, 3.0, 4.0],
        }
    )
    table = fs.get_training_table(entities, store=store)
    assert list(table["das28_esr_2y"]) == [1.0, 2.0, 3.0, 4.0]  # entity order and extra columns kept
    assert table["das28_esr"].iloc[0] == 3.0  # not 6.5, which was recorded after the label time
    assert table["das28_esr"].iloc[1] == 6.5
    assert pd.isna(table["das28_esr"].iloc[2])  # before any row: nothing
    assert table["das28_esr"].iloc[3] == 4.0

    fs.materialize(repo, store=store)
    online = fs.get_online_features_for(repo, ["PIT-A", "NOT-THERE", "PIT-B"])
    assert list(online["patient_id"]) == ["PIT-A", "NOT-THERE", "PIT-B"]
    assert online["das28_esr"].iloc[0] == 6.5  # serving sees the latest value
    assert online.drop(columns="patient_id").iloc[1].isna().all()
    with pytest.raises(DataError) as err:
        fs.get_online_features_for(repo, ["PIT-A", "NOT-THERE"], missing="error")
    assert "1 of 2" in str(err.value) and "NOT-THERE" not in str(err.value)


@pytest.mark.slow
def test_training_table_matches_the_featurised_rows(small_cohort, ra_spec, scratch_repo):
    import featurestore as fs

    store = fs.open_store(scratch_repo)
    fs.apply(scratch_repo, store=store)
    table = fs.get_training_table(entity_frame(small_cohort, ra_spec), store=store)
    assert len(table) == len(small_cohort)
    assert list(table.columns[:2]) == ["patient_id", EVENT_TIMESTAMP]
    for col in ("age", "das28_esr", "tjc28", "sex", "bmi", "das28_esr_2y"):
        pd.testing.assert_series_equal(
            table[col].reset_index(drop=True), small_cohort[col].reset_index(drop=True), check_dtype=False
        )


@pytest.mark.slow
def test_cli_apply_materialize_check_training_table(small_cohort, tmp_path, capfd, repo_factory):
    repo = repo_factory(tmp_path / "repo", None)
    data = tmp_path / "cohort.parquet"
    small_cohort.to_parquet(data, index=False)
    before = data.read_bytes()
    assert main(["features", "apply", "--repo", str(repo), "--data", str(data)]) == 0
    assert (repo / "data" / "cohort.parquet").read_bytes() == before == data.read_bytes()
    assert main(["features", "materialize", "--repo", str(repo)]) == 0
    assert main(["features", "check", "--repo", str(repo)]) == 0
    out_path = tmp_path / "train.parquet"
    assert main(["features", "training-table", "--repo", str(repo), "--out", str(out_path)]) == 0
    assert len(pd.read_parquet(out_path)) == len(small_cohort)
    out, _ = capfd.readouterr()
    assert "ra_baseline_v1" in out and "matches study 'ra_iorra'" in out

    # Bad data never reaches the store: exit 1, the store's data untouched.
    broken = small_cohort.copy()
    broken.loc[broken.index[:5], "age"] = 300.0
    bad = tmp_path / "bad.parquet"
    broken.to_parquet(bad, index=False)
    assert main(["features", "apply", "--repo", str(repo), "--data", str(bad)]) == 1
    assert "in_range(age) (5 rows)" in capfd.readouterr().err
    assert (repo / "data" / "cohort.parquet").read_bytes() == before


def test_cli_usage_errors(tmp_path, capfd, repo_factory):
    assert main(["features", "apply", "--repo", str(tmp_path)]) == 2
    assert "not a feature repository" in capfd.readouterr().err
    repo = repo_factory(tmp_path / "repo", None)
    assert main(["features", "materialize", "--repo", str(repo), "--start", "yesterday"]) == 2
    assert "--start" in capfd.readouterr().err
    assert main(["features", "apply", "--repo", str(repo), "--config", "feature_store.cluster.yaml"]) == 2
    assert "FEAST_REGISTRY_URL" in capfd.readouterr().err
