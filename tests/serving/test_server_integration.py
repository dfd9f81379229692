"""The real model server on 127.0.0.1: `cohortlm serve`, V1 over plain HTTP, V2 with tritonclient.

Also: 400s naming the field, /metrics names and labels, no request body in the
logs, a new champion picked up while serving, a tampered bundle refused at start.
"""

from __future__ import annotations

import subprocess
import time

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families
from serving_testlib import COHORTLM, http_json, patient_instance

from cohortlm.store import registry

pytestmark = pytest.mark.service

SECRET_ID = "P-SECRET-4711"
# A value no synthetic patient has, to look for in logs and labels.
ODD_AGE = 61.2345678


def _metrics(url: str) -> list:
    import urllib.request

    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return [s for fam in text_string_to_metric_families(text) for s in fam.samples]


def test_v1_v2_errors_metrics_and_privacy(promoted, start_server, small_cohort, ra_spec):
    server = start_server(promoted, "--watch-interval", "0")
    instance = dict(patient_instance(small_cohort, ra_spec, 0), age=ODD_AGE)

    # V1: one synthetic patient.
    status, body = http_json(f"{server.url}/v1/models/ra_iorra:predict", {"instances": [instance]})
    assert status == 200, body
    (pred,) = body["predictions"]
    assert set(pred) == set(ra_spec.endpoint_names)
    assert all(0.0 < p < 1.0 for p in pred.values())
    assert set(body["decisions"][0]) == set(ra_spec.endpoint_names)
    version = body["model_version"]
    assert version == registry.champion_version(promoted.parent.parent, "ra_iorra")

    # A string where a number belongs: 400 naming the field and the rule, not the value.
    status, body = http_json(
        f"{server.url}/v1/models/ra_iorra:predict", {"instances": [dict(instance, esr="very high")]}
    )
    assert status == 400
    assert "esr" in body["error"] and "rule: type" in body["error"]
    assert "very high" not in body["error"]
    status, body = http_json(
        f"{server.url}/v1/models/ra_iorra:predict", {"instances": [{"patient_id": SECRET_ID}]}
    )
    assert status == 400 and "rule: lookup" in body["error"] and SECRET_ID not in body["error"]

    # V2 with tritonclient: one tensor per feature, a batch of 5.
    import tritonclient.http as httpclient

    rows = [dict(patient_instance(small_cohort, ra_spec, i)) for i in range(5)]
    client = httpclient.InferenceServerClient(
        url=f"127.0.0.1:{server.port}", connection_timeout=10, network_timeout=10
    )
    try:
        assert client.is_server_ready()
        assert client.is_model_ready("ra_iorra")
        inputs = []
        for f in ra_spec.features:
            values = [r[f.name] for r in rows]
            if f.type == "categorical":
                arr = np.array([(v or "").encode() for v in values], dtype=np.object_)
                inp = httpclient.InferInput(f.name, [5], "BYTES")
            else:
                arr = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
                inp = httpclient.InferInput(f.name, [5], "FP64")
            # Binary tensors: JSON has no NaN for a missing value.
            inp.set_data_from_numpy(arr, binary_data=True)
            inputs.append(inp)
        result = client.infer("ra_iorra", inputs)
        first = ra_spec.endpoint_names[0]
        probs = result.as_numpy(first)
        decisions = result.as_numpy(f"{first}_decision")
        assert probs.shape == (5,) and decisions.dtype == bool
        assert result.get_response()["model_version"] == version
        # V1 and V2 agree.
        status, v1 = http_json(f"{server.url}/v1/models/ra_iorra:predict", {"instances": rows})
        np.testing.assert_allclose(probs, [p[first] for p in v1["predictions"]], rtol=0, atol=1e-12)
        # V2 range error -> 400 naming the input.
        bad = [i for i in inputs if i.name() != "age"]
        age = httpclient.InferInput("age", [5], "FP64")
        age.set_data_from_numpy(np.array([50.0, 50.0, 250.0, 50.0, 50.0]), binary_data=False)
        from tritonclient.utils import InferenceServerException

        with pytest.raises(InferenceServerException, match=r"inputs\[age\].*rule: range"):
            client.infer("ra_iorra", [*bad, age])
    finally:
        client.close()

    # /metrics: the contract names with their labels; no identifier or value in any label.
    samples = _metrics(server.url)
    names = {s.name for s in samples}
    assert {
        "cohortlm_request_latency_seconds_bucket",
        "cohortlm_requests_total",
        "cohortlm_predicted_probability_bucket",
    } <= names
    requests = {
        (s.labels["status"], s.labels["model_version"]): s.value
        for s in samples
        if s.name == "cohortlm_requests_total"
    }
    assert requests[("200", version)] >= 3
    assert requests[("400", version)] >= 3
    protocols = {s.labels["protocol"] for s in samples if s.name == "cohortlm_request_latency_seconds_count"}
    assert protocols == {"v1", "v2"}
    endpoints = {s.labels["endpoint"] for s in samples if s.name == "cohortlm_predicted_probability_count"}
    assert endpoints == set(ra_spec.endpoint_names)
    patient_values = {str(v) for r in rows for v in r.values()} | {SECRET_ID, str(ODD_AGE), "very high"}
    patient_values |= set(small_cohort[ra_spec.id_column].astype(str))
    for s in samples:
        if s.name.startswith("cohortlm_"):
            # `le` is a bucket boundary fixed in code, not data.
            labels = {k: v for k, v in s.labels.items() if k != "le"}
            assert set(labels) <= {"model_version", "protocol", "status", "endpoint", "kind", "study"}, s
            assert not set(labels.values()) & patient_values, s

    # No request body in any log line.
    server.stop()
    log = server.log()
    assert "ra_iorra" in log  # the log is there ...
    for secret in (SECRET_ID, str(ODD_AGE), "very high"):
        assert secret not in log  # ... without a patient's data


def test_new_champion_is_served_without_restart(
    baseline_bundle, second_bundle, store, start_server, small_cohort, ra_spec
):
    v1 = registry.promote(baseline_bundle, store)
    server = start_server(store / "ra_iorra" / "champion", "--watch-interval", "0.5")
    instance = patient_instance(small_cohort, ra_spec, 3)
    url = f"{server.url}/v1/models/ra_iorra:predict"
    assert http_json(url, {"instances": [instance]})[1]["model_version"] == v1
    v2 = registry.promote(second_bundle, store)
    seen = v1
    deadline = time.monotonic() + 30
    for _ in range(150):  # bounded in count and time
        status, body = http_json(url, {"instances": [instance]})
        assert status == 200  # no request fails during the swap
        seen = body["model_version"]
        if seen == v2 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert seen == v2
    registry.rollback(store, "ra_iorra")
    for _ in range(150):
        seen = http_json(url, {"instances": [instance]})[1]["model_version"]
        if seen == v1 or time.monotonic() > deadline + 30:
            break
        time.sleep(0.2)
    assert seen == v1


def test_bundle_with_one_changed_byte_is_refused_at_start(promoted):
    target = promoted.resolve()
    data = bytearray((target / "model.skops").read_bytes())
    data[-10] ^= 0x01
    (target / "model.skops").write_bytes(bytes(data))
    proc = subprocess.run(
        [str(COHORTLM), "serve", "--bundle", str(target), "--http-port", "1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert "modified after promotion (changed: model.skops)" in proc.stderr
    assert "Traceback" not in proc.stderr
