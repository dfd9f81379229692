"""`cohortlm init-study --data F` drafts a spec that loads and validates its own file, and leaks nothing."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cohortlm.cli import main
from cohortlm.cohort.draft import draft_study, snake_name
from cohortlm.cohort.study import load_study

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_conform import registry_export

RARE = "Zebulon-Quincy"  # one patient's category: must not reach the draft


@pytest.fixture
def export(tmp_path: Path) -> Path:
    df = registry_export(n=300, seed=4)
    df["Notes"] = [f"seen by dr {i}" for i in range(len(df))]
    df["Visit date"] = [f"2024-02-{i % 28 + 1:02d}" for i in range(len(df))]
    df["Ward"] = np.where(np.arange(len(df)) % 2 == 0, "north", "south")
    df.loc[7, "Ward"] = RARE
    df["EF at 1y"] = df["LVEF %"] + 2
    path = tmp_path / "HF registry.csv"
    df.to_csv(path, index=False)
    return path


def test_snake_names():
    assert snake_name("LVEF %") == "lvef"
    assert snake_name("Sex (1=M, 2=F)") == "sex_1_m_2_f"
    assert snake_name("1st visit") == "x1st_visit"


def test_cli_drafts_a_spec_that_validates_its_file(export, tmp_path, capsys):
    out = tmp_path / "hf.yaml"
    args = ["init-study", "--data", str(export), "--out", str(out), "--outcome", "Readmitted within 1y"]
    assert main([*args, "--outcome", "EF at 1y"]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    spec = load_study(out)
    assert spec.name == "hf_registry" and spec.id_column == "subject"
    types = {f.name: f.type for f in spec.features}
    assert types["age_years"] == "numeric" and types["lvef"] == "integer"
    assert types["diabetes"] == "binary" and types["smoker_1_yes_2_no"] == "binary"
    assert spec.feature("diabetes").true_values == ("yes",) and spec.feature("lvef").column == "LVEF %"
    assert 0 < spec.feature("lvef").max_missing <= 0.1
    assert [e.name for e in spec.endpoints] == ["readmitted_within_1y", "ef_at_1y_high"]
    # Ranges lie strictly outside the data's: no bound is one patient's value.
    raw = pd.read_csv(export)
    for f in spec.features:
        if f.min is not None:
            col = raw[f.source_column]
            assert f.min < col.min() and f.max > col.max(), f.name
    assert main(["validate", "--study", str(out), "--data", str(export)]) == 0


def test_the_draft_leaves_out_free_text_dates_and_rare_categories(export, tmp_path):
    out = tmp_path / "hf.yaml"
    assert (
        main(["init-study", "--data", str(export), "--out", str(out), "--outcome", "Readmitted within 1y"])
        == 0
    )
    text = out.read_text()
    assert "left out: column: Notes" in text and "left out: column: Visit date" in text
    assert "left out: column: Ward" in text  # one category has a single patient
    for secret in (RARE, "seen by dr", "S0007", "2024-02-"):
        assert secret not in text


def test_without_outcomes_the_draft_says_to_add_one(export, tmp_path, capsys):
    out = tmp_path / "hf.yaml"
    assert main(["init-study", "--data", str(export), "--out", str(out)]) == 0
    assert "add at least one endpoint" in capsys.readouterr().err
    assert "# add at least one:" in out.read_text()


@pytest.mark.parametrize(
    ("extra", "code", "needle"),
    [
        (["--outcome", "Notes"], 1, "holds text"),
        (["--outcome", "nope"], 2, "no column 'nope'"),
        (["--id-column", "nope"], 2, "--id-column: no column"),
        (["--name", "Bad Name"], 2, "--name must be lower snake_case"),
    ],
)
def test_init_study_errors(export, tmp_path, capsys, extra, code, needle):
    assert main(["init-study", "--data", str(export), "--out", str(tmp_path / "s.yaml"), *extra]) == code
    err = capsys.readouterr().err
    assert needle in err and "seen by dr" not in err


def test_an_existing_spec_is_not_overwritten(export, tmp_path, capsys):
    out = tmp_path / "hf.yaml"
    out.write_text("mine\n")
    assert main(["init-study", "--data", str(export), "--out", str(out)]) == 2
    assert "exists" in capsys.readouterr().err and out.read_text() == "mine\n"
    assert main(["init-study", "--data", str(export), "--out", str(out), "--force"]) == 0


def test_no_unique_column_is_a_data_error():
    table = pd.DataFrame({"a": [1, 1, 2], "b": [0.5, 0.5, 0.1]})
    from cohortlm.errors import DataError

    with pytest.raises(DataError, match="one row per patient"):
        draft_study(table, name="x", source="x.csv")
