"""Fixtures for the component tests: the pipeline's components called as Python functions
(``component.python_func``) on real kfp.dsl artifacts in tmp_path.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# The helpers shared with the step tests live next to them (tests/run/steplib.py).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "run"))

from steplib import RecordingGateway


@pytest.fixture(scope="session", autouse=True)
def _model_cache(tmp_path_factory) -> Iterator[Path]:
    """The tiny LLM is built into a temporary cache, never ~/.cache."""
    import os

    old = os.environ.get("COHORTLM_CACHE")
    path = tmp_path_factory.mktemp("cohortlm-cache")
    os.environ["COHORTLM_CACHE"] = str(path)
    yield path
    if old is None:
        os.environ.pop("COHORTLM_CACHE", None)
    else:
        os.environ["COHORTLM_CACHE"] = old


@pytest.fixture(autouse=True)
def _unsigned(monkeypatch) -> None:
    """Promotions here are unsigned unless a test gives a key."""
    monkeypatch.delenv("COHORTLM_SIGNING_KEY", raising=False)


@pytest.fixture
def gateway() -> Iterator[RecordingGateway]:
    gw = RecordingGateway()
    try:
        yield gw
    finally:
        gw.close()
