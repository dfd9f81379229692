"""Fixtures for the feature store tests: a scratch copy of feature_repo/ and a real Redis."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]
try:
    import featurestore  # noqa: F401
except ModuleNotFoundError:  # a checkout whose install predates the featurestore package
    sys.path.insert(0, str(ROOT))


def make_repo(dest: Path, table: pd.DataFrame | None) -> Path:
    """Copy feature_repo/'s definitions and configs (not its data) to ``dest``, with ``table`` as data."""
    dest.mkdir(parents=True, exist_ok=True)
    for f in (ROOT / "feature_repo").iterdir():
        if f.is_file() and f.suffix in (".py", ".yaml"):
            shutil.copy(f, dest / f.name)
    if table is not None:
        (dest / "data").mkdir(exist_ok=True)
        table.to_parquet(dest / "data" / "cohort.parquet", index=False)
    return dest


@pytest.fixture
def repo_factory():
    """``make_repo`` as a fixture, so that tests need not import this conftest."""
    return make_repo


@pytest.fixture
def scratch_repo(tmp_path, small_cohort) -> Path:
    return make_repo(tmp_path / "feature_repo", small_cohort)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def redis_url(tmp_path) -> Iterator[str]:
    """A redis-server of this machine's Debian package on 127.0.0.1 and a free port (installs nothing)."""
    exe = shutil.which("redis-server")
    if exe is None:
        pytest.fail("redis-server is not installed: run scripts/install-services.sh (make test does)")
    port = _free_port()
    proc = subprocess.Popen(
        [
            exe,
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
            "--protected-mode",
            "yes",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    import redis

    client = redis.Redis(host="127.0.0.1", port=port)
    deadline = time.monotonic() + 20
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"redis-server did not start on port {port}")
            time.sleep(0.05)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        client.close()
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
