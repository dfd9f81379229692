"""The model commands end to end on a small cohort with the smoke profile."""

from __future__ import annotations

import pytest

from cohortlm.cli import main
from cohortlm.cohort.io import read_table, write_table


@pytest.fixture(scope="module")
def data_file(split_cohort, tmp_path_factory):
    return write_table(split_cohort, tmp_path_factory.mktemp("data") / "cohort.parquet")


@pytest.mark.slow
def test_train_and_score_all_modes(data_file, frac_spec, tmp_path, capsys):
    study = tmp_path / "study.yaml"
    import yaml

    study.write_text(yaml.safe_dump(frac_spec.to_dict()))
    common = ["--data", str(data_file), "--study", str(study)]
    assert main(["train-baseline", *common, "--out", str(tmp_path / "bl")]) == 0
    assert (
        main(["train-llm", "--profile", "smoke", *common, "--out", str(tmp_path / "llm"), "--max-steps", "2"])
        == 0
    )
    for mode, extra in [
        ("baseline", ["--bundle", str(tmp_path / "bl")]),
        ("zero-shot", []),
        ("fine-tuned", ["--bundle", str(tmp_path / "llm")]),
    ]:
        out = tmp_path / f"{mode}.csv"
        code = main(
            [
                "score",
                "--mode",
                mode,
                "--profile",
                "smoke",
                *common,
                *extra,
                "--out",
                str(out),
                "--limit",
                "20",
            ]
        )
        assert code == 0
        scores = read_table(out)
        assert list(scores.columns) == [frac_spec.id_column, "split", *frac_spec.endpoint_names]
        assert len(scores) == 20 and set(scores["split"]) == {"test"}
        values = scores[frac_spec.endpoint_names].to_numpy()
        assert ((values > 0) & (values < 1)).all()
    # a baseline bundle is not a fine-tuned LLM
    code = main(
        [
            "score",
            "--mode",
            "fine-tuned",
            *common,
            "--bundle",
            str(tmp_path / "bl"),
            "--out",
            str(tmp_path / "x.csv"),
        ]
    )
    assert code == 2
    assert "needs a llm bundle" in capsys.readouterr().err


def test_usage_errors_exit_2(data_file, capsys):
    assert main(["score", "--mode", "sideways", "--data", str(data_file)]) == 2
    assert main(["train-llm", "--profile", "huge", "--data", str(data_file)]) == 2
    assert main(["train-llm", "--profile", "paper", "--data", str(data_file)]) == 2
    assert "--base-model" in capsys.readouterr().err
