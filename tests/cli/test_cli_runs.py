"""`cohortlm runs list` and `runs compare` on run folders written by the real report code."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from stats_run_folder import make_run_folder

from cohortlm.cli import main

RUN_A = "20260101-100000-aaaaaa"
RUN_B = "20260102-100000-bbbbbb"


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory) -> Path:
    """Two reported runs (the real `cohortlm report`), one with a pipeline summary, and a failed one."""
    root = tmp_path_factory.mktemp("runs")
    for run_id, seed, gain in ((RUN_A, 1, 0.6), (RUN_B, 2, 0.1)):
        folder = make_run_folder(root / run_id, seed=seed, candidate_gain=gain)
        assert main(["--quiet", "report", str(folder)]) == 0
    summary = {"run_id": RUN_A, "study": "ra_iorra", "profile": "quick", "wall_seconds": 512.3}
    (root / RUN_A / "summary.json").write_text(json.dumps(summary))
    (root / "20260103-100000-cccccc" / ".kfp").mkdir(parents=True)  # a run that never finished
    (root / "notes").mkdir()  # not a run folder
    return root


def _json(capsys) -> dict:
    return json.loads(capsys.readouterr().out)


def test_list_shows_every_run_oldest_first(runs_dir, capsys):
    assert main(["runs", "list", "--dir", str(runs_dir), "--json"]) == 0
    runs = _json(capsys)["runs"]
    assert [r["run_id"] for r in runs] == [RUN_A, RUN_B, "20260103-100000-cccccc"]
    a, b, failed = runs
    assert a["profile"] == "quick" and a["wall_seconds"] == 512.3 and a["study"] == "ra_iorra"
    assert a["verdict"] in ("promote", "keep champion") and b["verdict"] in ("promote", "keep champion")
    assert failed["verdict"] == "failed or running" and failed["endpoints"] == []
    metrics = json.loads((runs_dir / RUN_A / "report" / "metrics.json").read_text())
    row = next(r for r in metrics["table1"] if r["model"] == "smollm2_qlora")
    endpoint = next(e for e in a["endpoints"] if e["endpoint"] == row["endpoint"])
    assert endpoint["auc"]["smollm2_qlora"] == pytest.approx(row["auc"])
    assert set(a["mean_auc"]) == {"smollm2_qlora", "logistic_regression"}


def test_list_table_names_runs_verdicts_and_times(runs_dir, capsys):
    assert main(["runs", "list", "--dir", str(runs_dir)]) == 0
    out = capsys.readouterr().out
    for needle in (RUN_A, RUN_B, "quick", "8.5min", "smollm2_qlora", "failed or running"):
        assert needle in out, out


def test_compare_gives_per_endpoint_auc_and_delta(runs_dir, capsys):
    assert main(["runs", "compare", RUN_A[:13], RUN_B, "--dir", str(runs_dir), "--json"]) == 0
    out = _json(capsys)
    assert out["model"] == "smollm2_qlora"  # run A's gate candidate
    assert len(out["endpoints"]) == 8
    for row in out["endpoints"]:
        assert row["delta"] == pytest.approx(row["auc_b"] - row["auc_a"])
        assert row["verdict_a"] and row["verdict_b"]
    # The weaker candidate in B: lower AUCs on most endpoints.
    assert sum(r["delta"] < 0 for r in out["endpoints"]) >= 6
    assert out["policy_differences"] == {}
    assert out["a"]["verdict"] and out["b"]["verdict"]


def test_compare_table(runs_dir, capsys):
    args = ["runs", "compare", RUN_A, RUN_B, "--dir", str(runs_dir), "--model", "logistic_regression"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "Δ (B − A)" in out and "das28_esr_high" in out and "policy: the same in both runs" in out
    assert "verdict: A" in out


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["compare", "2026", RUN_B], "matches 3 runs"),
        (["compare", "nope", RUN_B], "no run 'nope'"),
        (["compare", RUN_A, RUN_B, "--model", "gpt"], "--model gpt: the runs scored"),
        (["list", "--dir", "/nonexistent/runs"], "is not a folder"),
    ],
)
def test_runs_usage_errors_exit_2(runs_dir, capsys, args, needle):
    if "--dir" not in args:
        args = [*args, "--dir", str(runs_dir)]
    assert main(["runs", *args]) == 2
    assert needle in capsys.readouterr().err


def test_list_before_any_run_is_empty(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # no runs/ here
    assert main(["runs", "list", "--json"]) == 0
    assert _json(capsys)["runs"] == []
    assert main(["runs", "list"]) == 0
    assert "no runs in runs" in capsys.readouterr().err


def test_report_json_names_the_files_and_the_decision(runs_dir, tmp_path, capsys):
    assert main(["report", str(runs_dir / RUN_B), "--out", str(tmp_path / "rep"), "--json"]) == 0
    out = _json(capsys)
    assert Path(out["files"]["metrics_json"]).is_file() and Path(out["files"]["roc_png"]).is_file()
    assert len(out["endpoints"]) == 8 and out["decision"]["candidate"] == "smollm2_qlora"
