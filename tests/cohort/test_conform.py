"""A real-looking flat cohort: mapped headers, integer codes, yes/no, 1/2, a boolean outcome.

The spec declares how the export looks; validate and featurise take the file as
it is, and the featurised table is what every later step reads (names, labels, 0/1).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cohortlm.cli import main
from cohortlm.cohort.conform import conform_table
from cohortlm.cohort.featurise import featurise
from cohortlm.cohort.study import load_study, study_from_dict
from cohortlm.cohort.validation import validate_table
from cohortlm.errors import DataError, SpecError

SPEC = """\
name: hf_registry
version: 1
id_column: subject
features:
  - {name: age, type: numeric, column: "Age (years)", min: 18, max: 110}
  - {name: sex, type: categorical, column: "Sex (1=M, 2=F)", categories: {1: male, 2: female}}
  - {name: nyha, type: categorical, column: "NYHA class", categories: [1, 2, 3, 4]}
  - {name: diabetes, type: binary, column: Diabetes, true_values: [yes], false_values: [no]}
  - {name: smoker, type: binary, column: "Smoker (1=yes, 2=no)", true_values: [1], false_values: [2]}
  - {name: ef, type: integer, column: "LVEF %", min: 5, max: 80, max_missing: 0.1}
endpoints:
  - {name: readmitted, column: "Readmitted within 1y", description: a readmission within one year}
split: {sizes: {train: 0.6, validation: 0.2, test: 0.2}, seed: 5}
"""


def registry_export(n: int = 300, seed: int = 0) -> pd.DataFrame:
    """The file as a registry exports it: its own headers, codes and words."""
    rng = np.random.default_rng(seed)
    ef = rng.integers(15, 70, n).astype(float)
    ef[rng.random(n) < 0.05] = np.nan
    nyha = rng.integers(1, 5, n)
    risk = -1.0 + 0.5 * (nyha - 2) + 0.03 * (50 - np.nan_to_num(ef, nan=50))
    readmitted = rng.random(n) < 1 / (1 + np.exp(-risk))
    return pd.DataFrame(
        {
            "subject": [f"S{i:04d}" for i in range(n)],
            "Age (years)": rng.uniform(40, 90, n).round(1),
            "Sex (1=M, 2=F)": rng.integers(1, 3, n),
            "NYHA class": nyha,
            "Diabetes": rng.choice(["yes", "no", "Yes", "NO"], n),
            "Smoker (1=yes, 2=no)": rng.integers(1, 3, n),
            "LVEF %": ef,
            "Readmitted within 1y": readmitted,
        }
    )


@pytest.fixture
def study_file(tmp_path: Path) -> Path:
    path = tmp_path / "hf_registry.yaml"
    path.write_text(SPEC)
    return path


@pytest.fixture
def export_csv(tmp_path: Path) -> Path:
    path = tmp_path / "Registry export.csv"
    registry_export().to_csv(path, index=False)
    return path


def test_existing_spec_hashes_do_not_change():
    """New keys are optional and left out of the hash when unset (bundles record these hashes)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from flat_cohort import HF_STUDY

    ra = "bde66ee5dffdccde73543969739c4e66386391f1ac93c4d19b6a4f2231931c7e"
    assert load_study("ra_iorra").spec_hash == ra
    hf = "1616494016b8022b982940297146ec8cf6f9958e923019d08f04e6412e98004b"
    assert study_from_dict(HF_STUDY).spec_hash == hf


def test_spec_reads_mappings_codes_and_values(study_file):
    spec = load_study(study_file)
    sex, nyha, diabetes, smoker = (spec.feature(n) for n in ("sex", "nyha", "diabetes", "smoker"))
    assert sex.categories == ("male", "female") and sex.category_codes == (1, 2)
    assert sex.source_column == "Sex (1=M, 2=F)"
    assert nyha.categories == ("1", "2", "3", "4") and nyha.category_codes == (1, 2, 3, 4)
    assert diabetes.true_values == (True,) and diabetes.false_values == (False,)  # YAML: yes -> true
    assert smoker.true_values == (1,) and smoker.false_values == (2,)
    endpoint = spec.endpoints[0]
    assert (endpoint.column, endpoint.operator, endpoint.threshold) == ("Readmitted within 1y", ">=", 1.0)


