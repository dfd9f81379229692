"""The server's side of the prediction log: a queue, a shipping thread, a writer process.

Pseudonymising, binning and writing the log's rows (:mod:`serving.prediction_log`)
costs tens to hundreds of microseconds of CPU per prediction; done in a thread of
the server, it would compete for the GIL with request handling and show at p50 and
p99. So the request only encodes what it computed anyway as a pickle of plain values
(its V1 instances as they came, its probabilities and decisions as bytes; a few
microseconds) and
appends it to a bounded queue (:meth:`PredictionLog.record`). A thread sends the
queue every ``flush_interval`` over a socket pair to a writer process, a fresh
interpreter at a lower CPU priority, which decodes, stacks
(:func:`serving.prediction_log.pack`), rebuilds the checked columns, pseudonymises,
bins and writes a flush in one transaction, and answers with what it wrote and what
it dropped; the server counts those in its metrics and waits on them to flush.

The work is done where it costs the requests least: a few microseconds inside each
request, always the same, rather than a thread of the server that holds the GIL in
bursts (each burst delays the requests it meets, which shows at p99), and the rest
in another process.

A full queue, a database that is down, or a writer that dies drops predictions and
counts them in ``cohortlm_prediction_log_dropped_total`` (by ``reason``); a prediction
is never delayed or failed by the log. A writer that dies is replaced. What was
queued when the server stops is written before it exits (:meth:`PredictionLog.close`).
Nothing that comes back from the writer is a patient's value: counts and an
exception's type name.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import pickle
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np

from cohortlm.cohort.study import StudySpec
from serving.metrics import PREDICTION_LOG_DROPPED, PREDICTION_LOG_WRITTEN
from serving.prediction_log import BinsCache, LogStore, _Item, pack, safe_url, with_columns
from serving.validation import RequestSchema

log = logging.getLogger("cohortlm.serving.prediction_log")

#: (written, dropped, the error's type name or None), called for each transaction the writer answers
OnAck = Callable[[int, int, "str | None"], None]
#: (predictions lost, the writer's exit code), called once when the writer is gone
OnLost = Callable[[int, "int | None"], None]


class PredictionLog:
    """The server's side of the log: a bounded queue, a shipping thread, and a writer process.

    :meth:`record`, on the request's path, encodes the request (:func:`_encode`) and
    appends it to a queue. A thread sends what was queued every ``flush_interval``
    seconds to the writer process, which decodes, pseudonymises, bins and writes it.
    Nothing a request waits on takes a lock another thread holds for long.

    What is lost is counted in ``cohortlm_prediction_log_dropped_total`` by ``reason``:
    ``queue_full`` (more than ``max_queue`` requests waiting), ``write_failed`` (the
    database refused or is down, or shutdown came before the write), ``writer_died``
    (the batches a writer process had not answered when it exited; a new one is started).

    Args:
        url: the database URL.
        key: the pseudonym key (:func:`read_pseudonym_key`).
        max_queue: requests the queue holds before new ones are dropped (and counted).
        max_batch: requests sent to the writer in one message.
        flush_interval: the longest a request waits before it is sent to the writer, in seconds.
    """

    def __init__(
        self,
        url: str,
        key: bytes,
        *,
        max_queue: int = 10_000,
        max_batch: int = 1024,
        flush_interval: float = 0.5,
    ):
        # The server starts (and serves) even when the database is down: the tables are
        # created by the writer once it answers, and what cannot be written is dropped and counted.
        store = LogStore(url, create=False)  # a malformed URL is refused here, before serving
        try:
            store.create_tables()
        except Exception as exc:
            log.warning(
                "prediction log %s not reachable at start (%s); predictions are dropped and counted "
                "until it answers",
                safe_url(url),
                type(exc).__name__,
            )
        finally:
            store.close()
        self.url = url
        self._key = key
        self.max_queue = max_queue
        self.max_batch = max_batch
        self.flush_interval = flush_interval
        self._queue: deque[tuple[int, bytes]] = deque()  # (predictions, the encoded request)
        self._specs: dict[str, StudySpec] = {}
        self._queue_full = PREDICTION_LOG_DROPPED.labels(reason="queue_full")
        self._state = threading.Condition()
        self._shipping = False
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._closed = False
        self._restart_delay = 1.0
        self._restart_at = 0.0
        self.writer = self._start_writer()
        self._thread = threading.Thread(target=self._ship_loop, name="prediction-log", daemon=True)
        self._thread.start()
        atexit.register(self.close, 10.0)  # an interpreter that exits without close() still flushes

    def record(
        self,
        version: str,
        spec: StudySpec,
        endpoints: tuple[str, ...],
        ids: list[Any] | None,
        proba: np.ndarray,
        decisions: np.ndarray,
        columns: Mapping[str, np.ndarray],
        instances: list[Mapping[str, Any]] | None = None,
    ) -> bool:
        """Queue one request's predictions; never blocks, never raises. False (and counted) when dropped.

        ``instances``: the request's V1 instances when they alone determine ``columns``
        (no feature store lookup); they are passed on as they came and the writer rebuilds
        the columns (:func:`serving.prediction_log.with_columns`), else the columns go as lists.
        """
        k = len(proba)
        if len(self._queue) >= self.max_queue:
            self._queue_full.inc(k)
            return False
        if version not in self._specs:
            self._specs[version] = spec
        try:
            blob = _encode(time.time(), version, ids, proba, decisions, columns, instances)
        except Exception as exc:  # never the request's failure; the type only
            PREDICTION_LOG_DROPPED.labels(reason="write_failed").inc(k)
            log.warning("prediction log: %d predictions dropped (%s)", k, type(exc).__name__)
            return False
        self._queue.append((k, blob))
        return True

    # -------------------------------------------------------------- the shipping thread

    def _start_writer(self) -> WriterProcess:
        return WriterProcess(self.url, self._key, self._answered, self._lost)

    def _answered(self, written: int, dropped: int, error: str | None) -> None:
        if written:
            PREDICTION_LOG_WRITTEN.inc(written)
            self._restart_delay = 1.0
        if dropped:
            PREDICTION_LOG_DROPPED.labels(reason="write_failed").inc(dropped)
            log.warning("prediction log: %d predictions dropped (%s)", dropped, error)
        with self._state:
            self._state.notify_all()

    def _lost(self, lost: int, exitcode: int | None) -> None:
        if lost:
            PREDICTION_LOG_DROPPED.labels(reason="writer_died").inc(lost)
        if lost or not self._stop.is_set():
            log.warning(
                "prediction log: the writer process exited (code %s); %d predictions lost", exitcode, lost
            )
        with self._state:
            self._state.notify_all()

    def _ship_loop(self) -> None:
        while True:
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            stopping = self._stop.is_set()
            if not self.writer.alive and not stopping and time.monotonic() >= self._restart_at:
                self._restart_at = time.monotonic() + self._restart_delay
                self._restart_delay = min(self._restart_delay * 2, 30.0)
                self.writer = self._start_writer()
                log.info("prediction log: a new writer process started")
            if self.writer.alive:
                self._ship()
            if stopping:
                return

    def _ship(self) -> None:
        while self._queue and self.writer.alive:
            with self._state:
                self._shipping = True
            try:
                chunk = [self._queue.popleft() for _ in range(min(self.max_batch, len(self._queue)))]
                self.writer.send([blob for _k, blob in chunk], sum(k for k, _blob in chunk), self._specs)
            finally:
                with self._state:
                    self._shipping = False
                    self._state.notify_all()

    # -------------------------------------------------------------- flush and close

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until every queued prediction is written (or dropped); False on timeout."""
        deadline = time.monotonic() + timeout
        with self._state:
            while self._queue or self._shipping or self.writer.in_flight():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._wake.set()
                self._state.wait(min(remaining, 0.05))
        return True

    def close(self, timeout: float = 30.0) -> None:
        """Write what is queued, stop the writer process (and the thread feeding it)."""
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self.close)
        deadline = time.monotonic() + timeout
        self.flush(timeout)
        self._stop.set()
        self._wake.set()
        self._thread.join(max(deadline - time.monotonic(), 0.1))  # ships what is left
        self.writer.stop(max(deadline - time.monotonic(), 1.0))
        self._thread.join(5)  # a send blocked on a hung writer fails once the writer is gone
        if self._queue:
            n = sum(k for k, _blob in list(self._queue))
            self._queue.clear()
            PREDICTION_LOG_DROPPED.labels(reason="write_failed").inc(n)
            log.warning("prediction log: %d predictions not written before shutdown", n)


