"""Fixtures for the serving tests: real baseline bundles trained on a small synthetic cohort."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from serving_testlib import ServerProcess


@pytest.fixture(scope="session")
def baseline_bundle(tmp_path_factory, small_cohort, ra_spec) -> Path:
    """A baseline bundle (logistic regression per endpoint) trained on the small cohort."""
    from cohortlm.models.baseline import train_baseline

    out = tmp_path_factory.mktemp("bundles") / "baseline"
    train_baseline(small_cohort, ra_spec).save(out)
    return out


@pytest.fixture(scope="session")
def second_bundle(tmp_path_factory, small_cohort, ra_spec) -> Path:
    """Another baseline bundle (other training rows, so another version)."""
    from cohortlm.models.baseline import train_baseline

    out = tmp_path_factory.mktemp("bundles") / "baseline2"
    train_baseline(small_cohort.iloc[: len(small_cohort) // 2], ra_spec, class_weight="balanced").save(out)
    return out


@pytest.fixture()
def store(tmp_path) -> Path:
    return tmp_path / "models"


@pytest.fixture()
def promoted(baseline_bundle, store) -> Path:
    """The store's champion pointer after promoting the baseline bundle."""
    from cohortlm.store.registry import promote

    promote(baseline_bundle, store)
    return store / "ra_iorra" / "champion"


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
