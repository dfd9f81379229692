"""The prediction log: what was predicted for whom, without a patient's identity or values.

Each prediction the server answers becomes one row of ``predictions``: a keyed
pseudonym of the patient (HMAC-SHA-256 of the study's id with a secret key read from
a file, the mounted Secret on the cluster; the id in clear is never stored), the
model version, the time, and per endpoint (in the spec's order) the probability and
the decision, packed as ``probabilities`` (float64, little-endian) and ``decisions``
(one byte each): one row per patient keeps the writer's cost per prediction small.
No feature value is stored per patient: the server keeps only counts per
feature bin and day (``feature_bins``; bins from the spec, :mod:`cohortlm.monitoring.bins`),
which the monitor merges so that no reported group holds fewer than 10 patients.

The server records predictions through :class:`serving.log_writer.PredictionLog`,
mostly out of the server's process: this module holds what is stored and how (the
tables, :class:`LogStore`), and the stacked form in which the writer process writes
the requests it receives (:func:`pack`, :func:`with_columns`).

Storage is SQLAlchemy 2: SQLite for a local ``cohortlm serve``
(``sqlite:///path``), PostgreSQL through psycopg 3 on the cluster
(``postgresql://user@host/db``; the password from ``$PGPASSWORD`` or the URL).
Tables are created when missing.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from cohortlm.cohort.study import StudySpec
from cohortlm.errors import UsageError
from cohortlm.monitoring.bins import FeatureBins, spec_bins
from serving.validation import RequestSchema

log = logging.getLogger("cohortlm.serving.prediction_log")

KEY_ENV = "COHORTLM_PSEUDONYM_KEY_FILE"
LOG_URL_ENV = "COHORTLM_PREDICTION_LOG"
MIN_KEY_BYTES = 16

metadata = sa.MetaData()
predictions = sa.Table(
    "predictions",
    metadata,
    sa.Column(
        "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True
    ),
    sa.Column("pseudonym", sa.String(64), nullable=True),
    sa.Column("model_version", sa.String(64), nullable=False),
    sa.Column("served_at", sa.Float, nullable=False),  # seconds since the epoch, UTC
    # per endpoint, in the study spec's order: float64 little-endian, and 0/1 bytes
    sa.Column("probabilities", sa.LargeBinary, nullable=False),
    sa.Column("decisions", sa.LargeBinary, nullable=False),
    sa.Index("ix_predictions_version_time", "model_version", "served_at"),
    sa.Index("ix_predictions_pseudonym", "pseudonym"),
)
outcomes = sa.Table(
    "outcomes",
    metadata,
    sa.Column("pseudonym", sa.String(64), primary_key=True),
    sa.Column("endpoint", sa.String(64), primary_key=True),
    sa.Column("value", sa.SmallInteger, nullable=False),
    sa.Column("observed_on", sa.String(10), nullable=True),
)


def _bin_counts(name: str, *keys: sa.Column[Any]) -> sa.Table:
    """A table of patients per feature bin of one model version; ``keys`` follow the version."""
    return sa.Table(
        name,
        metadata,
        sa.Column("model_version", sa.String(64), primary_key=True),
        *keys,
        sa.Column("feature", sa.String(64), primary_key=True),
        sa.Column("bin", sa.Integer, primary_key=True),
        sa.Column("count", sa.BigInteger, nullable=False),
    )


#: the served patients' counts, per day; the training reference's counts (the drift reference)
feature_bins = _bin_counts("feature_bins", sa.Column("day", sa.String(10), primary_key=True))
reference_bins = _bin_counts("reference_bins")
retraining_runs = sa.Table(
    "retraining_runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("submitted_at", sa.Float, nullable=False),
    sa.Column("model_version", sa.String(64), nullable=False),
    sa.Column("run_id", sa.String(128), nullable=True),
    sa.Column("reasons", sa.Text, nullable=False),
)


# ---------------------------------------------------------------------------- pseudonyms


def read_pseudonym_key(path: str | Path | None) -> bytes:
    """The HMAC key from a file (``--pseudonym-key-file``, default ``$COHORTLM_PSEUDONYM_KEY_FILE``).

    Raises:
        UsageError: no file given, the file is missing, or it holds fewer than 16 bytes.
    """
    given = path if path is not None else (os.environ.get(KEY_ENV) or None)
    if given is None:
        raise UsageError(
            "the prediction log needs a pseudonym key: pass --pseudonym-key-file FILE "
            f"(or set ${KEY_ENV}); make one with: head -c 32 /dev/urandom | base64 > FILE"
        )
    file = Path(given)
    if not file.is_file():
        raise UsageError(f"pseudonym key file {file} does not exist")
    key = file.read_bytes().strip()
    if key.startswith(b"REPLACE_ME"):
        raise UsageError(
            f"pseudonym key file {file} still holds the shipped placeholder of the Secret "
            "cohortlm-pseudonym-key; fill it with random bytes (docs/platform.md#secrets)"
        )
    if len(key) < MIN_KEY_BYTES:
        raise UsageError(
            f"pseudonym key file {file} holds fewer than {MIN_KEY_BYTES} bytes; "
            "use at least 32 random bytes (head -c 32 /dev/urandom | base64)"
        )
    return key


def pseudonym(key: bytes, patient_id: Any) -> str:
    """The keyed pseudonym (HMAC-SHA-256, hex) of a patient id; ids are compared as text."""
    return hmac.new(key, str(patient_id).encode("utf-8"), hashlib.sha256).hexdigest()


# ---------------------------------------------------------------------------- the store


def resolve_url(url: str) -> str:
    """The database URL; ``@FILE`` reads it from a file (the mounted Secret ``cohortlm-prediction-log``).

    Raises:
        UsageError: the file is missing or still holds the shipped placeholder.
    """
    if not url.startswith("@"):
        return url
    file = Path(url[1:])
    if not file.is_file():
        raise UsageError(f"--prediction-log {url}: the file {file} does not exist")
    text = file.read_text(encoding="utf-8").strip()
    if text.startswith("REPLACE_ME"):
        raise UsageError(
            f"--prediction-log {url} still holds the shipped placeholder of the Secret "
            "cohortlm-prediction-log; put the database URL in it (docs/platform.md#secrets)"
        )
    return text


def engine_for(url: str) -> Engine:
    """A SQLAlchemy engine for ``sqlite:///...``, ``postgresql://...`` (psycopg 3) or ``@FILE`` holding one.

    Raises:
        UsageError: another scheme, or a malformed URL (the message never shows a password).
    """
    url = resolve_url(url)
    try:
        parsed = sa.engine.make_url(url)
    except Exception:
        raise UsageError(
            "--prediction-log must be a database URL: sqlite:///path/log.db or postgresql://user@host/db"
        ) from None
    backend = parsed.get_backend_name()
    if backend == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
        return sa.create_engine(parsed, pool_pre_ping=True, pool_size=2, max_overflow=2)
    if backend == "sqlite":
        if parsed.database:
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(parsed, connect_args={"timeout": 30})

        @sa.event.listens_for(engine, "connect")
        def _wal(dbapi_conn: Any, _record: Any) -> None:  # readers never block the writer
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return engine
    raise UsageError(
        f"--prediction-log: unsupported database {backend!r}; use sqlite:///path or postgresql://..."
    )


def safe_url(url: str) -> str:
    """The URL without its password, for messages (``@FILE`` as given)."""
    if url.startswith("@"):
        return url
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<the --prediction-log URL>"


def _upsert(
    conn: Connection, table: sa.Table, rows: list[dict[str, Any]], keys: list[str], *, add: str | None
):
    """Insert rows; on a key already present add ``add`` to it (counts) or leave the row as it is."""
    if not rows:
        return
    insert: Any = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    stmt = insert(table)
    if add is None:
        stmt = stmt.on_conflict_do_nothing(index_elements=keys)
    else:
        stmt = stmt.on_conflict_do_update(index_elements=keys, set_={add: table.c[add] + stmt.excluded[add]})
    conn.execute(stmt, rows)


class LogStore:
    """The prediction log's tables behind one engine (SQLite or PostgreSQL)."""

    def __init__(self, url: str, *, create: bool = True):
        self.url = url
        self.engine = engine_for(url)
        if create:
            try:
                self.create_tables()
            except sa.exc.OperationalError as exc:
                raise UsageError(
                    f"prediction log {safe_url(url)} is not reachable ({type(exc.orig).__name__}); "
                    "check the URL, the server and the credentials"
                ) from None

    def create_tables(self) -> None:
        """Create the log's tables where missing (raises the driver's error when the database is down)."""
        metadata.create_all(self.engine)

    def close(self) -> None:
        self.engine.dispose()

    # -------------------------------------------------------------- writing (the writer process)

    def write(self, batch: Sequence[_Item], key: bytes, bins_of: Any) -> int:
        """Write recorded requests in one transaction; returns the predictions written."""
        segments = [with_columns(seg, RequestSchema(seg.spec)) for seg in pack(batch)]
        return self.write_segments(segments, key, bins_of)

    def write_segments(self, segments: Sequence[Segment], key: bytes, bins_of: Any) -> int:
        """Write packed requests (:func:`pack`, :func:`with_columns`) in one transaction; returns the
        predictions written.

        One row per prediction, in the order the requests were recorded, through the
        driver's ``executemany``; each feature's bins are counted once per (version, day)
        over the whole batch. ``bins_of(version, spec)`` gives a version's bins.
        """
        rows: list[tuple[Any, ...]] = []
        groups: dict[tuple[str, str], list[tuple[Segment, np.ndarray | None]]] = {}
        for seg in segments:
            k, m = seg.proba.shape
            pseud = [pseudonym(key, i) if _present(i) else None for i in seg.ids] if seg.ids else [None] * k
            probs = np.ascontiguousarray(seg.proba, dtype="<f8").tobytes()
            decs = np.ascontiguousarray(seg.decisions, dtype=np.uint8).tobytes()
            served_at = np.repeat(seg.ts, seg.sizes).tolist()
            rows += [
                (
                    pseud[r],
                    seg.version,
                    served_at[r],
                    probs[r * m * 8 : (r + 1) * m * 8],
                    decs[r * m : (r + 1) * m],
                )
                for r in range(k)
            ]
            day_of_item = [datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d") for t in seg.ts.tolist()]
            days = sorted(set(day_of_item))
            for day in days:
                mask = None if len(days) == 1 else np.repeat(np.array(day_of_item) == day, seg.sizes)
                groups.setdefault((seg.version, day), []).append((seg, mask))
        bin_rows = []
        for (version, day), parts_of in groups.items():
            bins: Mapping[str, FeatureBins] = bins_of(version, parts_of[0][0].spec)
            for name, b in bins.items():
                parts = [
                    seg.columns[name] if mask is None else seg.columns[name][mask]
                    for seg, mask in parts_of
                    if name in seg.columns
                ]
                if not parts:
                    continue
                c = b.counts(np.concatenate(parts) if len(parts) > 1 else parts[0])
                bin_rows += [
                    {
                        "model_version": version,
                        "day": day,
                        "feature": name,
                        "bin": int(idx),
                        "count": int(c[idx]),
                    }
                    for idx in np.flatnonzero(c)
                ]
        with self.engine.begin() as conn:
            if rows:
                mark = "%s" if conn.dialect.name == "postgresql" else "?"
                columns = "pseudonym, model_version, served_at, probabilities, decisions"
                sql = f"INSERT INTO predictions ({columns}) VALUES ({', '.join([mark] * 5)})"
                conn.exec_driver_sql(sql, rows)
            _upsert(conn, feature_bins, bin_rows, ["model_version", "day", "feature", "bin"], add="count")
        return len(rows)

    # -------------------------------------------------------------- outcomes

    def known_pseudonyms(self, candidates: Iterable[str]) -> set[str]:
        """Those of ``candidates`` that have a logged prediction."""
        wanted = list(set(candidates))
        found: set[str] = set()
        with self.engine.connect() as conn:
            for i in range(0, len(wanted), 500):
                chunk = wanted[i : i + 500]
                q = sa.select(predictions.c.pseudonym).where(predictions.c.pseudonym.in_(chunk)).distinct()
                found.update(r[0] for r in conn.execute(q))
        return found

    def add_outcomes(self, rows: list[dict[str, Any]]) -> tuple[int, int]:
        """Insert outcome rows; a (pseudonym, endpoint) already present is left unchanged.

        Returns:
            (added, already present)
        """
        with self.engine.begin() as conn:
            before = conn.execute(sa.select(sa.func.count()).select_from(outcomes)).scalar_one()
            _upsert(conn, outcomes, rows, ["pseudonym", "endpoint"], add=None)
            after = conn.execute(sa.select(sa.func.count()).select_from(outcomes)).scalar_one()
        added = int(after - before)
        return added, len(rows) - added

    # -------------------------------------------------------------- reading (the monitor)

    def versions(self) -> list[str]:
        with self.engine.connect() as conn:
            return [r[0] for r in conn.execute(sa.select(predictions.c.model_version).distinct())]

    def served(self, version: str, since: float, until: float, n_endpoints: int) -> dict[str, np.ndarray]:
        """The logged predictions of one version in ``[since, until)``.

        Returns:
            ``pseudonym`` (object, None where the request had no id), ``served_at`` (float)
            and ``probabilities`` (float, shape ``(n, n_endpoints)``, the spec's order).
        """
        q = sa.select(predictions.c.pseudonym, predictions.c.served_at, predictions.c.probabilities).where(
            predictions.c.model_version == version,
            predictions.c.served_at >= since,
            predictions.c.served_at < until,
        )
        with self.engine.connect() as conn:
            rows = conn.execute(q).all()
        if not rows:
            return {
                "pseudonym": np.array([], dtype=object),
                "served_at": np.array([]),
                "probabilities": np.zeros((0, n_endpoints)),
            }
        pseud, ts, blobs = zip(*rows, strict=True)
        probs = np.frombuffer(b"".join(bytes(b) for b in blobs), dtype="<f8")
        if probs.size != len(rows) * n_endpoints:
            raise UsageError(
                f"the prediction log's rows of model {version} do not hold {n_endpoints} endpoints each; "
                "is the bundle the one that served them?"
            )
        return {
            "pseudonym": np.array(pseud, dtype=object),
            "served_at": np.array(ts, dtype=float),
            "probabilities": probs.reshape(len(rows), n_endpoints).astype(float),
        }

    def outcomes_of(self, version: str, since: float, until: float) -> list[tuple[str, str, int]]:
        """(pseudonym, endpoint, value) of the outcomes of patients the version served in the window."""
        served = (
            sa.select(predictions.c.pseudonym)
            .where(
                predictions.c.model_version == version,
                predictions.c.served_at >= since,
                predictions.c.served_at < until,
                predictions.c.pseudonym.is_not(None),
            )
            .distinct()
        )
        q = sa.select(outcomes.c.pseudonym, outcomes.c.endpoint, outcomes.c.value).where(
            outcomes.c.pseudonym.in_(served)
        )
        with self.engine.connect() as conn:
            return [(str(a), str(b), int(c)) for a, b, c in conn.execute(q)]

    def served_bins(self, version: str, first_day: str, last_day: str) -> dict[str, dict[int, int]]:
        """Counts per feature and bin of one version over days ``first_day..last_day``."""
        q = (
            sa.select(feature_bins.c.feature, feature_bins.c.bin, sa.func.sum(feature_bins.c.count))
            .where(
                feature_bins.c.model_version == version,
                feature_bins.c.day >= first_day,
                feature_bins.c.day <= last_day,
            )
            .group_by(feature_bins.c.feature, feature_bins.c.bin)
        )
        out: dict[str, dict[int, int]] = {}
        with self.engine.connect() as conn:
            for feature, b, c in conn.execute(q):
                out.setdefault(feature, {})[int(b)] = int(c)
        return out

    def reference(self, version: str) -> dict[str, dict[int, int]]:
        out: dict[str, dict[int, int]] = {}
        q = sa.select(reference_bins.c.feature, reference_bins.c.bin, reference_bins.c.count).where(
            reference_bins.c.model_version == version
        )
        with self.engine.connect() as conn:
            for feature, b, c in conn.execute(q):
                out.setdefault(feature, {})[int(b)] = int(c)
        return out

    def set_reference(self, version: str, counts: Mapping[str, np.ndarray]) -> None:
        """Replace the reference counts of one version (aggregated counts of the training cohort)."""
        rows = [
            {"model_version": version, "feature": f, "bin": int(i), "count": int(c[i])}
            for f, c in counts.items()
            for i in np.flatnonzero(c)
        ]
        with self.engine.begin() as conn:
            conn.execute(reference_bins.delete().where(reference_bins.c.model_version == version))
            if rows:
                conn.execute(reference_bins.insert(), rows)

    def last_retraining(self) -> tuple[float, str | None] | None:
        q = sa.select(retraining_runs.c.submitted_at, retraining_runs.c.run_id).order_by(
            retraining_runs.c.submitted_at.desc()
        )
        with self.engine.connect() as conn:
            row = conn.execute(q.limit(1)).first()
        return (float(row[0]), row[1]) if row else None

    def record_retraining(self, version: str, run_id: str | None, reasons: str, at: float) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                retraining_runs.insert(),
                [{"submitted_at": at, "model_version": version, "run_id": run_id, "reasons": reasons}],
            )


