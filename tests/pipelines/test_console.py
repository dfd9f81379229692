"""A failing ``cohortlm run`` says on stderr which step failed, the step's own cause and its log."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow]


def _run(tmp_path: Path, data: str) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("cohortlm")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COHORTLM_CACHE": str(tmp_path / "cache")}
    args = ["run", "--study", str(tmp_path / "hf.yaml"), "--data", str(tmp_path / data)]
    args += ["--profile", "smoke", "--out", str(tmp_path / "run"), "--model-store", str(tmp_path / "models")]
    args += ["--no-cache"]
    return subprocess.run(
        [str(exe), *args], capture_output=True, text=True, timeout=900, cwd=tmp_path, env=env
    )


@pytest.fixture
def cohort(tmp_path):
    import yaml
    from flat_cohort import flat_cohort, hf_study

    (tmp_path / "hf.yaml").write_text(yaml.safe_dump(hf_study(endpoints=1)))
    return flat_cohort(n=120, seed=1)


def _no_task_output(res: subprocess.CompletedProcess[str]) -> None:
    for text in (res.stdout, res.stderr):
        assert "executor_input" not in text and "Traceback" not in text


def test_a_step_that_raises_puts_its_error_and_log_on_stderr(tmp_path, cohort):
    cohort.drop(columns=["age"]).to_csv(tmp_path / "hf.csv", index=False)
    res = _run(tmp_path, "hf.csv")
    assert res.returncode == 1, res.stdout[-3000:] + res.stderr[-3000:]
    _no_task_output(res)
    error = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1, res.stderr
    assert "pipeline step 'featurise' failed: DataError: " in error[0] and "age" in error[0]
    log = tmp_path / "run" / "logs" / "featurise.log"
    assert f"Log: {log}" in error[0] and log.exists()
    assert "Traceback" in log.read_text()
    # step 1 imports the raw cohort, step 2 validates the study spec, step 3 featurises
    assert any(
        line.startswith("step  3/") and "FAILED" in line and "featurise" in line
        for line in res.stderr.splitlines()
    )


def test_a_cohort_failing_validation_names_the_failing_expectations(tmp_path, cohort):
    cohort.loc[:4, "age"] = 150.0  # outside the study's 18-110: five rows break in_range(age)
    cohort.to_csv(tmp_path / "hf.csv", index=False)
    res = _run(tmp_path, "hf.csv")
    assert res.returncode == 1, res.stdout[-3000:] + res.stderr[-3000:]
    _no_task_output(res)
    error = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1, res.stderr
    assert "failed validation: in_range(age) (5)" in error[0]
    assert str(tmp_path / "run" / "logs" / "validate.log") in error[0]
