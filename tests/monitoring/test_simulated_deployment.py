"""A simulated deployment: serve a gated champion, 2,000+ requests from a shifted population,
outcomes as the generator knows them, then the monitor: drift, AUC and calibration with
intervals, the alerts fire (promtool on the pushed figures), exactly one retraining run; the
same without the shift stays quiet. No identifier or feature value reaches any output."""

from __future__ import annotations

import http.client
import json
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
import yaml
from kfp_standin import kfp_api, run_posts
from monitor_testlib import instances
from services import free_port

from serving.log_writer import PredictionLog
from serving.monitor_simulation import build_champion, population
from serving.prediction_log import read_pseudonym_key

pytestmark = [pytest.mark.slow, pytest.mark.service]

REPO = Path(__file__).resolve().parents[2]
EXE = Path(sys.executable).with_name("cohortlm")
PLANTED_ID = "PLANTED-ID-5521"
PLANTED_VALUE = 31.4159  # a BMI no bin edge or statistic produces
ENDPOINT_FIELDS = {
    "n_predictions",
    "n_outcomes",
    "auc",
    "auc_ci_low",
    "auc_ci_high",
    "citl",
    "slope",
    "oe_ratio",
    "expected_auc",
    "degraded",
}


@pytest.fixture(scope="module")
def champion(tmp_path_factory):
    return build_champion(tmp_path_factory.mktemp("deployment"), n=4000, seed=0)


def _cohortlm(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(EXE), *args], capture_output=True, text=True, timeout=600, cwd=cwd)


def _wait_ready(port: int, proc: subprocess.Popen, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the server exited"
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/v2/health/ready")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.3)
    raise AssertionError("the server was not ready in time")


def _count_rows(url: str) -> int:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text("SELECT count(*) FROM predictions")).scalar_one())
    except sa.exc.OperationalError:
        return 0
    finally:
        engine.dispose()


def _dump(url: str) -> str:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        names = [r[0] for r in conn.execute(sa.text("SELECT name FROM sqlite_master WHERE type='table'"))]
        values = [str(v) for t in names for row in conn.execute(sa.text(f"SELECT * FROM {t}")) for v in row]
    engine.dispose()
    return " ".join(values)


def _serve_and_send(champion, table, tmp: Path, key: Path, log_url: str) -> tuple[int, str]:
    """Serve the champion with the log on; one V1 request per patient (id beside the features)."""
    port = free_port()
    stderr = tmp / "server.log"
    with stderr.open("w") as err:
        proc = subprocess.Popen(
            [str(EXE), "serve", "--bundle", str(champion.pointer), "--http-port", str(port),
             "--watch-interval", "0", "--prediction-log", log_url, "--pseudonym-key-file", str(key)],
            stdout=err, stderr=subprocess.STDOUT, cwd=tmp,
        )  # fmt: skip
        try:
            _wait_ready(port, proc)
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            ok = 0
            for inst in instances(table, champion.spec):
                conn.request("POST", "/v1/models/ra_iorra:predict", json.dumps({"instances": [inst]}),
                             {"Content-Type": "application/json"})  # fmt: skip
                resp = conn.getresponse()
                body = resp.read().decode()
                assert resp.status == 200, body[:300]
                assert inst["patient_id"] not in body  # the id is never echoed
                ok += 1
            # V2 with the id tensor beside the features: accepted, not a feature, not echoed
            v2 = {"inputs": [{"name": "patient_id", "shape": [1], "datatype": "BYTES", "data": [PLANTED_ID]}]}
            for f in champion.spec.features:
                value = instances(table.iloc[:1], champion.spec)[0][f.name]
                kind = "BYTES" if f.type == "categorical" else "FP64"
                v2["inputs"].append(
                    {
                        "name": f.name,
                        "shape": [1],
                        "datatype": kind,
                        "data": [value if value is not None else ("" if kind == "BYTES" else "NaN")],
                    }
                )
            v2["inputs"] = [i for i in v2["inputs"] if i["data"] != ["NaN"]]
            conn.request(
                "POST", "/v2/models/ra_iorra/infer", json.dumps(v2), {"Content-Type": "application/json"}
            )
            resp = conn.getresponse()
            body = resp.read().decode()
            assert resp.status == 200, body[:300]
            assert PLANTED_ID not in body
            conn.close()
            want = ok + 1  # one row per prediction
            deadline = time.monotonic() + 60
            while _count_rows(log_url) < want and time.monotonic() < deadline:
                time.sleep(0.2)
            assert _count_rows(log_url) == want
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
    return ok, stderr.read_text()


