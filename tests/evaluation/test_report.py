"""cohortlm report on a fixture run folder, and the cohortlm delong command."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from stats_run_folder import make_run_folder

from cohortlm.cli import main
from cohortlm.errors import UsageError
from cohortlm.evaluation.gate import Decision
from cohortlm.evaluation.render import write_report
from cohortlm.evaluation.report import decision_reasons, panel_layout
from cohortlm.evaluation.run_folder import read_run_dir
from cohortlm.evaluation.stats import delong_test

RA_ENDPOINTS = [
    "das28_esr_high",
    "das28_esr_remission",
    "das28_crp_high",
    "das28_crp_remission",
    "cdai_high",
    "cdai_remission",
    "jhaq_high",
    "jhaq_low",
]


def test_panel_layout_pairs_high_and_remission() -> None:
    assert panel_layout(RA_ENDPOINTS) == [RA_ENDPOINTS[:4], RA_ENDPOINTS[4:]]
    assert panel_layout(["x", "y", "z"]) == [["x", "y", "z"]]
    assert panel_layout(["a_remission", "a_high"]) == [["a_high", "a_remission"]]


def test_report_writes_png_tables_and_decision(run_dir: Path) -> None:
    paths = write_report(run_dir)
    png = paths.roc_png.read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 50_000
    table = pd.read_csv(paths.table1_csv)
    assert len(table) == 16 and set(table["model"]) == {"smollm2_qlora", "logistic_regression"}
    md = paths.table1_md.read_text()
    assert md.startswith("| Endpoint | Model | n (cases) | AUC (95% CI)")
    assert sum(line.startswith("|") for line in md.splitlines()) == 18
    # Each endpoint's best AUC is bold, in the Markdown and named in the CSV's best column.
    assert md.count("| **0.") >= 8 and "Bold: the best value" in md
    assert all(any("auc" in str(b).split(";") for b in g["best"]) for _, g in table.groupby("endpoint"))
    metrics = json.loads(paths.metrics_json.read_text())
    assert metrics["endpoints"] == RA_ENDPOINTS and metrics["decision"]["candidate"] == "smollm2_qlora"
    decision = Decision.from_json(paths.decision_json.read_text())  # type: ignore[union-attr]
    summary = paths.summary_md.read_text()
    # The reasons in words, with the models' human names.
    assert decision_reasons(decision)[0] in summary and "## Table 1" in summary
    assert decision_reasons(decision)[0].startswith("Do not promote smollm2 qlora over logistic regression")
    # The report's AUC is the DeLong AUC on the test split.
    run = read_run_dir(run_dir)
    test = run.split[run.split == "test"].index
    y = run.labels.loc[test, "cdai_high"].dropna()
    r = delong_test(
        y,
        run.scores["smollm2_qlora"].loc[y.index, "cdai_high"],
        run.scores["logistic_regression"].loc[y.index, "cdai_high"],
    )
    row = table[(table.endpoint == "cdai_high") & (table.model == "smollm2_qlora")].iloc[0]
    assert row["auc"] == pytest.approx(r.auc_a)


@pytest.mark.slow
def test_report_uses_an_existing_decision(run_dir: Path) -> None:
    first = write_report(run_dir)
    (run_dir / "decision.json").write_text(first.decision_json.read_text())  # type: ignore[union-attr]
    (run_dir / "run.json").unlink()
    second = write_report(run_dir, out_dir=run_dir / "again")
    assert second.decision_json is not None
    assert second.decision_json.read_text() == first.decision_json.read_text()  # type: ignore[union-attr]


def test_report_reads_csv_and_works_without_study(tmp_path: Path) -> None:
    root = make_run_folder(tmp_path / "run", sizes=(10, 120, 300))
    (root / "study.yaml").unlink()
    (root / "run.json").unlink()
    pd.read_parquet(root / "labels.parquet").to_csv(root / "labels.csv", index=False)
    (root / "labels.parquet").unlink()
    paths = write_report(root)
    assert paths.decision_json is None and paths.roc_png.is_file()
    assert "no gate decision" in paths.summary_md.read_text()


def test_report_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="run folder not found"):
        write_report(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match=r"labels\.parquet"):
        write_report(tmp_path / "empty")


@pytest.mark.slow
def test_cli_report(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(run_dir), "--threshold", "max_f1"]) == 0
    out = capsys.readouterr().out
    assert "roc.png" in out and "promote" in out.lower()
    assert main(["report", str(run_dir), "--threshold", "best"]) == 2


@pytest.fixture
def delong_csv(tmp_path: Path) -> Path:
    rng = np.random.default_rng(7)
    y = rng.integers(0, 2, 400)
    frame = pd.DataFrame({"y": y, "a": rng.normal(size=400) + y, "b": rng.normal(size=400) + 0.4 * y})
    frame.loc[3, "a"] = np.nan
    path = tmp_path / "scores.csv"
    frame.to_csv(path, index=False)
    return path


def test_cli_delong_json(delong_csv: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["delong", "--csv", str(delong_csv), "--label", "y", "--score-a", "a", "--score-b", "b",
                 "--alternative", "greater", "--json"])  # fmt: skip
    assert code == 0
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert set(out) == {"auc_a", "auc_b", "delta", "z", "p_value", "ci_delta", "ci_auc_a", "ci_auc_b",
                        "n_cases", "n_controls", "alternative"}  # fmt: skip
    frame = pd.read_csv(delong_csv).dropna()
    r = delong_test(frame["y"], frame["a"], frame["b"], alternative="greater")
    assert out["p_value"] == pytest.approx(r.p_value) and out["alternative"] == "greater"
    assert out["delta"] == pytest.approx(out["auc_a"] - out["auc_b"])
    assert out["n_cases"] + out["n_controls"] == 399 and "1 row(s)" in captured.err


def test_cli_delong_table(delong_csv: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["delong", "--csv", str(delong_csv), "--label", "y", "--score-a", "a", "--score-b", "b"]) == 0
    assert "ΔAUC (a − b)" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--csv", "{missing}", "--label", "y", "--score-a", "a", "--score-b", "b"], "--csv: file not found"),
        (
            ["--csv", "{csv}", "--label", "y", "--score-a", "a", "--score-b", "nope"],
            "--score-b: no column 'nope'",
        ),
        (["--csv", "{csv}", "--label", "zz", "--score-a", "a", "--score-b", "b"], "--label: no column 'zz'"),
        (
            ["--csv", "{csv}", "--label", "a", "--score-a", "a", "--score-b", "b"],
            "--label: column 'a' must hold 0",
        ),
        (
            ["--csv", "{csv}", "--label", "y", "--score-a", "a", "--score-b", "b", "--alternative", "up"],
            "--alternative",
        ),
    ],
)
def test_cli_delong_bad_input_exits_2(
    delong_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], needle: str
) -> None:
    args = [a.format(csv=delong_csv, missing=tmp_path / "none.csv") for a in args]
    assert main(["delong", *args]) == 2
    assert needle in capsys.readouterr().err
