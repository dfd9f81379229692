"""The console summary of `cohortlm run` names n and cases and warns on a small evaluation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from stats_run_folder import make_run_folder

from cohortlm.evaluation.render import write_report
from pipelines import cli as pipeline


def _summary(tmp_path: Path, *, sizes: tuple[int, int, int], profile: str) -> str:
    root = make_run_folder(tmp_path / "run", sizes=sizes, seed=2)
    summary = {
        "run_id": "r1", "study": "ra_iorra", "profile": profile, "winner": "none",
        "promoted_version": None, "wall_seconds": 80.0, "step_seconds": {"evaluate-gate": 6.0},
    }  # fmt: skip
    (root / "summary.json").write_text(json.dumps(summary))
    write_report(root)
    with pipeline.console.capture() as captured:
        pipeline._print_summary(root)
    return " ".join(captured.get().split())  # rich wraps long lines


@pytest.mark.parametrize("profile", ["smoke", "quick"])
def test_a_small_evaluation_is_said_to_be_small(tmp_path: Path, profile: str) -> None:
    out = _summary(tmp_path, sizes=(40, 60, 63), profile=profile)
    assert "n (cases)" in out and "few" in out
    assert "warning: Small evaluation: 8 of 8 endpoints have fewer than 100 cases" in out
    assert ("mean nothing" in out) is (profile == "smoke")
    assert "test split, 6" in out and "cases per endpoint" in out  # the gate's verdict names its n
    assert "smollm2 qlora" in out and "report:" in out


def test_a_large_evaluation_has_no_warning(tmp_path: Path) -> None:
    out = _summary(tmp_path, sizes=(100, 300, 6000), profile="quick")
    assert "warning" not in out and "few" not in out
    assert "n (cases)" in out