def _outcomes_file(champion, table: pd.DataFrame, path: Path) -> Path:
    spec = champion.spec
    out = table[[spec.id_column, *spec.endpoint_columns]].copy()
    out["observation_date"] = (pd.to_datetime(table["baseline_date"]) + pd.DateOffset(years=2)).dt.date
    unknown = out.iloc[:1].copy()
    unknown[spec.id_column] = "NEVER-SERVED-77"
    pd.concat([out, unknown]).to_csv(path, index=False)
    return path


def _series(push_body: str) -> list[dict]:
    """The pushed samples as promtool input series, labelled as the Pushgateway exposes them."""
    series = []
    for line in push_body.splitlines():
        if not line or line.startswith("#"):
            continue
        name_labels, value = line.rsplit(" ", 1)
        if "{" in name_labels:
            name, labels = name_labels.split("{", 1)
            labels = labels.rstrip("}")
            labels = (
                f'{labels},job="cohortlm-monitor",study="ra_iorra"'
                if labels
                else 'job="cohortlm-monitor",study="ra_iorra"'
            )
        else:
            name, labels = name_labels, 'job="cohortlm-monitor",study="ra_iorra"'
        if name.startswith("cohortlm_monitor_last_run"):
            continue  # time() in promtool starts at 0; the staleness alert has its own cases
        series.append({"series": f"{name}{{{labels}}}", "values": f"{float(value)}x6"})
    return series


def _expected_alerts(result: dict) -> dict[str, list[dict]]:
    url = "https://github.com/cohortlm/cohortlm/blob/main/docs/runbook.md#"
    version = result["model_version"]
    out: dict[str, list[dict]] = {"CohortlmAucDropSignificant": [], "CohortlmCalibrationOutOfTolerance": [],
                                  "CohortlmInputDrift": []}  # fmt: skip
    for ep, r in result["endpoints"].items():
        labels = {"severity": "warning", "study": "ra_iorra", "endpoint": ep, "model_version": version}
        if r["auc_drop_significant"]:
            summary = (f"The served model's AUC on {ep} fell significantly below the AUC the gate recorded "
                       "at promotion.")  # fmt: skip
            out["CohortlmAucDropSignificant"].append(
                {"exp_labels": labels, "exp_annotations": {"summary": summary,
                                                           "runbook_url": url + "cohortlmaucdropsignificant"}}
            )  # fmt: skip
        if r["calibration_off"]:
            summary = f"Calibration of {ep} is outside the gate's tolerance on the served patients."
            out["CohortlmCalibrationOutOfTolerance"].append(
                {"exp_labels": labels, "exp_annotations": {
                    "summary": summary, "runbook_url": url + "cohortlmcalibrationoutoftolerance"}}
            )  # fmt: skip
    for feature in result["drifted_features"]:
        psi = result["features"][feature]["psi"]
        labels = {"severity": "warning", "study": "ra_iorra", "feature": feature, "model_version": version}
        summary = f"The served patients' {feature} has drifted from the training cohort (PSI {psi:.2f})."
        out["CohortlmInputDrift"].append(
            {
                "exp_labels": labels,
                "exp_annotations": {"summary": summary, "runbook_url": url + "cohortlminputdrift"},
            }
        )
    return out


