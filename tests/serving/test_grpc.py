"""V2 gRPC on the real model server (`cohortlm serve --grpc-port`), with tritonclient's gRPC client.

The defences of the REST side hold on gRPC too: the bearer token on ModelInfer (health and
metadata stay open), errors as a status whose details name the field and the rule but never a
value or an unknown input's name, no request content and no traceback in the log.
"""

from __future__ import annotations

import json
import urllib.request

import numpy as np
import pytest
from serving_testlib import free_port, patient_instance

pytestmark = pytest.mark.service

TOKEN = "grpc-test-token-0123456789abcdef"
SECRET_NAME = "P-SECRET-4711"
ODD_AGE = 61.2345678
ODD_ESR = "very high 93.1234"


def _inputs(grpcclient, rows, spec, *, skip=(), override=None):
    inputs = []
    for f in spec.features:
        if f.name in skip:
            continue
        values = [r[f.name] for r in rows]
        if f.type == "categorical":
            inp = grpcclient.InferInput(f.name, [len(rows)], "BYTES")
            inp.set_data_from_numpy(np.array([(v or "").encode() for v in values], dtype=np.object_))
        else:
            inp = grpcclient.InferInput(f.name, [len(rows)], "FP64")
            inp.set_data_from_numpy(np.array([np.nan if v is None else v for v in values], dtype=np.float64))
        inputs.append(inp)
    return inputs + list(override or [])


def _v1(url: str, rows: list[dict]) -> dict:
    req = urllib.request.Request(
        f"{url}/v1/models/ra_iorra:predict",
        data=json.dumps({"instances": rows}).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def test_grpc_infer_auth_and_safe_errors(promoted, start_server, small_cohort, ra_spec, tmp_path):
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException

    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    port = free_port()
    server = start_server(
        promoted, "--watch-interval", "0", "--grpc-port", str(port), "--auth-token-file", str(token_file)
    )
    auth = {"authorization": f"Bearer {TOKEN}"}
    rows = [dict(patient_instance(small_cohort, ra_spec, i)) for i in range(4)]
    rows[0]["age"] = ODD_AGE
    client = grpcclient.InferenceServerClient(url=f"127.0.0.1:{port}")
    try:
        # Health and metadata are open (probes), as on REST.
        assert client.is_server_live() and client.is_server_ready()
        assert client.is_model_ready("ra_iorra")
        meta = client.get_model_metadata("ra_iorra", as_json=True)
        assert {i["name"] for i in meta["inputs"]} == {f.name for f in ra_spec.features}

        # ModelInfer without a token, or with a wrong one: UNAUTHENTICATED.
        for headers in (None, {"authorization": "Bearer wrong-token-0123456789"}, {"authorization": TOKEN}):
            with pytest.raises(InferenceServerException) as err:
                client.infer("ra_iorra", _inputs(grpcclient, rows, ra_spec), headers=headers)
            assert err.value.status() == "StatusCode.UNAUTHENTICATED"
            assert "rule: auth" in err.value.message()

        # With the token: one probability and one decision per endpoint, equal to V1's.
        result = client.infer("ra_iorra", _inputs(grpcclient, rows, ra_spec), headers=auth)
        first = ra_spec.endpoint_names[0]
        probs = result.as_numpy(first)
        assert probs.shape == (4,) and result.as_numpy(f"{first}_decision").dtype == bool
        v1 = _v1(server.url, rows)
        np.testing.assert_allclose(probs, [p[first] for p in v1["predictions"]], rtol=0, atol=1e-12)

        def bad(inputs, model="ra_iorra"):
            with pytest.raises(InferenceServerException) as err:
                client.infer(model, inputs, headers=auth)
            return err.value.status(), err.value.message()

        # Wrong datatype: text where a number belongs.
        esr = grpcclient.InferInput("esr", [4], "BYTES")
        esr.set_data_from_numpy(np.array([ODD_ESR.encode()] * 4, dtype=np.object_))
        status, message = bad(_inputs(grpcclient, rows, ra_spec, skip={"esr"}, override=[esr]))
        assert status == "StatusCode.INVALID_ARGUMENT"
        assert "inputs[esr]" in message and "rule: type" in message and ODD_ESR not in message
        # Wrong shape.
        age = grpcclient.InferInput("age", [2, 2], "FP64")
        age.set_data_from_numpy(np.full((2, 2), ODD_AGE))
        status, message = bad(_inputs(grpcclient, rows, ra_spec, skip={"age"}, override=[age]))
        assert status == "StatusCode.INVALID_ARGUMENT" and "rule: shape" in message
        # Out of range: the field and the rule, not the value.
        age = grpcclient.InferInput("age", [4], "FP64")
        age.set_data_from_numpy(np.array([ODD_AGE, 50.0, 250.987654, 50.0]))
        status, message = bad(_inputs(grpcclient, rows, ra_spec, skip={"age"}, override=[age]))
        assert status == "StatusCode.INVALID_ARGUMENT" and "rule: range" in message
        assert "250.98" not in message and str(ODD_AGE) not in message
        # An unknown input, named like a patient identifier: its name is not repeated.
        unknown = grpcclient.InferInput(SECRET_NAME, [4], "FP64")
        unknown.set_data_from_numpy(np.zeros(4))
        status, message = bad(_inputs(grpcclient, rows, ra_spec, override=[unknown]))
        assert status == "StatusCode.INVALID_ARGUMENT" and "rule: unknown" in message
        assert SECRET_NAME not in message
        # An unknown model, named like an identifier: NOT_FOUND, the name not repeated.
        status, message = bad(_inputs(grpcclient, rows, ra_spec), model=SECRET_NAME)
        assert status == "StatusCode.NOT_FOUND" and SECRET_NAME not in message
    finally:
        client.close()

    server.stop()
    log = server.log()
    assert f"gRPC on 127.0.0.1:{port}, bearer token required" in log
    assert "v2 grpc infer" in log  # the rejections are logged, one line each ...
    for secret in (SECRET_NAME, str(ODD_AGE), ODD_ESR, "250.98", TOKEN):
        assert secret not in log  # ... without a patient's data or the token
    assert "Traceback" not in log


def test_grpc_is_off_unless_asked(promoted, start_server):
    server = start_server(promoted, "--watch-interval", "0")
    server.stop()
    assert "gRPC on" not in server.log()


def test_grpc_port_in_use_is_a_usage_error_before_loading(promoted):
    import socket
    import subprocess

    from serving_testlib import COHORTLM

    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        proc = subprocess.run(
            [
                str(COHORTLM),
                "serve",
                "--bundle",
                str(promoted),
                "--http-port",
                str(free_port()),
                "--grpc-port",
                str(port),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert proc.returncode == 2, proc.stderr
    assert f"port {port} on 127.0.0.1 in use" in proc.stderr and "--grpc-port" in proc.stderr
    assert "Traceback" not in proc.stderr