class WriterProcess:
    """One writer process, the socket to it, and the batches it has not answered yet.

    The writer is ``python -c`` importing this module: a fresh interpreter, so no thread
    of the server is copied into it (as ``fork`` would), and, unlike
    ``multiprocessing``'s ``spawn``, the server's ``__main__`` is not run again in it.

    Args:
        url: the database URL (the writer opens its own engine).
        key: the pseudonym key; it reaches the writer through the socket, never argv or the environment.
        on_ack: called (from a thread of this process) for each transaction the writer answers.
        on_lost: called once when the writer is gone, with the predictions it had not answered.
    """

    def __init__(self, url: str, key: bytes, on_ack: OnAck, on_lost: OnLost):
        ours, theirs = socket.socketpair()
        root = str(Path(__file__).resolve().parents[1])  # the writer imports the server's own code
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-c", _ENTRY, str(theirs.fileno()), root],
                pass_fds=[theirs.fileno()],
                stdin=subprocess.DEVNULL,
            )
        finally:
            theirs.close()  # the writer's end lives in the writer only: its exit is an EOF here
        self._socket = ours  # kept to shut its sending half: the writer's "no more"
        self._conn = Connection(os.dup(ours.fileno()))
        self._on_ack = on_ack
        self._on_lost = on_lost
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._in_flight: dict[int, int] = {}
        self._seq = 0
        self._versions: set[str] = set()
        self.alive = True
        self._send(("open", url, key))
        self._receiver = threading.Thread(target=self._receive, name="prediction-log-acks", daemon=True)
        self._receiver.start()

    @property
    def pid(self) -> int:
        return self.process.pid

    def in_flight(self) -> int:
        """Predictions sent and not answered yet."""
        with self._lock:
            return sum(self._in_flight.values())

    def send(self, blobs: list[bytes], n: int, specs: Mapping[str, StudySpec]) -> bool:
        """Send encoded requests holding ``n`` predictions, after the spec of each version the
        writer has not been sent yet; False (and counted as lost) when the writer is gone.

        Blocks while the socket is full (a writer behind a slow database): only the
        shipping thread calls this, never a request.
        """
        with self._lock:
            if not self.alive:
                lost = n
            else:
                self._seq += 1
                seq = self._seq
                self._in_flight[seq] = n
                lost = 0
        if lost:
            self._on_lost(lost, self.process.poll())
            return False
        for version, spec in list(specs.items()):  # a spec is pickled once per writer (~100 us)
            if version not in self._versions:
                self._versions.add(version)
                self._send(("spec", version, spec))
        return self._send(("batch", seq, n, blobs))

    def _send(self, message: tuple[Any, ...]) -> bool:
        try:
            with self._send_lock:
                self._conn.send(message)
        except (OSError, ValueError):  # the writer is gone: count what it had not answered
            self._gone()
            return False
        return True

    def _receive(self) -> None:
        while True:
            try:
                _kind, seqs, written, dropped, error = self._conn.recv()
            except (EOFError, OSError):
                self._gone()
                return
            with self._lock:
                for seq in seqs:
                    self._in_flight.pop(seq, None)
            self._on_ack(written, dropped, error)

    def _gone(self) -> None:
        with self._lock:
            if not self.alive:
                return
            self.alive = False
            lost = sum(self._in_flight.values())
            self._in_flight.clear()
        try:
            code: int | None = self.process.wait(5)
        except subprocess.TimeoutExpired:  # it closed the socket and hangs: it will never answer
            self.process.kill()
            code = self.process.wait()
        self._on_lost(lost, code)

    def stop(self, timeout: float) -> None:
        """Tell the writer nothing more comes: it writes what it was sent and exits (or is killed after
        ``timeout`` seconds).

        The end of the stream is a shutdown of the socket's sending half, which never
        blocks, even when the writer hangs with the socket full.
        """
        with contextlib.suppress(OSError):
            self._socket.shutdown(socket.SHUT_WR)
        try:
            self.process.wait(max(timeout, 0.1))
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._receiver.join(5)
        self._gone()  # a no-op when the receiver saw the EOF; counts what was never answered
        self._conn.close()
        self._socket.close()


