"""Servers from this machine's Debian packages, started by tests on 127.0.0.1 (nothing is installed here)."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
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


POSTGRES_BIN_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)


def postgres_bin(name: str) -> str | None:
    """A PostgreSQL server program (initdb, pg_ctl) from Debian's versioned folder or the PATH."""
    for folder in POSTGRES_BIN_DIRS:
        if (folder / name).is_file():
            return str(folder / name)
    return shutil.which(name)


def _as_server_user() -> tuple[list[str], int | None, int | None]:
    """PostgreSQL refuses root: as root, its programs run as the ``postgres`` (or ``nobody``) user."""
    if os.geteuid() != 0:
        return [], None, None
    import pwd

    for name in ("postgres", "nobody"):
        try:
            user = pwd.getpwnam(name)
        except KeyError:
            continue
        return ["runuser", "-u", name, "--"], user.pw_uid, user.pw_gid
    pytest.fail("running as root and no 'postgres' or 'nobody' user to run PostgreSQL as")


@contextlib.contextmanager
def postgres_server(data_dir: Path) -> Iterator[str]:
    """A throwaway PostgreSQL cluster on 127.0.0.1 and a free port; yields a ``postgresql://`` URL.

    initdb (trust authentication, local only) in a fresh folder, pg_ctl start with the
    socket there too; waits at most 30 s for it to accept connections, and stops it
    (fast) afterwards. As root, the server runs as the ``postgres`` user (it refuses
    root), in a folder of /tmp that user owns. Fails, never skips, when the binaries
    are missing: ``scripts/install-services.sh`` installs them (``make test`` runs it).
    """
    initdb, pg_ctl = postgres_bin("initdb"), postgres_bin("pg_ctl")
    if initdb is None or pg_ctl is None:
        pytest.fail("PostgreSQL is not installed: run scripts/install-services.sh (make test does)")
    prefix, uid, gid = _as_server_user()
    home = Path(tempfile.mkdtemp(prefix="cohortlm-pg-")) if uid is not None else data_dir
    if uid is not None:
        os.chown(home, uid, gid if gid is not None else -1)
    pgdata = home / "pgdata"
    try:
        subprocess.run(
            [*prefix, initdb, "-D", str(pgdata), "-U", "cohortlm", "--auth=trust", "-E", "UTF8", "--no-sync"],
            check=True,
            capture_output=True,
            timeout=120,
        )
        port = free_port()
        options = f"-c listen_addresses=127.0.0.1 -p {port} -k {home} -c fsync=off -c full_page_writes=off"
        subprocess.run(
            [
                *prefix,
                pg_ctl,
                "-D",
                str(pgdata),
                "-o",
                options,
                "-l",
                str(home / "postgres.log"),
                "-w",
                "-t",
                "30",
                "start",
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
    except subprocess.CalledProcessError as exc:
        if uid is not None:
            shutil.rmtree(home, ignore_errors=True)
        pytest.fail(f"PostgreSQL did not start: {exc.stderr.decode(errors='replace')[-500:]}")
    try:
        yield f"postgresql://cohortlm@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*prefix, pg_ctl, "-D", str(pgdata), "-m", "fast", "-w", "-t", "30", "stop"],
            capture_output=True,
            timeout=60,
        )
        if uid is not None:
            shutil.rmtree(home, ignore_errors=True)
