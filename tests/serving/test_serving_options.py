"""Serving options at their edges: ports outside 0-65535, port 0, token files other users can read."""

from __future__ import annotations

import asyncio
import logging
import re
import subprocess
import sys
import time

import pytest
from serving_testlib import COHORTLM, REPO

from cohortlm.errors import UsageError

TOKEN = "options-test-token-0123456789abcdef"


def _serve(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(COHORTLM), "serve", *args], capture_output=True, text=True, timeout=120, cwd=REPO
    )


@pytest.mark.parametrize("option", ["--grpc-port", "--http-port"])
@pytest.mark.parametrize("value", ["70000", "-1", "65536"])
def test_a_port_outside_the_range_is_a_usage_error(promoted, option, value):
    proc = _serve("--bundle", str(promoted), option, value)
    assert proc.returncode == 2, proc.stderr
    assert option in proc.stderr and re.search(r"65535|greater than or equal to 0", proc.stderr)
    assert "Traceback" not in proc.stderr


def test_the_server_module_and_the_function_bound_ports_too(promoted):
    from serving.server import serve

    proc = subprocess.run(
        [sys.executable, "-m", "serving.server", "--bundle", str(promoted), "--grpc-port", "70000"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert proc.returncode == 2 and "70000 is not a port" in proc.stderr, proc.stderr
    with pytest.raises(UsageError, match=r"--grpc-port 70000 is not a port: give 1-65535, or 0"):
        serve(promoted, grpc_port=70000)
    with pytest.raises(UsageError, match=r"--http-port -5 is not a port"):
        serve(promoted, http_port=-5)


@pytest.mark.slow
def test_grpc_port_0_picks_a_free_port_and_logs_it(promoted, start_server, tmp_path):
    server = start_server(promoted, "--watch-interval", "0", "--grpc-port", "0")
    deadline = time.monotonic() + 30
    found = None
    while found is None and time.monotonic() < deadline:
        found = re.search(r"gRPC on 127\.0\.0\.1:(\d+)", server.log())
        time.sleep(0.1)
    assert found, server.log()
    port = int(found.group(1))
    assert port not in (0, 8081, server.port)

    async def ready() -> bool:
        from kserve import InferenceGRPCClient

        client = InferenceGRPCClient(url=f"127.0.0.1:{port}", retries=2, timeout=10)
        try:
            return bool(await client.is_server_ready())
        finally:
            await client.close()

    assert asyncio.run(ready())  # the logged port is the one gRPC listens on


def test_a_token_file_every_user_can_read_is_refused(promoted, tmp_path):
    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")
    token.chmod(0o644)
    proc = _serve("--bundle", str(promoted), "--auth-token-file", str(token))
    assert proc.returncode == 2, proc.stderr
    assert str(token) in proc.stderr and f"chmod 600 {token}" in proc.stderr and "0644" in proc.stderr
    assert TOKEN not in proc.stderr + proc.stdout
    token.chmod(0o606)  # world-writable: anyone could set the token
    with pytest.raises(UsageError, match="open to every user"):
        from serving.server import read_token

        read_token(token)


def test_a_token_file_its_group_can_read_is_served_with_a_warning(tmp_path, caplog):
    from serving.server import read_token

    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")
    token.chmod(0o440)  # a Secret mounted with defaultMode 0440 for the pod's fsGroup
    with caplog.at_level(logging.WARNING, logger="cohortlm.serving"):
        assert read_token(token) == TOKEN
    assert "can be read by its group (mode 0440)" in caplog.text and "chmod 600" in caplog.text
    assert TOKEN not in caplog.text
    token.chmod(0o600)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="cohortlm.serving"):
        assert read_token(token) == TOKEN
    assert caplog.text == ""