def _promtool(tmp: Path, series: list[dict], expected: dict[str, list[dict]]) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is missing (Debian package prometheus): run `bash scripts/install-services.sh`")
    rule = yaml.safe_load((REPO / "manifests" / "base" / "prometheusrule.yaml").read_text())
    groups = [g for g in rule["spec"]["groups"] if g["name"] == "cohortlm-monitor"]
    (tmp / "rules.yaml").write_text(yaml.safe_dump({"groups": groups}))
    checks = [{"eval_time": "10m", "alertname": a, "exp_alerts": e} for a, e in expected.items()]
    tests = {"rule_files": ["rules.yaml"], "evaluation_interval": "5m",
             "tests": [{"interval": "5m", "input_series": series, "alert_rule_test": checks}]}  # fmt: skip
    (tmp / "deployment.test.yaml").write_text(yaml.safe_dump(tests, width=1000))
    proc = subprocess.run([promtool, "test", "rules", "deployment.test.yaml"], cwd=tmp, capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-1000:]


def _monitor(tmp: Path, log_url: str, champion, gateway, host: str, reference: Path, report: Path):
    res = _cohortlm(
        "monitor", "--prediction-log", log_url, "--bundle", str(champion.pointer), "--json",
        "--reference", str(reference), "--pushgateway", gateway.url, "--report", str(report),
        "--kfp-host", host, "--raw-data", "/data/raw", cwd=tmp,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout), res.stdout + res.stderr


def test_a_shifted_population_is_detected_alerted_and_retrained_once(champion, tmp_path, key_file, gateway):
    spec = champion.spec
    table = population(2700, seed=11, shifted=True)
    assert len(table) >= 2000
    table.loc[table.index[0], spec.id_column] = PLANTED_ID
    table.loc[table.index[0], "bmi"] = PLANTED_VALUE
    log_url = f"sqlite:///{tmp_path / 'log.db'}"
    served, server_log = _serve_and_send(champion, table, tmp_path, key_file, log_url)
    assert served >= 2000

    outcomes = _outcomes_file(champion, table, tmp_path / "outcomes.csv")
    add = _cohortlm("outcomes", "add", "--prediction-log", log_url, "--data", str(outcomes),
                    "--pseudonym-key-file", str(key_file), "--json", cwd=tmp_path)  # fmt: skip
    assert add.returncode == 0, add.stderr[-2000:]
    added = json.loads(add.stdout)
    assert added["patients_unknown"] == 1 and added["outcomes_added"] > 0
    again = _cohortlm("outcomes", "add", "--prediction-log", log_url, "--data", str(outcomes),
                      "--pseudonym-key-file", str(key_file), "--json", cwd=tmp_path)  # fmt: skip
    assert json.loads(again.stdout)["outcomes_added"] == 0  # idempotent
    assert "NEVER-SERVED-77" not in add.stdout + add.stderr + again.stdout + again.stderr

    reference = tmp_path / "train.parquet"
    champion.train.to_parquet(reference)
    with kfp_api() as (host, requests):
        result, text = _monitor(tmp_path, log_url, champion, gateway, host, reference, tmp_path / "report")
        # the exact interface fields, per endpoint and per feature
        assert result["n_predictions"] >= 2000
        for ep, r in result["endpoints"].items():
            assert set(r) >= ENDPOINT_FIELDS, ep
            assert r["n_outcomes"] >= 1900 and r["auc"] is not None, ep
            assert r["auc_ci_low"] < r["auc"] < r["auc_ci_high"]
            assert r["citl"] is not None and r["slope"] is not None and r["oe_ratio"] is not None
            assert r["expected_auc"] is not None and r["gate"]["auc"] is not None
        for f, r in result["features"].items():
            assert {"psi", "drifted"} <= set(r), f
            assert min(r["served_counts"]) >= 10  # no aggregate under 10 patients
        assert "age" in result["drifted_features"] and result["features"]["age"]["psi"] > 0.2
        # exactly one retraining run, with its reasons recorded
        posts = run_posts(requests)
        assert (
            len(posts) == 1
            and result["retraining"]["submitted"]
            and result["retraining"]["run_id"] == "run-1"
        )
        assert any(r.startswith("age: input drift") for r in result["retraining"]["reasons"])
        assert posts[0]["runtime_config"]["parameters"]["raw_data"] == "/data/raw"
        # a second look within the policy window submits nothing
        second, text2 = _monitor(tmp_path, log_url, champion, gateway, host, reference, tmp_path / "report2")
        assert len(run_posts(requests)) == 1
        assert second["retraining"]["needed"] and not second["retraining"]["submitted"]
        assert "policy window" in second["retraining"]["skipped"]
    # the alerts fire on what was pushed
    body = gateway.pushes[0].body
    expected = _expected_alerts(result)
    assert expected["CohortlmInputDrift"]
    _promtool(tmp_path, _series(body), expected)

    # planted values and every served id: in no table, output, label or page
    outputs = {
        "log tables": _dump(log_url),
        "monitor output": text + text2,
        "report": " ".join(p.read_text() for p in (tmp_path / "report").iterdir()),
        "pushed metrics": " ".join(p.body for p in gateway.pushes),
        "server log": server_log,
        "outcomes output": add.stdout + add.stderr,
    }
    ids = [str(i) for i in table[spec.id_column]]
    for where, content in outputs.items():
        assert PLANTED_ID not in content, where
        assert str(PLANTED_VALUE) not in content, where
        assert not any(re.search(rf"\b{i}\b", content) for i in ids[:200]), where
    with sa.create_engine(log_url).connect() as conn:
        reasons = conn.execute(sa.text("SELECT reasons, run_id FROM retraining_runs")).all()
    assert len(reasons) == 1 and reasons[0][1] == "run-1" and "age" in reasons[0][0]


