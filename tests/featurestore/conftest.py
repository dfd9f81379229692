"""Fixtures for the feature store tests: a scratch copy of feature_repo/ and a real Redis."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from services import redis_server

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


@pytest.fixture
def redis_url(tmp_path) -> Iterator[str]:
    """A redis-server of this machine's Debian package on 127.0.0.1 and a free port (installs nothing)."""
    with redis_server(tmp_path) as url:
        yield url
