"""A user's own study spec and flat CSV go through the whole local pipeline (smoke profile).

Apart from tests/pipelines/test_local_run.py (the default registry, run twice) so that the
two pipeline runs can go to different test processes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow]


def _cohortlm(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("cohortlm")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COHORTLM_CACHE": str(cwd / "cache")}
    return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=1200, cwd=cwd, env=env)


def test_a_users_own_flat_cohort_runs_with_no_code_change(tmp_path):
    """A study spec and a flat CSV written by the user go through the same pipeline."""
    import yaml
    from flat_cohort import flat_cohort, hf_study

    flat_cohort(n=300, seed=3).drop(columns=["ef_1y"]).to_csv(tmp_path / "hf.csv", index=False)
    study = hf_study(endpoints=1)
    (tmp_path / "hf.yaml").write_text(yaml.safe_dump(study))
    res = _cohortlm(
        "run",
        "--study",
        str(tmp_path / "hf.yaml"),
        "--data",
        str(tmp_path / "hf.csv"),
        "--profile",
        "smoke",
        "--out",
        str(tmp_path / "run"),
        "--model-store",
        str(tmp_path / "models"),
        "--no-cache",
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    decision = json.loads((tmp_path / "run" / "decision.json").read_text())
    assert [e["endpoint"] for e in decision["endpoints"]] == ["readmitted"]
    assert (tmp_path / "run" / "report" / "roc.png").exists()
    assert (tmp_path / "models" / "smoke-runs" / "hf_readmission").exists()
    assert not (tmp_path / "models" / "hf_readmission").exists()
