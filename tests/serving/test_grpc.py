"""V2 gRPC on the real model server (`cohortlm serve --grpc-port`), with kserve's gRPC client.

The defences of the REST side hold on gRPC too: the bearer token on ModelInfer (health and
metadata stay open), errors as a status whose details name the field and the rule but never a
value or an unknown input's name, no request content and no traceback in the log.
"""

from __future__ import annotations

import asyncio
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


def _tensor(name, data, datatype):
    from kserve.protocol.infer_type import InferInput

    arr = np.asarray(data, dtype=np.object_ if datatype == "BYTES" else np.float64)
    inp = InferInput(name, list(arr.shape), datatype)
    inp.set_data_from_numpy(arr, binary_data=True)
    return inp


def _inputs(rows, spec, *, skip=(), extra=()):
    inputs = []
    for f in spec.features:
        if f.name in skip:
            continue
        values = [r[f.name] for r in rows]
        if f.type == "categorical":
            inputs.append(_tensor(f.name, [(v or "").encode() for v in values], "BYTES"))
        else:
            inputs.append(_tensor(f.name, [np.nan if v is None else v for v in values], "FP64"))
    return inputs + list(extra)


def _v1(url: str, rows: list[dict]) -> dict:
    req = urllib.request.Request(
        f"{url}/v1/models/ra_iorra:predict",
        data=json.dumps({"instances": rows}).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


async def _calls(port: int, rows: list[dict], spec) -> dict:
    """Every call of the test on one channel; returns what the assertions need."""
    import grpc
    from kserve import InferenceGRPCClient
    from kserve.protocol.infer_type import InferRequest

    auth = (("authorization", f"Bearer {TOKEN}"),)
    out: dict = {"errors": {}}

    async def error(inputs, headers=auth, model="ra_iorra"):
        try:
            await client.infer(InferRequest(model, infer_inputs=inputs), headers=headers)
        except grpc.RpcError as exc:
            return exc.code(), exc.details()
        raise AssertionError("the bad request was answered")

    client = InferenceGRPCClient(url=f"127.0.0.1:{port}", retries=2, timeout=20)
    try:
        out["live"] = await client.is_server_live()
        out["ready"] = await client.is_server_ready()
        out["model_ready"] = await client.is_model_ready("ra_iorra")
        for label, headers in (
            ("none", ()),
            ("wrong", (("authorization", "Bearer wrong-token-0123456789"),)),
            ("no scheme", (("authorization", TOKEN),)),
        ):
            out["errors"][f"auth {label}"] = await error(_inputs(rows, spec), headers=headers)
        response = await client.infer(
            InferRequest("ra_iorra", infer_inputs=_inputs(rows, spec)), headers=auth
        )
        out["outputs"] = {o.name: o.as_numpy() for o in response.outputs}
        n = len(rows)
        errors = out["errors"]
        # Wrong datatype: text where a number belongs.
        esr = _tensor("esr", [ODD_ESR.encode()] * n, "BYTES")
        errors["datatype"] = await error(_inputs(rows, spec, skip={"esr"}, extra=[esr]))
        # Wrong shape.
        age = _tensor("age", np.full((2, 2), ODD_AGE), "FP64")
        errors["shape"] = await error(_inputs(rows, spec, skip={"age"}, extra=[age]))
        # Out of range: the field and the rule, not the value.
        age = _tensor("age", [ODD_AGE, 250.987654] + [50.0] * (n - 2), "FP64")
        errors["range"] = await error(_inputs(rows, spec, skip={"age"}, extra=[age]))
        # An unknown input, named like a patient identifier.
        errors["unknown input"] = await error(
            _inputs(rows, spec, extra=[_tensor(SECRET_NAME, np.zeros(n), "FP64")])
        )
        # An unknown model, named like an identifier.
        errors["unknown model"] = await error(_inputs(rows, spec), model=SECRET_NAME)
    finally:
        await client.close()
    return out


def test_grpc_infer_auth_and_safe_errors(promoted, start_server, small_cohort, ra_spec, tmp_path):
    """kserve's own gRPC client (tritonclient's protos clash with kserve's in one process)."""
    import grpc

    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    port = free_port()
    server = start_server(
        promoted, "--watch-interval", "0", "--grpc-port", str(port), "--auth-token-file", str(token_file)
    )
    rows = [dict(patient_instance(small_cohort, ra_spec, i)) for i in range(4)]
    rows[0]["age"] = ODD_AGE
    got = asyncio.run(_calls(port, rows, ra_spec))

    # Health and readiness are open (probes), as on REST.
    assert got["live"] and got["ready"] and got["model_ready"]
    errors = got["errors"]
    for label in ("auth none", "auth wrong", "auth no scheme"):
        code, details = errors[label]
        assert code == grpc.StatusCode.UNAUTHENTICATED and "rule: auth" in details, (label, details)
    # With the token: one probability and one decision per endpoint, equal to V1's.
    first = ra_spec.endpoint_names[0]
    probs = got["outputs"][first]
    assert probs.shape == (4,) and got["outputs"][f"{first}_decision"].dtype == bool
    v1 = _v1(server.url, rows)
    np.testing.assert_allclose(probs, [p[first] for p in v1["predictions"]], rtol=0, atol=1e-12)
    # Bad requests: INVALID_ARGUMENT naming the field and the rule; never a value or a name.
    expected = {
        "datatype": (grpc.StatusCode.INVALID_ARGUMENT, "inputs[esr]", "rule: type"),
        "shape": (grpc.StatusCode.INVALID_ARGUMENT, "inputs[age]", "rule: shape"),
        "range": (grpc.StatusCode.INVALID_ARGUMENT, "inputs[", "rule: range"),
        "unknown input": (grpc.StatusCode.INVALID_ARGUMENT, "inputs[", "rule: unknown"),
        "unknown model": (grpc.StatusCode.NOT_FOUND, "model:", "served: ra_iorra"),
    }
    secrets = (SECRET_NAME, str(ODD_AGE), ODD_ESR, "250.98", TOKEN)
    for label, (code, where, rule) in expected.items():
        got_code, details = errors[label]
        assert got_code == code and where in details and rule in details, (label, got_code, details)
        assert not [s for s in secrets if s in details], (label, details)

    server.stop()
    log = server.log()
    assert f"gRPC on 127.0.0.1:{port}, bearer token required" in log
    assert "v2 grpc infer" in log  # the rejections are logged, one line each ...
    for secret in secrets:
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