def _present(x: Any) -> bool:
    return x is not None and not (isinstance(x, float) and math.isnan(x)) and x != ""


# ---------------------------------------------------------------------------- the packed batches


class _Item(NamedTuple):
    """One request's predictions: what :func:`pack` stacks.

    ``instances``, when given, are the request's V1 instances, which alone determine its
    checked ``columns`` (no feature store involved; :func:`with_columns` rebuilds them), and
    ``columns`` is then empty.
    """

    version: str
    spec: StudySpec
    endpoints: tuple[str, ...]
    ts: float
    ids: list[Any] | None
    proba: np.ndarray
    decisions: np.ndarray
    columns: Mapping[str, np.ndarray]
    instances: list[Mapping[str, Any]] | None = None


class Segment(NamedTuple):
    """Consecutive recorded requests of one version, stacked.

    ``ts`` and ``sizes`` hold one entry per request (its time, its rows); the rest one
    entry per prediction. ``ids`` is None when no request of the segment carried ids.
    Either ``instances`` (V1, turned into ``columns`` by :func:`with_columns`) or
    ``columns`` (the same feature columns for every request) holds the features.
    """

    version: str
    spec: StudySpec
    ts: np.ndarray
    sizes: np.ndarray
    ids: list[Any] | None
    proba: np.ndarray
    decisions: np.ndarray
    columns: dict[str, np.ndarray]
    instances: list[Mapping[str, Any]] | None = None


