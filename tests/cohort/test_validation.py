"""validate_table and `cohortlm validate`: the suite from the spec, counts-only reports, exit codes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cohortlm.cli import main
from cohortlm.cohort.validation import DERIVED_PREFIX, validate_table


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def cohort_file(small_cohort, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "cohort.parquet"
    small_cohort.to_parquet(path, index=False)
    return path


def _run(capfd, *args: str) -> tuple[int, str, str]:
    rc = main(list(args))
    out, err = capfd.readouterr()
    return rc, out, err


def test_clean_cohort_passes_and_is_not_modified(small_cohort, ra_spec):
    before = small_cohort.copy(deep=True)
    result = validate_table(small_cohort, ra_spec)
    assert result.success, result.summary()
    pd.testing.assert_frame_equal(small_cohort, before)
    assert not any(c.startswith(DERIVED_PREFIX) for c in small_cohort.columns)
    names = {o.name for o in result.outcomes}
    # Every rule, every feature's presence and null limit, the id's uniqueness.
    assert set(ra_spec.rules) <= names
    assert {f"exists({f})" for f in ra_spec.feature_names} <= names
    assert {f"not_null({f})" for f in ra_spec.feature_names} <= names
    assert {"unique(patient_id)", "date(baseline_date)", "in_set(sex)", "whole_numbers(tjc28)"} <= names
    assert result.outcome("das28_esr_consistent").unexpected_count == 0


def test_each_kind_of_break_is_named_with_its_count(small_cohort, ra_spec):
    df = small_cohort.copy()
    rows = df.index[:7]
    df.loc[rows[:5], "das28_esr"] += 1.0  # inside 0-10, but not what the components give
    df.loc[rows[:3], "age"] = 120.0
    df.loc[rows[:2], "sex"] = "unknown"
    df.loc[rows[0], "rf_positive"] = 2
    df["tjc28"] = df["tjc28"].astype(float)
    df.loc[rows[:4], "tjc28"] = 2.5
    df.loc[rows[:6], "bmi"] = np.nan  # 6 of ~470 stays under bmi's 10% limit
    df.loc[rows[1], "patient_id"] = df.loc[rows[2], "patient_id"]
    df.loc[rows[:2], "followup_months"] = 12.0
    df.loc[: df.index[int(len(df) * 0.2)], "acpa_positive"] = np.nan  # over the 10% limit
    result = validate_table(df, ra_spec)
    counts = {o.name: o.unexpected_count for o in result.failed}
    assert counts["das28_esr_consistent"] == 5
    assert counts["in_range(age)"] == 3
    assert counts["in_set(sex)"] == 2
    assert counts["binary(rf_positive)"] == 1
    assert counts["whole_numbers(tjc28)"] == 4
    assert counts["unique(patient_id)"] == 2  # both rows that share the id
    assert counts["two_year_followup"] == 2
    assert counts["not_null(acpa_positive)"] >= int(len(df) * 0.2)
    assert "not_null(bmi)" not in counts
    assert "das28_esr_consistent (5 rows)" in result.summary()


def test_missing_and_mistyped_columns(small_cohort, ra_spec):
    df = small_cohort.drop(columns=["esr", "cdai_2y"]).assign(age=lambda d: d["age"].astype(str))
    result = validate_table(df, ra_spec)
    failed = {o.name: o for o in result.failed}
    assert {"exists(esr)", "exists(cdai_2y)", "type(age)", "das28_esr_consistent"} <= set(failed)
    assert "esr" in (failed["das28_esr_consistent"].note or "")
    # A range check on text would be meaningless: the type failure stands for it.
    assert "in_range(age)" not in {o.name for o in result.outcomes}


def test_csv_with_text_dates_passes(small_cohort, ra_spec, tmp_path, capfd):
    path = tmp_path / "cohort.csv"
    small_cohort.to_csv(path, index=False)
    rc, out, err = _run(capfd, "validate", "--study", "ra_iorra", "--data", str(path))
    assert rc == 0, err
    assert "validation passed" in out


def test_cli_passes_and_writes_reports(cohort_file, tmp_path, capfd):
    digest = _sha(cohort_file)
    report = tmp_path / "vr"
    rc, _out, err = _run(
        capfd, "validate", "--study", "ra_iorra", "--data", str(cohort_file), "--report", str(report)
    )
    assert rc == 0, err
    assert _sha(cohort_file) == digest
    data = json.loads((report / "validation.json").read_text())
    assert data["success"] is True and data["n_failed"] == 0
    assert data["result_format"]["partial_unexpected_count"] == 0
    assert 0 < data["gx_expectations_run"] < data["n_expectations"]
    assert "passed" in (report / "validation.html").read_text()


def test_cli_five_broken_das28_rows(small_cohort, tmp_path, capfd):
    """The acceptance check, on the small cohort: exit 1, the rule and the count 5, file untouched."""
    df = small_cohort.copy()
    df.loc[df.index[10:15], "das28_esr"] = (df.loc[df.index[10:15], "das28_esr"] + 0.8).clip(upper=10)
    path = tmp_path / "broken.parquet"
    df.to_parquet(path, index=False)
    digest = _sha(path)
    rc, out, err = _run(
        capfd, "validate", "--study", "ra_iorra", "--data", str(path), "--report", str(tmp_path / "r")
    )
    assert rc == 1
    assert "das28_esr_consistent (5 rows)" in err
    assert "Traceback" not in err + out
    assert _sha(path) == digest
    report = json.loads((tmp_path / "r" / "validation.json").read_text())
    failed = [e for e in report["expectations"] if not e["success"]]
    assert [(e["name"], e["unexpected_count"]) for e in failed] == [("das28_esr_consistent", 5)]


LEAK_ID = "ZQ-LEAK-7731"
LEAK_VALUE = "987.654321"
LEAK_TEXT = "LEAKYSEXVALUE"


def test_no_patient_value_or_id_anywhere(small_cohort, tmp_path, capfd, monkeypatch):
    """Plant a distinctive id and values in bad rows; nothing the command writes may contain them."""
    df = small_cohort.copy()
    bad = df.index[:3]
    df["patient_id"] = df["patient_id"].astype(object)
    df.loc[bad, "patient_id"] = LEAK_ID  # duplicated: breaks unique(patient_id)
    df.loc[bad, "age"] = float(LEAK_VALUE)  # out of range
    df.loc[bad, "das28_esr"] = 9.87654321  # breaks the rule
    df.loc[bad, "sex"] = LEAK_TEXT  # not a category
    original_ids = small_cohort.loc[bad, "patient_id"].tolist()
    data = tmp_path / "in" / "planted.parquet"
    data.parent.mkdir()
    df.to_parquet(data, index=False)
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    monkeypatch.chdir(workdir)  # anything written to the working directory is searched too
    report = tmp_path / "report"
    rc, out, err = _run(
        capfd, "validate", "--study", "ra_iorra", "--data", str(data), "--report", str(report)
    )
    assert rc == 1
    assert "unique(patient_id) (3 rows)" in err and "in_set(sex) (3 rows)" in err
    written = {"stdout": out, "stderr": err}
    for folder in (report, workdir):
        for f in folder.rglob("*"):
            if f.is_file():
                written[str(f)] = f.read_bytes().decode("utf-8", errors="replace")
    assert (report / "validation.json").name in " ".join(written)
    needles = [LEAK_ID, LEAK_VALUE, "987.65", "9.8765", LEAK_TEXT, *original_ids]
    for where, text in written.items():
        for needle in needles:
            assert needle not in text, f"{needle!r} leaked into {where}"


@pytest.mark.parametrize(
    ("name", "content", "code", "words"),
    [
        ("empty.parquet", b"", 1, "empty"),
        ("truncated.parquet", None, 1, "not a readable Parquet"),
        ("wrong.parquet", b"patient_id,age\nP1,50\n", 1, "not a readable Parquet"),
        ("latin1.csv", "patient_id,sex\nP1,f\xe9minin\n".encode("latin-1"), 1, "not UTF-8"),
        ("cohort.txt", b"x", 2, "unknown format"),
    ],
)
def test_bad_files_exit_cleanly(cohort_file, tmp_path, capfd, name, content, code, words):
    path = tmp_path / name
    path.write_bytes(cohort_file.read_bytes()[:500] if content is None else content)
    rc, out, err = _run(capfd, "validate", "--study", "ra_iorra", "--data", str(path))
    assert rc == code
    assert words in err
    assert "Traceback" not in err + out


def test_usage_errors(cohort_file, tmp_path, capfd):
    rc, _, err = _run(capfd, "validate", "--study", "ra_iorra", "--data", str(tmp_path / "nope.parquet"))
    assert rc == 2 and "does not exist" in err
    rc, _, err = _run(capfd, "validate", "--study", "no_such_study", "--data", str(cohort_file))
    assert rc == 2 and "unknown study" in err
    a_file = tmp_path / "report.txt"
    a_file.write_text("x")
    rc, _, err = _run(capfd, "validate", "--data", str(cohort_file), "--report", str(a_file))
    assert rc == 2 and "is a file" in err


def test_missing_column_file(small_cohort, tmp_path, capfd):
    path = tmp_path / "nocol.parquet"
    small_cohort.drop(columns=["sjc28"]).to_parquet(path, index=False)
    rc, _, err = _run(capfd, "validate", "--study", "ra_iorra", "--data", str(path))
    assert rc == 1
    assert "exists(sjc28)" in err
    assert "das28_esr_consistent (not checked: column(s) missing: sjc28)" in err