# ---------------------------------------------------------------------------- the writer process

#: the most predictions the writer puts in one transaction
MAX_TRANSACTION = 4096
#: seconds the writer waits for the next batch of a flush before it writes what it has: the
#: server ships a flush in chunks a few milliseconds apart, and a transaction per flush, not
#: per chunk, keeps the writer's CPU (each transaction adds to a few hundred bin counts) low
GATHER = 0.05

#: the writer's command: ``serving`` from where the server's is, ahead of the working directory
_ENTRY = (
    "import sys; sys.path.insert(0, sys.argv[2]); "
    "from serving.log_writer import writer_main; writer_main(int(sys.argv[1]))"
)


#: The writer process's niceness (the most the kernel allows), and its Linux scheduling policy.
WRITER_NICE = 19
WRITER_POLICY = getattr(os, "SCHED_IDLE", None)


def _lowest_priority() -> None:
    """Make the writer background work: where CPU is short, the server's requests go first.

    The queue absorbs the delay, and what it cannot hold is counted as dropped. With
    SCHED_IDLE (Linux) a request's thread that wakes takes the CPU from the writer at once;
    a niceness only weighs their shares. On 2 idle cores the p99 latency with the log on was
    1.19-1.21x of off at nice 10, 1.09-1.14x at nice 19 and 1.03-1.05x with SCHED_IDLE, every
    prediction written each time (benchmarks/results/serving_log.md).
    """
    os.nice(WRITER_NICE)
    if WRITER_POLICY is not None:
        try:
            os.sched_setscheduler(0, WRITER_POLICY, os.sched_param(0))
        except OSError:  # refused (a sandbox's seccomp profile): the niceness alone
            log.warning("prediction log: the writer runs at nice %d only (SCHED_IDLE refused)", WRITER_NICE)


