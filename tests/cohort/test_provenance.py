"""Data provenance: the generator's record beside its tables, and a Parquet table's copy of it.

The record says whether the data is the synthetic cohort; it travels in the file's
key-value metadata, so the table's columns and values are the same with or without it.
"""

from __future__ import annotations

import json

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cohortlm.cohort.featurise import data_provenance
from cohortlm.cohort.io import (
    PROVENANCE_KEY,
    read_provenance,
    read_table,
    write_provenance,
    write_table,
)
from cohortlm.cohort.synthetic import generate_cohort
from cohortlm.contracts import PROVENANCE_FILE
from cohortlm.errors import DataError

RECORD = {"synthetic": True, "generator": "cohortlm.cohort.synthetic", "n": 40, "seed": 2}


def _frame() -> pd.DataFrame:
    return pd.DataFrame({"pid": ["a", "b", "c"], "age": [50.5, 61.0, None], "sex": ["f", "m", "f"]})


def test_a_parquet_table_carries_its_provenance_without_a_column(tmp_path):
    df = _frame()
    write_table(df, tmp_path / "with.parquet", provenance=RECORD)
    write_table(df, tmp_path / "without.parquet")
    assert read_provenance(tmp_path / "with.parquet") == RECORD
    assert read_provenance(tmp_path / "without.parquet") is None
    # The rows and columns read back are the same either way.
    pd.testing.assert_frame_equal(read_table(tmp_path / "with.parquet"), df)
    pd.testing.assert_frame_equal(
        read_table(tmp_path / "with.parquet"), read_table(tmp_path / "without.parquet")
    )
    # A KFP artifact path has no suffix: Parquet, provenance included.
    write_table(df, tmp_path / "artifact", provenance={"synthetic": False})
    assert read_provenance(tmp_path / "artifact") == {"synthetic": False}


def test_csv_and_missing_paths_record_none(tmp_path):
    write_table(_frame(), tmp_path / "t.csv", provenance=RECORD)  # nowhere to keep it in a CSV
    assert read_provenance(tmp_path / "t.csv") is None
    assert read_provenance(tmp_path / "absent.parquet") is None
    assert read_provenance(tmp_path) is None  # a folder without the file


def test_the_generator_writes_its_record_beside_the_tables(tmp_path):
    paths = generate_cohort(n=40, seed=2).write(tmp_path)
    assert set(paths) == {"patients", "visits", "medications"}
    record = json.loads((tmp_path / PROVENANCE_FILE).read_text())
    assert record == {**RECORD, "age_shift": 0.0, "era_shift_years": 0.0}
    assert read_provenance(tmp_path) == record
    # No patient identifier or value: only the generator's arguments.
    ids = set(pd.read_parquet(tmp_path / "patients.parquet")["patient_id"].astype(str))
    assert not any(i in (tmp_path / PROVENANCE_FILE).read_text() for i in ids)


def test_data_without_a_record_is_not_synthetic(tmp_path):
    """Only the generator writes the record: a user's folder or file without one is real data."""
    (tmp_path / "folder").mkdir()
    _frame().to_csv(tmp_path / "flat.csv", index=False)
    _frame().to_parquet(tmp_path / "flat.parquet", index=False)
    for path in (tmp_path / "folder", tmp_path / "flat.csv", tmp_path / "flat.parquet"):
        assert data_provenance(path) == {"synthetic": False}
    write_provenance(tmp_path / "folder", RECORD)
    assert data_provenance(tmp_path / "folder") == RECORD


@pytest.mark.parametrize("text", ["not json", "[true]", '{"synthetic": "yes"}', '{"generator": "x"}'])
def test_a_malformed_record_is_refused_not_read_as_real_data(tmp_path, text):
    (tmp_path / PROVENANCE_FILE).write_text(text)
    with pytest.raises(DataError, match="synthetic"):
        read_provenance(tmp_path)
    table = pa.Table.from_pandas(_frame(), preserve_index=False)
    pq.write_table(table.replace_schema_metadata({PROVENANCE_KEY: text.encode()}), tmp_path / "t.parquet")
    with pytest.raises(DataError, match="synthetic"):
        read_provenance(tmp_path / "t.parquet")


def test_write_refuses_a_record_without_the_synthetic_flag(tmp_path):
    with pytest.raises(DataError, match="synthetic"):
        write_table(_frame(), tmp_path / "t.parquet", provenance={"generator": "x"})
    with pytest.raises(DataError, match="synthetic"):
        write_provenance(tmp_path, {"synthetic": 1})
    assert not (tmp_path / "t.parquet").exists() and not (tmp_path / PROVENANCE_FILE).exists()


def test_the_featurise_command_keeps_the_synthetic_record(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    from cohortlm.cohort.io import read_provenance

    exe = str(Path(sys.executable).with_name("cohortlm"))
    for args in (
        ["synth", "--out", str(tmp_path / "raw"), "--n", "200"],
        ["featurise", "--raw", str(tmp_path / "raw"), "--out", str(tmp_path / "cohort.parquet")],
    ):
        res = subprocess.run([exe, *args], capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, res.stderr
    assert read_provenance(tmp_path / "cohort.parquet")["synthetic"] is True
