"""Model control on the real server: unload -> load -> predict on REST and gRPC, many times over.

With ``--enable-model-control`` an unload must leave the model registered but not loaded
(503, not ready), and a load must read, verify and self-check the bundle from disk again and
serve it, on REST and gRPC alike, as often as asked and without a restart.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from serving_testlib import free_port, patient_instance

pytestmark = pytest.mark.service

TOKEN = "control-test-token-0123456789abcdef"
CYCLES = 20


def _call(url: str, path: str, body: dict | None = None, *, method: str = "POST") -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else (b"{}" if method == "POST" else None)
    req = urllib.request.Request(
        f"{url}{path}",
        data=data,
        method=method,
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"},
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        return exc.code, json.loads(raw) if raw else {}


@pytest.fixture()
def token_file(tmp_path):
    path = tmp_path / "token"
    path.write_text(TOKEN + "\n")
    os.chmod(path, 0o600)
    return path


def _rss_mib(pid: int) -> float:
    """Resident memory of a process, in MiB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text(encoding="ascii").splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def _predict(url: str, rows: list[dict]) -> tuple[int, dict]:
    return _call(url, "/v1/models/ra_iorra:predict", {"instances": rows})


def test_rest_unload_then_load_then_predict_twenty_times(
    promoted, start_server, small_cohort, ra_spec, token_file, capsys
):
    server = start_server(
        promoted, "--watch-interval", "0", "--auth-token-file", str(token_file), "--enable-model-control"
    )
    rows = [patient_instance(small_cohort, ra_spec, i) for i in range(3)]
    status, before = _predict(server.url, rows)
    assert status == 200

    # Unloaded: still registered (503, not 404), not ready, and the index says why.
    assert _call(server.url, "/v2/repository/models/ra_iorra/unload") == (
        200,
        {"name": "ra_iorra", "unload": True},
    )
    assert _call(server.url, "/v2/health/ready", method="GET")[0] == 503
    status, answer = _predict(server.url, rows)
    assert status == 503 and "not ready" in answer["error"], answer
    status, index = _call(server.url, "/v2/repository/index")
    assert status == 200 and index == [{"name": "ra_iorra", "state": "UNAVAILABLE", "reason": "unloaded"}]
    # Unloading twice is harmless; an unknown model is 404.
    assert _call(server.url, "/v2/repository/models/ra_iorra/unload")[0] == 200
    assert _call(server.url, "/v2/repository/models/other/load")[0] == 404

    # Load: read from disk again, ready, the same answers.
    assert _call(server.url, "/v2/repository/models/ra_iorra/load") == (
        200,
        {"name": "ra_iorra", "load": True},
    )
    assert _call(server.url, "/v2/health/ready", method="GET")[0] == 200
    status, after = _predict(server.url, rows)
    assert status == 200 and after == before
    assert _call(server.url, "/v2/repository/index")[1][0]["state"] == "READY"

    # Many cycles in a row, no restart.
    unload_s, load_s = [], []
    rss_before = _rss_mib(server.proc.pid)
    for _ in range(CYCLES):
        t0 = time.monotonic()
        assert _call(server.url, "/v2/repository/models/ra_iorra/unload")[0] == 200
        t1 = time.monotonic()
        assert _predict(server.url, rows)[0] == 503
        t2 = time.monotonic()
        assert _call(server.url, "/v2/repository/models/ra_iorra/load")[0] == 200
        load_s.append(time.monotonic() - t2)
        unload_s.append(t1 - t0)
        status, again = _predict(server.url, rows)
        assert status == 200 and again == before
    rss_after = _rss_mib(server.proc.pid)
    # Each load builds a new bundle and drops the old one: memory must not grow by a bundle a cycle.
    assert rss_after - rss_before < 150, (rss_before, rss_after)
    with capsys.disabled():
        print(
            f"\nREST {CYCLES} unload/load cycles: RSS {rss_before:.0f} -> {rss_after:.0f} MiB, "
            f"unload median {sorted(unload_s)[CYCLES // 2] * 1000:.1f} ms, "
            f"load median {sorted(load_s)[CYCLES // 2] * 1000:.1f} ms, max {max(load_s) * 1000:.1f} ms"
        )
    server.stop()
    log = server.log()
    assert "Traceback" not in log and TOKEN not in log