def writer_main(fd: int) -> None:
    """The writer process on socket ``fd``: write each batch received and answer it, until the
    stream ends (the server stopped the log, or is gone).

    Ctrl-C in a terminal reaches the whole process group: the writer ignores it and
    lets the server stop it once the server has flushed. SIGTERM (a process group
    stopped by its supervisor) makes it write what it already received and exit.
    """
    _lowest_priority()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    terminating = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: terminating.set())
    conn = Connection(fd)
    try:
        _kind, url, key = conn.recv()
        _serve_batches(conn, url, key, terminating)
    except BaseException as exc:  # the message could quote a row: the type only
        print(f"prediction log writer: stopped by {type(exc).__name__}", file=sys.stderr, flush=True)
        sys.exit(1)


def _encode(
    ts: float,
    version: str,
    ids: list[Any] | None,
    proba: np.ndarray,
    decisions: np.ndarray,
    columns: Mapping[str, np.ndarray],
    instances: list[Mapping[str, Any]] | None,
) -> bytes:
    """One request as the writer receives it: a pickle of plain values (~3 us for a V1 instance).

    Its arrays go as bytes and its feature columns as lists: pickling a numpy array costs
    several microseconds, which the request would pay.
    """
    features = None if instances is not None else {n: (c.dtype.char, c.tolist()) for n, c in columns.items()}
    return pickle.dumps(
        (
            ts,
            version,
            ids,
            proba.shape,
            np.asarray(proba, dtype="<f8").tobytes(),
            np.asarray(decisions, dtype=np.bool_).tobytes(),
            instances,
            features,
        ),
        protocol=pickle.HIGHEST_PROTOCOL,
    )