def test_spec_round_trips_through_the_study_artifact_with_the_same_hash(study_file, tmp_path):
    """The pipeline passes the spec as YAML, then as the study step's artifact: nothing may be lost."""
    from cohortlm.run.steps import study_step, study_text

    spec = load_study(study_file)
    study_step(study_text(spec), str(tmp_path / "spec.yaml"))
    again = load_study(tmp_path / "spec.yaml")
    assert again == spec and again.spec_hash == spec.spec_hash
    assert spec.to_dict()["features"][1]["categories"] == {1: "male", 2: "female"}
    assert spec.to_dict()["features"][2]["categories"] == [1, 2, 3, 4]


def test_validate_and_featurise_take_the_export_as_it_is(study_file, export_csv):
    spec = load_study(study_file)
    result = featurise(export_csv, spec)
    table = result.table
    assert result.notes == []
    assert {"age", "sex", "nyha", "diabetes", "smoker", "ef"} <= set(table.columns)
    raw = registry_export()
    assert (table["sex"] == raw["Sex (1=M, 2=F)"].map({1: "male", 2: "female"})).all()
    assert (table["nyha"] == raw["NYHA class"].astype(str)).all()
    assert (table["diabetes"] == raw["Diabetes"].str.lower().eq("yes").astype(int)).all()
    assert (table["smoker"] == (raw["Smoker (1=yes, 2=no)"] == 1).astype(int)).all()
    labels = spec.labels(table)["readmitted"]
    assert (labels == raw["Readmitted within 1y"].astype(float)).all()
    outcome = validate_table(table, spec)
    assert outcome.success, outcome.summary()
    # Idempotent: the featurised table conforms to itself.
    again = conform_table(table, spec).table
    pd.testing.assert_frame_equal(again, table)