def test_rest_load_refuses_a_bundle_changed_on_disk(
    promoted, start_server, small_cohort, ra_spec, token_file
):
    server = start_server(
        promoted, "--watch-interval", "0", "--auth-token-file", str(token_file), "--enable-model-control"
    )
    rows = [patient_instance(small_cohort, ra_spec, 0)]
    assert _call(server.url, "/v2/repository/models/ra_iorra/unload")[0] == 200
    thresholds = promoted.resolve() / "bundle.json"
    original = thresholds.read_bytes()
    thresholds.write_bytes(original + b" ")
    status, answer = _call(server.url, "/v2/repository/models/ra_iorra/load")
    assert status == 503 and "load refused (BundleIntegrityError; state: failed)" in answer["error"], answer
    assert _call(server.url, "/v2/repository/index")[1] == [
        {"name": "ra_iorra", "state": "UNAVAILABLE", "reason": "failed: BundleIntegrityError"}
    ]
    assert _predict(server.url, rows)[0] == 503
    thresholds.write_bytes(original)  # put right: the next load serves again
    assert _call(server.url, "/v2/repository/models/ra_iorra/load")[0] == 200
    assert _predict(server.url, rows)[0] == 200


async def _grpc_cycles(port: int, rows: list[dict], spec, cycles: int) -> dict:
    import grpc
    from kserve import InferenceGRPCClient
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
    from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as pb_grpc
    from kserve.protocol.infer_type import InferRequest
    from test_grpc import _inputs

    auth = (("authorization", f"Bearer {TOKEN}"),)
    out: dict = {"unload_s": [], "load_s": []}
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    stub = pb_grpc.GRPCInferenceServiceStub(channel)
    client = InferenceGRPCClient(url=f"127.0.0.1:{port}", retries=2, timeout=30)

    async def infer():
        response = await client.infer(
            InferRequest("ra_iorra", infer_inputs=_inputs(rows, spec)), headers=auth
        )
        return {o.name: o.as_numpy().tolist() for o in response.outputs}

    try:
        out["before"] = await infer()
        for i in range(cycles):
            t0 = time.monotonic()
            unloaded = await stub.RepositoryModelUnload(
                pb.RepositoryModelUnloadRequest(model_name="ra_iorra"), metadata=auth, timeout=30
            )
            out["unload_s"].append(time.monotonic() - t0)
            assert unloaded.model_name == "ra_iorra" and unloaded.isUnloaded
            ready = await stub.ModelReady(pb.ModelReadyRequest(name="ra_iorra"), timeout=10)
            assert not ready.ready
            try:
                await infer()
            except grpc.RpcError as exc:
                out.setdefault("unloaded_infer", (exc.code(), exc.details()))
            else:
                raise AssertionError("an unloaded model answered")
            t1 = time.monotonic()
            loaded = await stub.RepositoryModelLoad(
                pb.RepositoryModelLoadRequest(model_name="ra_iorra"), metadata=auth, timeout=60
            )
            out["load_s"].append(time.monotonic() - t1)
            assert loaded.model_name == "ra_iorra" and loaded.isLoaded
            assert (await stub.ModelReady(pb.ModelReadyRequest(name="ra_iorra"), timeout=10)).ready
            got = await infer()
            assert got == out["before"], i
        try:
            await stub.RepositoryModelUnload(
                pb.RepositoryModelUnloadRequest(model_name="ra_iorra"), timeout=10
            )
        except grpc.RpcError as exc:
            out["unload_without_token"] = exc.code()
    finally:
        await client.close()
        await channel.close()
    return out


def test_grpc_unload_then_load_then_infer_twenty_times(
    promoted, start_server, small_cohort, ra_spec, token_file, capsys
):
    import grpc

    port = free_port()
    server = start_server(
        promoted,
        "--watch-interval",
        "0",
        "--grpc-port",
        str(port),
        "--auth-token-file",
        str(token_file),
        "--enable-model-control",
    )
    rows = [dict(patient_instance(small_cohort, ra_spec, i)) for i in range(3)]
    got = asyncio.run(_grpc_cycles(port, rows, ra_spec, CYCLES))
    code, details = got["unloaded_infer"]
    assert code == grpc.StatusCode.UNAVAILABLE and "not ready" in details, details
    assert got["unload_without_token"] == grpc.StatusCode.UNAUTHENTICATED
    # REST sees the same state as gRPC left it: loaded.
    assert _predict(server.url, [patient_instance(small_cohort, ra_spec, 0)])[0] == 200
    load_s = sorted(got["load_s"])
    with capsys.disabled():
        print(
            f"\ngRPC {CYCLES} unload/load cycles: "
            f"unload median {sorted(got['unload_s'])[CYCLES // 2] * 1000:.1f} ms, "
            f"load median {load_s[CYCLES // 2] * 1000:.1f} ms, max {load_s[-1] * 1000:.1f} ms"
        )
    server.stop()
    log = server.log()
    assert "Traceback" not in log and "TypeError" not in log
