"""Fixtures for the serving tests: a model server subprocess (the bundles are tests/conftest.py's)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from serving_testlib import ServerProcess


@pytest.fixture()
def start_server(tmp_path) -> Iterator:
    """Start servers for a test; all are stopped at its end."""
    servers: list[ServerProcess] = []

    def start(bundle: Path, *extra: str, wait: bool = True) -> ServerProcess:
        server = ServerProcess(bundle, tmp_path / f"server{len(servers)}.log", *extra)
        servers.append(server)
        if wait:
            server.wait_ready()
        return server

    yield start
    for s in servers:
        s.stop()