def test_the_same_without_a_shift_stays_quiet(champion, tmp_path, key_file, gateway):
    spec = champion.spec
    table = population(2700, seed=12, shifted=False)
    log_url = f"sqlite:///{tmp_path / 'log.db'}"
    from cohortlm.models.loaders import load_bundle
    from serving.validation import RequestSchema

    predictor = load_bundle(champion.pointer.resolve())
    schema = RequestSchema(spec)
    log = PredictionLog(log_url, read_pseudonym_key(key_file), flush_interval=0.05)
    try:
        rows = instances(table, spec)
        for i in range(0, len(rows), 100):
            cols = schema.columns_from_instances(rows[i : i + 100])
            proba = predictor.predict_proba(schema.frame(cols))[spec.endpoint_names].to_numpy(dtype=float)
            log.record(predictor.version, spec, tuple(spec.endpoint_names),
                       [r[spec.id_column] for r in rows[i : i + 100]], proba, proba >= 0.5, cols)  # fmt: skip
        assert log.flush(60)
    finally:
        log.close()
    outcomes = _outcomes_file(champion, table, tmp_path / "outcomes.csv")
    add = _cohortlm("outcomes", "add", "--prediction-log", log_url, "--data", str(outcomes),
                    "--pseudonym-key-file", str(key_file), cwd=tmp_path)  # fmt: skip
    assert add.returncode == 0, add.stderr
    reference = tmp_path / "train.parquet"
    champion.train.to_parquet(reference)
    with kfp_api() as (host, requests):
        result, _ = _monitor(tmp_path, log_url, champion, gateway, host, reference, tmp_path / "report")
        assert not result["degraded"] and not result["drifted"], (
            result["degraded_endpoints"], result["drifted_features"])  # fmt: skip
        assert not result["retraining"]["needed"] and run_posts(requests) == []
    assert all(r["auc"] is not None for r in result["endpoints"].values())
    expected = {
        "CohortlmAucDropSignificant": [],
        "CohortlmCalibrationOutOfTolerance": [],
        "CohortlmInputDrift": [],
    }
    _promtool(tmp_path, _series(gateway.pushes[0].body), expected)
    assert np.isfinite([r["psi"] for r in result["features"].values() if r["psi"] is not None]).all()
