"""``cohortlm schedule`` and ``cohortlm submit`` create KFP runs with the Pushgateway set.

No Kubeflow Pipelines server runs here, so a stand-in for its REST API
(``/apis/v2beta1``) on 127.0.0.1 records what the real kfp client sends; the
pipeline package in the request is the real compiled pipeline.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
import yaml

from cohortlm.errors import UsageError
from pipelines.schedule import kfp_cron


class _KfpApi(BaseHTTPRequestHandler):
    requests: ClassVar[list[tuple[str, str, dict]]] = []

    def log_message(self, *args):  # quiet
        pass

    def _answer(self, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self.requests.append(("GET", self.path, {}))
        self._answer({} if "experiments" in self.path else {"commit_sha": "x", "tag_name": "2.5.0"})

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        self.requests.append(("POST", self.path, body))
        if self.path.startswith("/apis/v2beta1/experiments"):
            self._answer({"experiment_id": "exp-1", "display_name": body.get("display_name")})
        else:
            self._answer({**body, "recurring_run_id": "rr-1", "run_id": "run-1"})


@pytest.fixture
def kfp_api():
    _KfpApi.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _KfpApi)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", _KfpApi.requests
    finally:
        server.shutdown()
        server.server_close()


def _cohortlm(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("cohortlm")
    return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=300, cwd=cwd)


@pytest.mark.slow
def test_schedule_creates_a_weekly_recurring_run_that_pushes_metrics(kfp_api, tmp_path):
    host, requests = kfp_api
    res = _cohortlm("schedule", "--host", host, "--raw-data", "/data/raw", "--json", cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout)
    assert out["recurring_run_id"] == "rr-1" and out["cron"] == "0 0 3 * * 1"
    (body,) = [b for m, p, b in requests if m == "POST" and p.startswith("/apis/v2beta1/recurringruns")]
    assert body["trigger"]["cron_schedule"]["cron"] == "0 0 3 * * 1"
    assert body["max_concurrency"] == "1" or body["max_concurrency"] == 1
    assert body["no_catchup"] is True
    assert body["service_account"] == "cohortlm-pipeline-runner"
    params = body["runtime_config"]["parameters"]
    assert params["pushgateway"] == "http://prometheus-pushgateway.monitoring.svc:9091"
    assert params["raw_data"] == "/data/raw"
    assert yaml.safe_load(params["study_yaml"])["name"] == "ra_iorra"
    # The real compiled pipeline travels in the request, exit handler included.
    spec = body["pipeline_spec"]
    spec = spec.get("pipeline_spec", spec)  # with a platform spec, kfp nests the IR one level down
    assert "report-run-outcome" in spec["root"]["dag"]["tasks"]


@pytest.mark.slow
def test_schedule_refuses_a_bad_cron_and_no_host(kfp_api, tmp_path):
    host, requests = kfp_api
    res = _cohortlm("schedule", "--host", host, "--raw-data", "/d", "--cron", "every monday", cwd=tmp_path)
    assert res.returncode == 2
    assert "--cron must have 5 fields" in res.stderr
    assert not [r for r in requests if r[0] == "POST"]
    res = _cohortlm("schedule", "--raw-data", "/d", cwd=tmp_path)
    assert res.returncode == 2 and "--host" in res.stderr


@pytest.mark.parametrize(("given", "want"), [("0 3 * * 1", "0 0 3 * * 1"), ("30 0 3 * * 1", "30 0 3 * * 1")])
def test_kfp_cron(given, want):
    assert kfp_cron(given) == want
    with pytest.raises(UsageError):
        kfp_cron("* * *")


@pytest.mark.slow
@pytest.mark.parametrize("given", [None, "http://pgw.example.org:9091"])
def test_submit_passes_the_pushgateway(kfp_api, tmp_path, given):
    host, requests = kfp_api
    extra = ["--pushgateway", given] if given else []
    res = _cohortlm("submit", "--host", host, "--raw-data", "gs://bucket/ra/raw", *extra, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "run run-1 started" in res.stdout
    (body,) = [b for m, p, b in requests if m == "POST" and p.startswith("/apis/v2beta1/runs")]
    params = body["runtime_config"]["parameters"]
    assert params["pushgateway"] == (given or "http://prometheus-pushgateway.monitoring.svc:9091")
    assert params["raw_data"] == "gs://bucket/ra/raw"
    spec = body["pipeline_spec"]
    spec = spec.get("pipeline_spec", spec)
    # the raw cohort enters through an importer, so the run's lineage starts at the data
    tasks = {n: t for c in spec["components"].values() if "dag" in c for n, t in c["dag"]["tasks"].items()}
    raw = tasks["featurise"]["inputs"]["artifacts"]["raw"]["taskOutputArtifact"]
    assert raw["producerTask"] == "importer"
    assert "importer" in spec["deploymentSpec"]["executors"]["exec-importer"]


@pytest.mark.slow
def test_submit_refuses_a_pushgateway_that_is_not_a_url(kfp_api, tmp_path):
    host, requests = kfp_api
    res = _cohortlm("submit", "--host", host, "--raw-data", "/d", "--pushgateway", "pgw:9091", cwd=tmp_path)
    assert res.returncode == 2 and "--pushgateway must be an http(s) URL" in res.stderr
    assert not [r for r in requests if r[0] == "POST"]
