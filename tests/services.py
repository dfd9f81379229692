"""Servers from this machine's Debian packages, started by tests on 127.0.0.1 (nothing is installed here)."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def redis_server(data_dir: Path, *, password: str | None = None) -> Iterator[str]:
    """A throwaway redis-server on 127.0.0.1 and a free port; yields ``host:port``.

    No persistence, protected mode on, ``--requirepass`` when ``password`` is
    given; waits at most 20 s for it to answer a ping, and stops it afterwards.
    """
    exe = shutil.which("redis-server")
    if exe is None:
        pytest.fail("redis-server is not installed: run scripts/install-services.sh (make test does)")
    port = free_port()
    args = ["--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"]
    args += ["--dir", str(data_dir), "--protected-mode", "yes"]
    if password is not None:
        args += ["--requirepass", password]
    proc = subprocess.Popen([exe, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import redis

    client = redis.Redis(host="127.0.0.1", port=port, password=password)
    deadline = time.monotonic() + 20
    started = False
    for _ in range(400):  # bounded in count and in time
        try:
            client.ping()
            started = True
            break
        except redis.ConnectionError:
            if proc.poll() is not None or time.monotonic() > deadline:
                break
            time.sleep(0.05)
    if not started:
        proc.kill()
        pytest.fail(f"redis-server did not start on port {port}")
    try:
        yield f"127.0.0.1:{port}"
    finally:
        client.close()
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