def test_cli_validate_featurise_and_baseline_on_the_export(study_file, export_csv, tmp_path, capsys):
    assert main(["validate", "--study", str(study_file), "--data", str(export_csv)]) == 0
    assert "validation passed" in capsys.readouterr().out
    out = tmp_path / "featurised.parquet"
    assert main(["featurise", "--study", str(study_file), "--raw", str(export_csv), "--out", str(out)]) == 0
    # The featurised table validates too (conforming it again changes nothing).
    assert main(["validate", "--study", str(study_file), "--data", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["success"] is True
    bundle = tmp_path / "baseline"
    args = ["train-baseline", "--study", str(study_file), "--data", str(export_csv), "--out", str(bundle)]
    assert main(args) == 0
    args = ["score", "--mode", "baseline", "--bundle", str(bundle), "--study", str(study_file)]
    assert (
        main([*args, "--data", str(out), "--split", "all", "--out", str(tmp_path / "s.csv"), "--json"]) == 0
    )
    scored = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert scored["endpoints"][0]["endpoint"] == "readmitted" and scored["endpoints"][0]["auc"] > 0.5


PLANT = 4242


def test_unknown_codes_fail_validation_by_count_never_by_value(study_file, tmp_path, capsys):
    raw = registry_export(n=120)
    raw.loc[:2, "Sex (1=M, 2=F)"] = PLANT
    raw.loc[5, "Diabetes"] = "maybe"
    path = tmp_path / "export.csv"
    raw.to_csv(path, index=False)
    assert main(["validate", "--study", str(study_file), "--data", str(path)]) == 1
    _, err = capsys.readouterr()
    assert "sex: 3 row(s) hold codes that are not among its 2 categories" in err
    assert "diabetes: 1 row(s) hold a value in neither" in err
    assert "in_set(sex)" in err and "fix is in the data" in err
    assert str(PLANT) not in err and "maybe" not in err


def test_a_numeric_column_for_label_categories_says_to_declare_codes(tmp_path, capsys):
    spec = SPEC.replace("categories: {1: male, 2: female}", "categories: [male, female]")
    (tmp_path / "s.yaml").write_text(spec)
    registry_export(n=80).to_csv(tmp_path / "e.csv", index=False)
    assert main(["validate", "--study", str(tmp_path / "s.yaml"), "--data", str(tmp_path / "e.csv")]) == 1
    err = capsys.readouterr().err
    assert "sex holds numbers but its categories are labels" in err
    assert "categories: {1: label" in err


def test_a_text_outcome_is_fixed_in_the_data(study_file, tmp_path, capsys):
    raw = registry_export(n=80)
    raw["Readmitted within 1y"] = np.where(raw["Readmitted within 1y"], "readmitted", "not readmitted")
    raw.to_csv(tmp_path / "e.csv", index=False)
    assert main(["validate", "--study", str(study_file), "--data", str(tmp_path / "e.csv")]) == 1
    err = capsys.readouterr().err
    assert "outcome column Readmitted within 1y holds text" in err and "The fix is in the data" in err


def test_a_column_given_twice_is_a_data_error(study_file):
    spec = load_study(study_file)
    raw = registry_export(n=20)
    raw["age"] = raw["Age (years)"]
    with pytest.raises(DataError, match=r"both column 'Age \(years\)'.*and a column named age"):
        conform_table(raw, spec)


def test_a_missing_mapped_column_names_the_header(study_file, tmp_path):
    spec = load_study(study_file)
    path = tmp_path / "e.csv"
    registry_export(n=20).drop(columns=["LVEF %"]).to_csv(path, index=False)
    with pytest.raises(DataError, match=r"ef \(column 'LVEF %'\).*column: 'its header'"):
        featurise(path, spec)


TV = "true_values: [1], false_values: [2]"
BAD = [
    (TV, "true_values: [2], false_values: [1]", "1 .or true. cannot mean no"),
    (TV, "true_values: [0], false_values: [2]", "0 .or false. cannot mean yes"),
    (TV, "true_values: [1]", "give false_values too"),
    (TV, "true_values: [1], false_values: [1]", "both in true_values"),
    ("categories: {1: male, 2: female}", "categories: {1: male, 2: male}", "the same label"),
    ("categories: {1: male, 2: female}", "categories: {1: male, x: female}", "all numbers or all strings"),
    ("categories: [1, 2, 3, 4]", "categories: [1, two]", "mix of numbers and text"),
    ('column: "LVEF %"', 'column: "Age (years)"', r"also features\[age\].column"),
    ("type: integer, column", "type: integer, true_values: [1], false_values: [2], column", "only binary"),
    ('"Readmitted within 1y", description', '"Readmitted within 1y", operator: ">", description', "together"),
]


@pytest.mark.parametrize(("old", "new", "message"), BAD, ids=[b[2] for b in BAD])
def test_spec_errors_name_the_key(tmp_path, old, new, message):
    assert old in SPEC
    path = tmp_path / "bad.yaml"
    path.write_text(SPEC.replace(old, new, 1))
    with pytest.raises(SpecError, match=message) as err:
        load_study(path)
    assert str(err.value).startswith(str(path))


@pytest.mark.slow
def test_the_smoke_pipeline_runs_the_export(study_file, export_csv, tmp_path):
    """The whole pipeline (kfp.local, smoke profile) on the file as exported."""
    exe = Path(sys.executable).with_name("cohortlm")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COHORTLM_CACHE": str(tmp_path / "cache")}
    args = ["run", "--study", str(study_file), "--data", str(export_csv), "--profile", "smoke"]
    args += ["--out", str(tmp_path / "run"), "--model-store", str(tmp_path / "models"), "--no-cache"]
    res = subprocess.run(
        [str(exe), *args, "--json"], capture_output=True, text=True, timeout=1200, cwd=tmp_path, env=env
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    run = json.loads(res.stdout)
    assert run["study"] == "hf_registry" and [e["endpoint"] for e in run["endpoints"]] == ["readmitted"]
    assert run["verdict"] in ("promote", "keep champion")
    cohort = pd.read_parquet(tmp_path / "run" / "cohort.parquet")
    assert set(cohort["sex"]) == {"male", "female"} and set(cohort["diabetes"]) == {0, 1}