def _decode(blob: bytes, specs: Mapping[str, StudySpec]) -> _Item:
    """The request :func:`_encode` encoded, as the writer's :func:`serving.prediction_log.pack` takes it."""
    ts, version, ids, shape, proba, decisions, instances, features = pickle.loads(blob)
    columns = {} if features is None else {n: np.array(v, dtype=dt) for n, (dt, v) in features.items()}
    return _Item(
        version,
        specs[version],
        (),
        ts,
        ids,
        np.frombuffer(proba, dtype="<f8").reshape(shape),
        np.frombuffer(decisions, dtype=np.bool_).reshape(shape),
        columns,
        instances,
    )


def _receive(conn: Connection, specs: dict[str, StudySpec]) -> tuple[list[tuple[Any, ...]], bool]:
    """The batches of one flush (at least one; up to :data:`MAX_TRANSACTION` predictions, or until
    none follows within :data:`GATHER` seconds), and whether the stream ended after them; the
    specs that come before them are kept in ``specs``."""
    batches: list[tuple[Any, ...]] = []
    n = 0
    while n < MAX_TRANSACTION and (not batches or conn.poll(GATHER)):
        try:
            message = conn.recv()
        except EOFError:  # the server stopped the log, or is gone
            return batches, True
        if message[0] == "spec":
            specs[message[1]] = message[2]
            continue
        batches.append(message)
        n += message[2]
    return batches, False


class _Writer:
    """The writer process's state: its store, the versions' specs, schemas and bins, the back-off."""

    def __init__(self, url: str, key: bytes):
        self.store = LogStore(url, create=False)
        self.key = key
        self.tables = False
        self.specs: dict[str, StudySpec] = {}  # each version's spec comes before its first batch
        self.schemas: dict[str, RequestSchema] = {}
        self.bins = BinsCache()
        self.backoff = 0.0

    def _schema(self, version: str) -> RequestSchema:
        if version not in self.schemas:
            self.schemas[version] = RequestSchema(self.specs[version], max_batch=sys.maxsize)
        return self.schemas[version]

    def write(self, batches: list[tuple[Any, ...]]) -> tuple[Any, ...]:
        """Write the batches in one transaction; the answer to send back for all of them."""
        n = sum(k for _kind, _seq, k, _blobs in batches)
        seqs = [seq for _kind, seq, _k, _blobs in batches]
        try:
            items = [_decode(blob, self.specs) for _kind, _seq, _k, blobs in batches for blob in blobs]
            segments = [with_columns(seg, self._schema(seg.version)) for seg in pack(items)]
            if not self.tables:  # the database may have been down when the server started
                self.store.create_tables()
                self.tables = True
            self.store.write_segments(segments, self.key, self.bins)
        except Exception as exc:  # the database is down or refused: dropped and counted by the server
            self.backoff = min(max(self.backoff * 2, 0.5), 10.0)
            return ("ack", seqs, 0, n, type(exc).__name__)
        self.backoff = 0.0
        return ("ack", seqs, n, 0, None)


def _serve_batches(conn: Connection, url: str, key: bytes, terminating: threading.Event) -> None:
    writer = _Writer(url, key)
    try:
        while True:
            if not conn.poll(0.2):
                if terminating.is_set():
                    return
                continue
            batches, stop = _receive(conn, writer.specs)
            if batches:
                answer = writer.write(batches)
                with contextlib.suppress(OSError):  # the server is gone: what it sent is written all the same
                    conn.send(answer)
            if stop:
                return
            if writer.backoff:
                terminating.wait(writer.backoff)  # the database is failing: let it recover
    finally:
        writer.store.close()
