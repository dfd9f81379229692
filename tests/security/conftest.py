"""Fixtures for the bad-input corpus and the fuzz test: a signed champion, a locked-down server.

Planted markers (``security_markers.PLANTED``) are a value and an id no synthetic patient has; every
test puts them into a bad input and then looks for them in every response, stream, log
and file the input produced.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from serving_testlib import ServerProcess


@pytest.fixture(scope="session")
def keys(tmp_path_factory) -> dict[str, Path]:
    """A signing key pair, and a second one that did not sign anything."""
    from cohortlm.models.bundle import generate_signing_key

    folder = tmp_path_factory.mktemp("keys")
    generate_signing_key(folder / "signing-key.pem", folder / "verify-key.pem")
    generate_signing_key(folder / "other-signing-key.pem", folder / "other-verify-key.pem")
    return {
        "private": folder / "signing-key.pem",
        "public": folder / "verify-key.pem",
        "other_private": folder / "other-signing-key.pem",
        "other_public": folder / "other-verify-key.pem",
    }


@pytest.fixture(scope="session")
def signed_champion(tmp_path_factory, baseline_bundle, keys) -> Path:
    """The store's champion pointer to the bundle, promoted and signed."""
    from cohortlm.store.registry import promote

    store = tmp_path_factory.mktemp("sec-store")
    promote(baseline_bundle, store, signing_key=keys["private"])
    return store / "ra_iorra" / "champion"


@pytest.fixture(scope="session")
def token_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("token") / "token"
    path.write_text("s3cr3t-token-for-tests-0123456789\n", encoding="utf-8")
    path.chmod(0o600)  # the server refuses a token file other users can read
    return path


@pytest.fixture(scope="session")
def locked_server(tmp_path_factory, signed_champion, keys, token_file) -> Iterator[ServerProcess]:
    """One server for the HTTP cases: signature checked, bearer token required, control off."""
    log = tmp_path_factory.mktemp("sec-server") / "server.log"
    server = ServerProcess(
        signed_champion,
        log,
        "--watch-interval",
        "0",
        "--verify-key",
        str(keys["public"]),
        "--auth-token-file",
        str(token_file),
        "--max-body-mb",
        "1",
    )
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()
