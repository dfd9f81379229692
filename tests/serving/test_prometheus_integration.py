"""Debian's prometheus and prometheus-pushgateway on loopback scrape the model server and a pushed run.

Prometheus scrapes every second (temporary config and data folder); the checks
are PromQL queries on its HTTP API, bounded in time and count. The binaries are
installed by scripts/install-services.sh (``make test`` runs it).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from serving_testlib import free_port, http_json, patient_instance

from cohortlm.run.metrics import push_run_metrics

pytestmark = pytest.mark.service

PROMETHEUS = shutil.which("prometheus")
PUSHGATEWAY = shutil.which("prometheus-pushgateway")


def _wait_http(url: str, proc: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    for _ in range(int(timeout / 0.2) + 1):
        if proc.poll() is not None:
            raise AssertionError(f"{proc.args[0]} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            break
        time.sleep(0.2)
    raise AssertionError(f"{url} did not answer within {timeout}s")


def _query(prom: str, promql: str) -> list[dict]:
    url = f"{prom}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=5) as resp:
        body = json.loads(resp.read())
    assert body["status"] == "success", body
    return body["data"]["result"]


def _eventually(prom: str, promql: str, accept, timeout: float = 45.0) -> list[dict]:
    """Query until ``accept(result)`` holds; bounded in time and in count."""
    result: list[dict] = []
    deadline = time.monotonic() + timeout
    for _ in range(int(timeout / 0.5) + 1):
        result = _query(prom, promql)
        if accept(result) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert accept(result), f"{promql} -> {result}"
    return result


@pytest.fixture()
def services(tmp_path):
    """Start a pushgateway and a Prometheus (scraping the given server) on free loopback ports."""
    if not (PROMETHEUS and PUSHGATEWAY):
        pytest.fail("prometheus / prometheus-pushgateway missing: run `bash scripts/install-services.sh`")
    procs: list[subprocess.Popen] = []
    logs = []

    def start(server_port: int) -> tuple[str, str]:
        gw_port, prom_port = free_port(), free_port()
        gw_log = (tmp_path / "pushgateway.log").open("wb")
        logs.append(gw_log)
        procs.append(
            subprocess.Popen(
                [PUSHGATEWAY, f"--web.listen-address=127.0.0.1:{gw_port}", "--persistence.file="],
                stdout=gw_log,
                stderr=subprocess.STDOUT,
            )
        )
        config = tmp_path / "prometheus.yml"
        config.write_text(
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
            "scrape_configs:\n"
            "  - job_name: cohortlm-server\n"
            f"    static_configs: [{{targets: ['127.0.0.1:{server_port}']}}]\n"
            "  - job_name: pushgateway\n"
            "    honor_labels: true\n"
            f"    static_configs: [{{targets: ['127.0.0.1:{gw_port}']}}]\n"
        )
        prom_log = (tmp_path / "prometheus.log").open("wb")
        logs.append(prom_log)
        procs.append(
            subprocess.Popen(
                [
                    PROMETHEUS,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{prom_port}",
                ],
                stdout=prom_log,
                stderr=subprocess.STDOUT,
            )
        )
        gateway, prom = f"http://127.0.0.1:{gw_port}", f"http://127.0.0.1:{prom_port}"
        _wait_http(f"{gateway}/-/ready", procs[0])
        _wait_http(f"{prom}/-/ready", procs[1])
        return gateway, prom

    yield start
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=5)
    for f in logs:
        f.close()


def test_prometheus_scrapes_server_and_pushed_run(promoted, start_server, services, small_cohort, ra_spec):
    server = start_server(promoted, "--watch-interval", "0")
    gateway, prom = services(server.port)
    url = f"{server.url}/v1/models/ra_iorra:predict"
    instance = patient_instance(small_cohort, ra_spec, 0)
    for i in range(5):
        assert http_json(url, {"instances": [patient_instance(small_cohort, ra_spec, i)]})[0] == 200
    assert http_json(url, {"instances": [dict(instance, crp_mg_l="n/a")]})[0] == 400

    pushed = push_run_metrics(
        gateway.removeprefix("http://"),
        run_id="it-run-1",
        study="ra_iorra",
        aucs={"logistic_regression": {"das28_esr_high": 0.71, "jhaq_low": 0.66}},
        decision_promoted=True,
        tokens_per_second=512.0,
        validation_failures={"das28_esr_consistent": 2},
    )
    assert pushed

    ok = _eventually(
        prom, 'sum(cohortlm_requests_total{status="200"})', lambda r: r and float(r[0]["value"][1]) >= 5
    )
    assert float(ok[0]["value"][1]) >= 5
    _eventually(
        prom, 'sum(cohortlm_requests_total{status=~"4.."})', lambda r: r and float(r[0]["value"][1]) >= 1
    )
    per_endpoint = _eventually(
        prom,
        "sum by (endpoint) (cohortlm_predicted_probability_count)",
        lambda r: len(r) == len(ra_spec.endpoint_names),
    )
    assert {r["metric"]["endpoint"] for r in per_endpoint} == set(ra_spec.endpoint_names)
    _eventually(
        prom,
        'histogram_quantile(0.99, sum by (le) (cohortlm_request_latency_seconds_bucket{protocol="v1"}))',
        lambda r: r and 0 < float(r[0]["value"][1]) < 30,
    )
    auc = _eventually(prom, 'cohortlm_run_auc{model="logistic_regression"}', lambda r: len(r) == 2)
    assert {r["metric"]["endpoint"]: float(r["value"][1]) for r in auc} == {
        "das28_esr_high": 0.71,
        "jhaq_low": 0.66,
    }
    assert auc[0]["metric"]["study"] == "ra_iorra" and auc[0]["metric"]["job"] == "cohortlm"
    _eventually(prom, "cohortlm_gate_promoted", lambda r: r and r[0]["value"][1] == "1")
    _eventually(
        prom,
        'cohortlm_validation_failures_total{rule="das28_esr_consistent"}',
        lambda r: r and r[0]["value"][1] == "2",
    )
    _eventually(prom, "cohortlm_training_tokens_per_second", lambda r: r and r[0]["value"][1] == "512")
    _eventually(
        prom,
        "time() - cohortlm_run_last_success_timestamp_seconds",
        lambda r: r and float(r[0]["value"][1]) < 120,
    )
    # No patient identifier became a label anywhere Prometheus stored.
    ids = set(small_cohort[ra_spec.id_column].astype(str))
    for name in ("model_version", "status", "endpoint", "protocol", "rule", "model", "run_id"):
        with urllib.request.urlopen(f"{prom}/api/v1/label/{name}/values", timeout=5) as resp:
            values = set(json.loads(resp.read())["data"])
        assert not values & ids, name
    assert Path(server.log_path).exists()