def pack(items: Sequence[_Item]) -> list[Segment]:
    """Stack recorded requests into segments: a few objects per batch to pickle, not a few per request."""
    segments: list[Segment] = []
    run: list[_Item] = []
    for item in items:
        if run and not _same_kind(item, run[0]):
            segments.append(_stack(run))
            run = []
        run.append(item)
    if run:
        segments.append(_stack(run))
    return segments


def _same_kind(item: _Item, first: _Item) -> bool:
    if item.version != first.version or (item.instances is None) != (first.instances is None):
        return False
    return item.instances is not None or item.columns.keys() == first.columns.keys()


def _stack(run: list[_Item]) -> Segment:
    sizes = np.fromiter((len(i.proba) for i in run), dtype=np.int64, count=len(run))
    ids: list[Any] | None = None
    if any(i.ids for i in run):
        ids = []
        for i, k in zip(run, sizes.tolist(), strict=True):
            ids += i.ids if i.ids and len(i.ids) == k else [None] * k
    instances: list[Mapping[str, Any]] | None = None
    columns: dict[str, np.ndarray] = {}
    if run[0].instances is not None:
        instances = [inst for i in run if i.instances is not None for inst in i.instances]
    else:
        columns = {name: np.concatenate([i.columns[name] for i in run]) for name in run[0].columns}
    return Segment(
        run[0].version,
        run[0].spec,
        np.fromiter((i.ts for i in run), dtype=np.float64, count=len(run)),
        sizes,
        ids,
        np.concatenate([i.proba for i in run]),
        np.concatenate([i.decisions for i in run]),
        columns,
        instances,
    )


