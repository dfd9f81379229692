"""Fixtures of the prediction log's tests: a pseudonym key, and each database the log supports."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from services import postgres_server


@pytest.fixture
def key_file(tmp_path) -> Path:
    path = tmp_path / "pseudonym.key"
    path.write_text("c2VjcmV0LWtleS1mb3ItdGhlLXByZWRpY3Rpb24tbG9n\n")
    return path


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory) -> Iterator[str]:
    """One throwaway PostgreSQL cluster for the session (initdb + pg_ctl on 127.0.0.1)."""
    with postgres_server(tmp_path_factory.mktemp("pg")) as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.service)])
def log_url(request, tmp_path) -> str:
    """A fresh database of each kind: a SQLite file, or a new database on the session's PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'log.db'}"
    import sqlalchemy as sa

    base = request.getfixturevalue("postgres_url")
    name = f"log_{abs(hash(str(tmp_path))) % 10**9}"
    engine = sa.create_engine(
        base.replace("postgresql://", "postgresql+psycopg://"), isolation_level="AUTOCOMMIT"
    )
    with engine.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE {name}"))
    engine.dispose()
    return base.rsplit("/", 1)[0] + f"/{name}"
