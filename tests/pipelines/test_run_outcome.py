"""Run metrics reach a real Pushgateway whatever happens: validation counts from the validate
step, the outcome from the exit handler, and a failed run keeps the last success time."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from cohortlm.run.metrics import push_run_outcome, push_validation_metrics

pytestmark = pytest.mark.service


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def pushgateway(tmp_path) -> Iterator[str]:
    exe = shutil.which("prometheus-pushgateway")
    if exe is None:
        pytest.fail("prometheus-pushgateway is missing: run `bash scripts/install-services.sh`")
    port = _free_port()
    log = (tmp_path / "pushgateway.log").open("wb")
    proc = subprocess.Popen(
        [exe, f"--web.listen-address=127.0.0.1:{port}", "--persistence.file="], stdout=log, stderr=log
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    for _ in range(200):
        try:
            with urllib.request.urlopen(f"{url}/-/ready", timeout=1):
                break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail("prometheus-pushgateway did not start")
            time.sleep(0.1)
    try:
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def samples(url: str) -> dict[tuple[str, frozenset], float]:
    """The gateway's /metrics as {(name, labels): value} (its own go_/process_ metrics left out)."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name.startswith("cohortlm_"):
                out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def _value(found: dict, name: str, **labels: str) -> float:
    matches = [v for (n, ls), v in found.items() if n == name and set(labels.items()) <= ls]
    assert len(matches) == 1, (name, labels, sorted(k for k in found if k[0] == name))
    return matches[0]


def test_a_failed_run_keeps_the_last_success_time(pushgateway):
    assert push_run_outcome(pushgateway, run_id="20260101-000000-abc123", study="ra_iorra", succeeded=True)
    first = samples(pushgateway)
    success = _value(
        first, "cohortlm_run_last_success_timestamp_seconds", job="cohortlm-run", study="ra_iorra"
    )
    assert _value(first, "cohortlm_run_failed", study="ra_iorra") == 0
    time.sleep(0.01)
    assert push_run_outcome(pushgateway, run_id="0c5e9f3a-kfp-uuid", study="ra_iorra", succeeded=False)
    second = samples(pushgateway)
    assert _value(second, "cohortlm_run_failed", study="ra_iorra") == 1
    assert _value(second, "cohortlm_run_last_success_timestamp_seconds", study="ra_iorra") == success
    assert _value(second, "cohortlm_run_last_finish_timestamp_seconds", study="ra_iorra") >= success


def test_validation_counts_replace_the_previous_runs(pushgateway):
    push_validation_metrics(
        pushgateway, run_id="r1", study="ra_iorra", failures={"in_range:age": 3, "unique:id": 0}
    )
    found = samples(pushgateway)
    assert (
        _value(found, "cohortlm_validation_failures_total", rule="in_range:age", job="cohortlm-validation")
        == 3
    )
    push_validation_metrics(pushgateway, run_id="r2", study="ra_iorra", failures={"unique:id": 0})
    found = samples(pushgateway)
    assert not [k for k in found if ("rule", "in_range:age") in k[1]], "a passed run must clear old failures"


@pytest.mark.slow
def test_a_run_that_fails_validation_pushes_counts_and_outcome(pushgateway, tmp_path):
    """The real pipeline through kfp.local: validation fails, the exit handler still reports."""
    import yaml
    from flat_cohort import flat_cohort, hf_study

    table = flat_cohort(n=120, seed=1)
    table.loc[:4, "age"] = 150.0  # outside the study's 18-110: five rows break in_range(age)
    table.to_csv(tmp_path / "hf.csv", index=False)
    (tmp_path / "hf.yaml").write_text(yaml.safe_dump(hf_study(endpoints=1)))
    exe = Path(sys.executable).with_name("cohortlm")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COHORTLM_CACHE": str(tmp_path / "cache")}
    args = ["run", "--study", str(tmp_path / "hf.yaml"), "--data", str(tmp_path / "hf.csv")]
    args += ["--profile", "smoke", "--out", str(tmp_path / "run"), "--model-store", str(tmp_path / "models")]
    args += ["--pushgateway", pushgateway, "--no-cache"]
    res = subprocess.run(
        [str(exe), *args], capture_output=True, text=True, timeout=900, cwd=tmp_path, env=env
    )
    assert res.returncode == 1, res.stdout[-3000:] + res.stderr[-3000:]
    assert "failed validation" in res.stderr
    found = samples(pushgateway)
    study = "hf_readmission"
    assert _value(found, "cohortlm_validation_failures_total", rule="in_range:age", study=study) == 5
    assert _value(found, "cohortlm_run_failed", job="cohortlm-run", study=study) == 1
    assert not [k for k in found if k[0] == "cohortlm_run_last_success_timestamp_seconds"]
    # No patient identifier reached a label.
    labels = {v for _, ls in found for _, v in ls}
    assert not {f"S{i:04d}" for i in range(120)} & labels