def with_columns(segment: Segment, schema: RequestSchema) -> Segment:
    """The segment with its feature columns, from its V1 instances where it carries those.

    The instances passed the server's checks (:meth:`RequestSchema.columns_from_instances`)
    with the same spec, so they are not checked again, only converted as a check converts
    a valid value: a number or a boolean to float, missing (absent, None or NaN) to NaN, or
    to None for text. The columns are the ones the server predicted from.
    """
    if segment.instances is None:
        return segment
    columns: dict[str, np.ndarray] = {}
    for rule in schema.rules:
        values = [inst.get(rule.name) for inst in segment.instances]
        if rule.type == "categorical":
            columns[rule.name] = np.array([None if isinstance(v, float) else v for v in values], dtype=object)
        else:
            columns[rule.name] = np.array(values, dtype=float)  # None -> NaN
    return segment._replace(columns=columns, instances=None)


class BinsCache:
    """``bins_of(version, spec)`` for :meth:`LogStore.write_segments`: each version's bins, built once."""

    def __init__(self) -> None:
        self._bins: dict[str, Mapping[str, FeatureBins]] = {}

    def __call__(self, version: str, spec: StudySpec) -> Mapping[str, FeatureBins]:
        if version not in self._bins:
            self._bins[version] = spec_bins(spec)
        return self._bins[version]
