"""Usage and spec errors found before any pipeline step runs (exit 2), and run folders that cannot be read.

Each case was accepted, or failed late with exit 1: a policy naming an endpoint
the study lacks (gate-power printed 0.000 everywhere, ``run --policy`` started
its steps), the RA study with a flat CSV (failed inside featurise), ``--out``
equal to ``--data``, and ``runs compare`` on truncated JSON files (exit 0,
study None).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from stats_run_folder import make_run_folder

from cohortlm.cli import main


def _policy(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    return path


def _no_run_started(tmp_path: Path) -> bool:
    """No run folder and no kfp.local root were made under ``tmp_path`` (the working folder)."""
    return not (tmp_path / "runs").exists() and not list(tmp_path.rglob(".kfp"))


@pytest.mark.parametrize(
    "policy_text", ["primary: [das28_esr_high, no_such_endpoint]\n", "margins: {no_such_endpoint: 0.05}\n"]
)
def test_gate_power_refuses_a_policy_naming_an_unknown_endpoint(policy_text, tmp_path, capsys):
    policy = _policy(tmp_path, policy_text)
    assert main(["gate-power", "--policy", str(policy), "--reps", "10"]) == 2
    err = capsys.readouterr().err
    assert "no_such_endpoint" in err and "das28_esr_high" in err and str(policy) in err


def test_run_refuses_a_policy_naming_an_unknown_endpoint_before_any_step(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    policy = _policy(tmp_path, "primary: [no_such_endpoint]\n")
    assert main(["run", "--profile", "smoke", "--policy", str(policy)]) == 2
    err = capsys.readouterr().err
    assert "no_such_endpoint" in err and "ra_iorra" in err
    assert _no_run_started(tmp_path)


def test_run_refuses_a_flat_file_for_a_study_with_a_featuriser(tmp_path, monkeypatch, capsys, small_cohort):
    monkeypatch.chdir(tmp_path)
    flat = tmp_path / "cohort.csv"
    small_cohort.to_csv(flat, index=False)
    assert main(["run", "--profile", "smoke", "--data", str(flat)]) == 2
    err = capsys.readouterr().err
    assert "ra_visits" in err and "visits (" in err and "cohort.csv" in err
    assert _no_run_started(tmp_path)


def test_run_refuses_raw_tables_without_the_columns_the_featuriser_needs(
    tmp_path, monkeypatch, capsys, small_raw
):
    import pandas as pd

    monkeypatch.chdir(tmp_path)
    raw = tmp_path / "raw"
    raw.mkdir()
    for name in ("patients", "medications"):
        (raw / f"{name}.parquet").write_bytes((small_raw / f"{name}.parquet").read_bytes())
    pd.read_parquet(small_raw / "visits.parquet").drop(columns=["esr"]).to_csv(
        raw / "visits.csv", index=False
    )
    assert main(["run", "--profile", "smoke", "--data", str(raw)]) == 2
    err = capsys.readouterr().err
    assert "visits.csv lacks column(s) esr" in err
    assert _no_run_started(tmp_path)


def test_run_refuses_out_equal_to_data(tmp_path, monkeypatch, capsys, small_raw):
    monkeypatch.chdir(tmp_path)
    raw = tmp_path / "raw"
    raw.mkdir()
    for p in small_raw.iterdir():
        (raw / p.name).write_bytes(p.read_bytes())
    before = sorted(p.name for p in raw.iterdir())
    assert main(["run", "--profile", "smoke", "--data", str(raw), "--out", str(raw)]) == 2
    assert "overlaps --data" in capsys.readouterr().err
    assert sorted(p.name for p in raw.iterdir()) == before  # nothing written into the data


def test_a_spec_error_inside_a_step_exits_2(tmp_path):
    from cohortlm.errors import SpecError
    from pipelines.local import _raise_step_failure

    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "split.log").write_text(
        "Traceback (most recent call last):\n"
        "cohortlm.errors.SpecError: split.sizes: train must not be empty\n"
    )
    with pytest.raises(SpecError, match=r"split\.sizes"):
        _raise_step_failure("Inner task failed: 'split'", tmp_path, ["split"])


@pytest.mark.slow
@pytest.mark.parametrize("damaged", ["summary.json", "decision.json", "report/metrics.json"])
def test_runs_compare_refuses_a_run_with_a_truncated_json_file(damaged, tmp_path, capsys):
    root = tmp_path / "runs"
    for run_id, seed in (("20260101-100000-aaaaaa", 1), ("20260102-100000-bbbbbb", 2)):
        folder = make_run_folder(root / run_id, seed=seed, candidate_gain=0.3)
        assert main(["--quiet", "report", str(folder)]) == 0
        summary = {"run_id": run_id, "study": "ra_iorra", "profile": "quick", "wall_seconds": 1.0}
        (folder / "summary.json").write_text(json.dumps(summary))
        if not (folder / "decision.json").exists():
            (folder / "decision.json").write_text((folder / "report" / "decision.json").read_text())
    broken = root / "20260102-100000-bbbbbb" / damaged
    broken.write_text(broken.read_text()[: len(broken.read_text()) // 2])
    capsys.readouterr()
    assert main(["runs", "compare", "20260101", "20260102", "--dir", str(root)]) == 2
    err = capsys.readouterr().err
    assert damaged in err and "truncated" in err
    assert main(["runs", "list", "--dir", str(root), "--json"]) == 0
    listed = {r["run_id"]: r for r in json.loads(capsys.readouterr().out)["runs"]}
    assert listed["20260102-100000-bbbbbb"]["damaged"] == [damaged]
    assert listed["20260101-100000-aaaaaa"]["damaged"] == []
