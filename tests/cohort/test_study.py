"""StudySpec loading: the RA study, a non-RA flat cohort, and every kind of spec error."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from flat_cohort import HF_STUDY, flat_cohort

from cohortlm.cohort.featurise import featurise
from cohortlm.cohort.split import split_table
from cohortlm.cohort.study import load_study, study_from_dict
from cohortlm.errors import DataError, SpecError

RA = load_study("ra_iorra")


def test_ra_study_has_the_seed_inputs_and_eight_endpoints():
    assert RA.name == "ra_iorra"
    assert len(RA.endpoints) == 8
    names = set(RA.feature_names)
    for needed in (
        "age", "sex", "methotrexate", "biologic", "jak_inhibitor", "glucocorticoid_dose",
        "hypertension", "tjc28", "sjc28", "esr", "crp_mg_l", "ptga_mm", "evga_mm",
        "das28_esr", "das28_crp", "cdai", "jhaq",
    ):  # fmt: skip
        assert needed in names
    assert {e.column for e in RA.endpoints} == {"das28_esr_2y", "das28_crp_2y", "cdai_2y", "jhaq_2y"}
    assert dict(RA.split.sizes) == {"train": 9500, "validation": 102, "test": 2263}


def test_spec_hash_is_stable_and_content_based():
    assert RA.spec_hash == load_study("ra_iorra").spec_hash
    other = study_from_dict(RA.to_dict() | {"version": 2})
    assert other.spec_hash != RA.spec_hash
    assert study_from_dict(RA.to_dict()).spec_hash == RA.spec_hash


def test_endpoint_labels_follow_operator():
    e = RA.endpoints[0]  # das28_esr_2y > 5.1
    np.testing.assert_array_equal(e.label([5.1, 5.2, np.nan])[:2], [0.0, 1.0])
    assert np.isnan(e.label([np.nan])[0])
    cdai_rem = next(x for x in RA.endpoints if x.name == "cdai_remission")
    np.testing.assert_array_equal(cdai_rem.label([2.8, 2.9]), [1.0, 0.0])


def test_non_ra_flat_cohort_loads_validates_and_splits(tmp_path):
    spec_path = tmp_path / "hf.yaml"
    spec_path.write_text(yaml.safe_dump(HF_STUDY))
    data_path = tmp_path / "hf.csv"
    flat_cohort().to_csv(data_path, index=False)
    spec = load_study(spec_path)
    assert spec.featuriser is None and spec.split.is_fraction
    table = featurise(data_path, spec).table
    assert len(table) == 400
    labels = spec.labels(table)
    assert list(labels.columns) == ["readmitted", "low_ef_1y"]
    split = split_table(table, spec)["split"].value_counts().to_dict()
    assert split == {"train": 240, "validation": 80, "test": 80}


def test_flat_cohort_missing_endpoint_column_names_it(tmp_path):
    spec = study_from_dict(HF_STUDY, source="hf.yaml")
    path = tmp_path / "hf.parquet"
    flat_cohort().drop(columns=["ef_1y"]).to_parquet(path)
    with pytest.raises(DataError, match="ef_1y"):
        featurise(path, spec)


def _mutate(fn) -> dict:
    data = copy.deepcopy(HF_STUDY)
    fn(data)
    return data


BAD_SPECS = [
    (lambda d: d.update(colour="red"), "colour: unknown key"),
    (lambda d: d["features"][0].update(units="y"), r"features\[0\]\.units: unknown key"),
    (lambda d: d["endpoints"][0].update(op=">"), r"endpoints\[0\]\.op: unknown key"),
    (lambda d: d["split"].update(shuffle=True), "split.shuffle: unknown key"),
    (lambda d: d["features"].append({"name": "age", "type": "numeric"}), r"features\[age\]\.name: duplicate"),
    (lambda d: d["endpoints"].append(dict(d["endpoints"][0])), r"endpoints\[readmitted\]\.name: duplicate"),
    (lambda d: d["features"][0].update(type="float"), r"features\[age\]\.type: must be one of"),
    (lambda d: d["endpoints"][0].update(operator="=>"), r"endpoints\[readmitted\]\.operator: must be one of"),
    (
        lambda d: d["endpoints"][0].update(threshold="high"),
        r"endpoints\[readmitted\]\.threshold: must be a finite",
    ),
    (lambda d: d["features"][1].pop("categories"), r"features\[sex\]\.categories"),
    (lambda d: d["features"][0].update(min=200), r"features\[age\]\.min: must not exceed max"),
    (lambda d: d.pop("endpoints"), "endpoints: is required"),
    (lambda d: d["split"]["sizes"].update(train=0.9), "fractions must add up to 1"),
    (lambda d: d["split"].update(seed=-1), "split.seed"),
    (lambda d: d["endpoints"][0].update(column="age"), "an input must not be the outcome"),
    (lambda d: d.update(rules=["no_such_rule"]), "rules: unknown rule"),
    (lambda d: d.update(featuriser="magic"), "featuriser: unknown featuriser"),
    (lambda d: d.update(name="Bad Name"), "name: must be a lower snake_case"),
]


@pytest.mark.parametrize(("mutate", "message"), BAD_SPECS)
def test_spec_errors_name_the_file_and_key(mutate, message):
    with pytest.raises(SpecError, match=message) as err:
        study_from_dict(_mutate(mutate), source="my_study.yaml")
    assert str(err.value).startswith("my_study.yaml: ")


def test_not_yaml_and_missing_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_study(bad)
    with pytest.raises(SpecError, match="does not exist"):
        load_study(tmp_path / "none.yaml")
    with pytest.raises(SpecError, match="unknown study"):
        load_study("no_such_study")


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("cohortlm")
    return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=120)


def test_cli_spec_error_exits_2_without_traceback(tmp_path):
    spec_path = tmp_path / "broken.yaml"
    spec_path.write_text(yaml.safe_dump(_mutate(lambda d: d["endpoints"][0].update(operator="=="))))
    data = tmp_path / "hf.csv"
    flat_cohort().to_csv(data, index=False)
    res = _cli(
        "featurise", "--study", str(spec_path), "--raw", str(data), "--out", str(tmp_path / "o.parquet")
    )
    assert res.returncode == 2
    assert "Traceback" not in res.stderr
    assert "broken.yaml" in res.stderr and "operator" in res.stderr
    assert len(res.stderr.strip().splitlines()) <= 2


def test_cli_debug_shows_traceback(tmp_path):
    res = _cli("--debug", "featurise", "--study", str(tmp_path / "none.yaml"), "--raw", ".", "--out", "x.csv")
    assert res.returncode == 2 and "Traceback" in res.stderr


def test_cli_data_error_exits_1(tmp_path):
    spec_path = tmp_path / "hf.yaml"
    spec_path.write_text(yaml.safe_dump(HF_STUDY))
    data = tmp_path / "hf.csv"
    flat_cohort().drop(columns=["ef"]).to_csv(data, index=False)
    res = _cli("featurise", "--study", str(spec_path), "--raw", str(data), "--out", str(tmp_path / "o.csv"))
    assert res.returncode == 1 and "ef" in res.stderr and "Traceback" not in res.stderr


def test_cli_help_lists_commands():
    res = _cli("--help")
    assert res.returncode == 0
    for cmd in ("synth", "featurise", "split"):
        assert cmd in res.stdout


def test_cli_synth_featurise_split_round_trip(tmp_path):
    assert _cli("synth", "--n", "300", "--seed", "1", "--out", str(tmp_path / "raw")).returncode == 0
    res = _cli("featurise", "--raw", str(tmp_path / "raw"), "--out", str(tmp_path / "c.parquet"))
    assert res.returncode == 0, res.stderr
    table = pd.read_parquet(tmp_path / "c.parquet")
    assert len(table) == 300 - 63
    # the RA counts do not fit 237 patients: a clear data error, not a crash
    res = _cli("split", "--data", str(tmp_path / "c.parquet"))
    assert res.returncode == 1 and "add up to" in res.stderr
