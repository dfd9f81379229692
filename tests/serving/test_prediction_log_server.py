"""The prediction log of a running `cohortlm serve`: flushed at shutdown, and serving survives its writer.

The writer is a process of its own (serving.log_writer); these tests stop, kill and
look for it by its parent, the server.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from pathlib import Path

import pytest
from serving_testlib import http_json, patient_instance

from serving.log_writer import WRITER_NICE, WRITER_POLICY
from serving.prediction_log import pseudonym

KEY = b"c2VjcmV0LWtleS1mb3ItdGhlLXByZWRpY3Rpb24tbG9n"
PLANTED = "PLANTED-ID-5521"


@pytest.fixture
def logged(tmp_path, baseline_bundle, start_server):
    """Start a server that logs to a fresh SQLite file; returns (server, database path)."""

    def start():
        key = tmp_path / "pseudonym.key"
        key.write_bytes(KEY + b"\n")
        db = tmp_path / "log.db"
        server = start_server(
            baseline_bundle,
            "--allow-unpromoted",
            "--watch-interval",
            "0",
            "--prediction-log",
            f"sqlite:///{db}",
            "--pseudonym-key-file",
            str(key),
        )
        return server, db

    return start


def _predict(server, table, spec, ids: list[str]) -> None:
    instances = [{**patient_instance(table, spec, i), spec.id_column: pid} for i, pid in enumerate(ids)]
    status, body = http_json(f"{server.url}/v1/models/ra_iorra:predict", {"instances": instances})
    assert status == 200, body


def _rows(db: Path) -> list[str]:
    with sqlite3.connect(db) as conn:
        return [r[0] for r in conn.execute("SELECT pseudonym FROM predictions ORDER BY id")]


def _metric(server, name: str) -> float:
    _status, text = http_json(f"{server.url}/metrics")
    assert isinstance(text, str)
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


def _stat(pid: int | str) -> list[str]:
    """``/proc/PID/stat`` from its third field on (the state), split after the command's name."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def _writer_pid(server_pid: int, timeout: float = 30.0) -> int:
    """The server's writer process (its child running serving.log_writer)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                ppid = int(_stat(entry)[1])
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            if ppid == server_pid and b"serving.log_writer" in cmdline:
                return int(entry)
        time.sleep(0.1)
    raise AssertionError(f"no writer process under server {server_pid}")


def _exited(pid: int) -> bool:
    try:
        state = _stat(pid)[0]
    except OSError:
        return True
    return state == "Z"


def test_shutdown_writes_every_logged_prediction(logged, small_cohort, ra_spec):
    server, db = logged()
    writer = _stat(_writer_pid(server.proc.pid))
    # background work: requests go first (stat fields 19 and 41: niceness, scheduling policy)
    assert (int(writer[16]), int(writer[38])) == (WRITER_NICE, WRITER_POLICY)
    ids = [f"P{i:06d}" for i in range(120)]
    for start in range(0, len(ids), 8):  # 15 requests of 1 to 8 instances
        chunk = ids[start : start + 1 + (start // 8) % 8]
        _predict(server, small_cohort, ra_spec, chunk)
    sent = [pid for start in range(0, len(ids), 8) for pid in ids[start : start + 1 + (start // 8) % 8]]
    server.stop()  # SIGTERM right after the last answer: some predictions are still queued
    assert server.proc.returncode == 0, server.log()
    assert _rows(db) == [pseudonym(KEY, pid) for pid in sent]
    with sqlite3.connect(db) as conn:  # every feature binned once per prediction
        query = "SELECT feature, SUM(count) FROM feature_bins GROUP BY feature"
        counts = dict(conn.execute(query).fetchall())
    assert set(counts) == {f.name for f in ra_spec.features} and set(counts.values()) == {len(sent)}


def test_a_writer_that_dies_costs_only_its_unwritten_rows_and_serving_goes_on(logged, small_cohort, ra_spec):
    server, db = logged()
    _predict(server, small_cohort, ra_spec, ["P000001", "P000002"])
    writer = _writer_pid(server.proc.pid)
    deadline = time.monotonic() + 30
    while _metric(server, "cohortlm_prediction_log_written_total") < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    os.kill(writer, signal.SIGSTOP)  # hung: what the server sends it now is never answered
    for i in range(10):
        _predict(server, small_cohort, ra_spec, [PLANTED if i == 0 else f"Q{i:06d}"])
    time.sleep(2.0)  # the server ships its queue every 0.5 s
    os.kill(writer, signal.SIGKILL)
    deadline = time.monotonic() + 30
    dropped = 0.0
    while dropped == 0 and time.monotonic() < deadline:
        dropped = _metric(server, 'cohortlm_prediction_log_dropped_total{reason="writer_died"}')
        time.sleep(0.1)
    assert dropped > 0
    for i in range(10):  # still answered while a new writer starts, and logged once it has
        _predict(server, small_cohort, ra_spec, [f"R{i:06d}"])
    assert _writer_pid(server.proc.pid) != writer
    server.stop()
    assert server.proc.returncode == 0
    rows = _rows(db)
    assert len(rows) + dropped == 2 + 10 + 10  # every prediction is written or counted as dropped
    assert rows[-10:] == [pseudonym(KEY, f"R{i:06d}") for i in range(10)]
    log = server.log()
    assert "writer process exited" in log and PLANTED not in log


def test_the_writer_does_not_outlive_a_killed_server_and_writes_what_it_was_sent(
    logged, small_cohort, ra_spec
):
    server, db = logged()
    writer = _writer_pid(server.proc.pid)
    _predict(server, small_cohort, ra_spec, ["P000001", "P000002", "P000003"])
    time.sleep(1.5)  # shipped to the writer (every 0.5 s)
    server.proc.kill()
    server.proc.wait(10)
    deadline = time.monotonic() + 30
    while not _exited(writer) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _exited(writer)
    assert _rows(db) == [pseudonym(KEY, p) for p in ("P000001", "P000002", "P000003")]
