"""Feast for cohortlm: apply, materialize, point-in-time training tables, online lookups.

This module is the only code that imports Feast (the core ``cohortlm`` never
does). It works on a feature repository folder (``feature_repo/`` by default)
whose definitions are built from the study spec, and on the configuration
file next to them: ``feature_store.yaml`` (SQLite online store, local) or
``feature_store.cluster.yaml`` (Redis online store, SQL registry).

Serving calls :func:`get_online_features_for`; training calls
:func:`get_training_table`; ``cohortlm features ...`` calls the rest.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import pyarrow.parquet as pq

from cohortlm.cohort.features import ENTITY_NAME, EVENT_TIMESTAMP, OFFLINE_DATA_PATH, drift_problems
from cohortlm.cohort.io import read_table, write_table
from cohortlm.cohort.study import StudySpec
from cohortlm.errors import DataError, SpecError, UsageError
from cohortlm.yamlsafe import load_yaml_text

#: The repository shipped with the project (``<checkout>/feature_repo``).
DEFAULT_REPO = Path(__file__).resolve().parents[1] / "feature_repo"
#: The service serving and training ask for unless told otherwise.
DEFAULT_SERVICE = "ra_baseline_v1"
CONFIG_FILE = "feature_store.yaml"

_UNSET_VAR = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?")
_cache_lock = threading.Lock()
_store_cache: dict[tuple[str, str, str], Any] = {}


@dataclass(frozen=True)
class ApplySummary:
    """What an apply registered and where the offline data lives."""

    project: str
    entities: list[str]
    feature_views: list[str]
    feature_services: list[str]
    deleted: list[str]
    offline_data: Path


# ---------------------------------------------------------------------------- opening a store


def _repo(repo_path: str | Path | None) -> Path:
    repo = Path(repo_path) if repo_path is not None else DEFAULT_REPO
    if not (repo / CONFIG_FILE).is_file():
        raise UsageError(f"{repo} is not a feature repository (no {CONFIG_FILE}); give --repo")
    return repo.resolve()


def load_config(
    repo_path: str | Path | None = None,
    *,
    config_file: str | Path | None = None,
    online_store: Mapping[str, Any] | None = None,
    registry: str | Mapping[str, Any] | None = None,
) -> Any:
    """A Feast ``RepoConfig`` from the repo's YAML, with optional overrides.

    Args:
        repo_path: the feature repository (default ``feature_repo/``).
        config_file: another YAML (e.g. ``feature_store.cluster.yaml``);
            relative paths are resolved against the repository.
        online_store: replaces the ``online_store`` section (tests use it to
            point at a Redis on a free port).
        registry: replaces the ``registry`` section.

    Raises:
        UsageError: the file is missing or names an environment variable that is unset.
        SpecError: the YAML is not a valid Feast configuration.
    """
    from feast.repo_config import RepoConfig

    repo = _repo(repo_path)
    path = Path(config_file) if config_file is not None else repo / CONFIG_FILE
    if not path.is_absolute() and not path.exists():
        path = repo / path
    if not path.is_file():
        raise UsageError(f"feature store configuration {path} does not exist")
    text = os.path.expandvars(path.read_text(encoding="utf-8"))
    unset = sorted(set(_UNSET_VAR.findall("\n".join(ln.split("#", 1)[0] for ln in text.splitlines()))))
    if unset:
        raise UsageError(f"{path.name} needs the environment variable(s) {', '.join(unset)}")
    raw = load_yaml_text(text, source=str(path))
    if not isinstance(raw, dict):
        raise SpecError(f"{path}: not a Feast configuration (a YAML mapping)")
    if online_store is not None:
        raw["online_store"] = dict(online_store)
    if registry is not None:
        raw["registry"] = registry if isinstance(registry, str) else dict(registry)
    try:
        config = RepoConfig(**raw)
    except Exception as exc:  # pydantic's ValidationError: say which file, keep it short
        raise SpecError(f"{path}: not a valid Feast configuration ({type(exc).__name__})") from None
    config.repo_path = repo
    return config


def open_store(
    repo_path: str | Path | None = None,
    *,
    config_file: str | Path | None = None,
    online_store: Mapping[str, Any] | None = None,
    registry: str | Mapping[str, Any] | None = None,
) -> Any:
    """A ``feast.FeatureStore`` for the repository (see :func:`load_config` for the options)."""
    from feast import FeatureStore

    config = load_config(repo_path, config_file=config_file, online_store=online_store, registry=registry)
    return FeatureStore(repo_path=str(config.repo_path), config=config)


def _cached_store(repo_path: str | Path | None, config_file: str | Path | None) -> Any:
    # Serving looks features up per request: opening a store (and its registry)
    # each time would cost more than the lookup itself.
    key = (str(_repo(repo_path)), str(config_file or ""), os.environ.get("FEAST_REDIS_URL", ""))
    with _cache_lock:
        store = _store_cache.get(key)
        if store is None:
            store = open_store(repo_path, config_file=config_file)
            _store_cache[key] = store
        return store


# ---------------------------------------------------------------------------- definitions


def repo_objects(repo_path: str | Path | None = None) -> list[Any]:
    """The Feast objects defined by the repository's top-level ``*.py`` files.

    Like ``feast apply``, but without changing the working directory: each file
    is imported by path under a private module name.
    """
    from feast import Entity, FeatureService, FeatureView
    from feast.data_source import DataSource

    repo = _repo(repo_path)
    found: list[Any] = []
    for i, file in enumerate(sorted(repo.glob("*.py"))):
        name = f"_cohortlm_feature_repo_{abs(hash(str(repo)))}_{i}_{file.stem}"
        spec = importlib.util.spec_from_file_location(name, file)
        if spec is None or spec.loader is None:
            continue
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        for attr in vars(module).values():
            if isinstance(attr, (Entity, DataSource, FeatureView, FeatureService)) and not any(
                attr is seen for seen in found
            ):
                found.append(attr)
    return found


def _describe(
    views: Sequence[Any], services: Sequence[Any], entities: Sequence[Any]
) -> tuple[dict[str, list[tuple[str, str]]], dict[str, list[str]], dict[str, list[str]]]:
    v = {fv.name: [(f.name, str(f.dtype).lower()) for f in fv.features] for fv in views}
    s = {fs.name: [p.name for p in fs.feature_view_projections] for fs in services}
    e = {en.name: [en.join_key] for en in entities}
    return v, s, e


def definition_drift(spec: StudySpec, repo_path: str | Path | None = None) -> list[str]:
    """Where the repository's definitions differ from ``spec`` (empty when they agree)."""
    from feast import Entity, FeatureService, FeatureView

    objs = repo_objects(repo_path)
    views, services, entities = _describe(
        [o for o in objs if isinstance(o, FeatureView)],
        [o for o in objs if isinstance(o, FeatureService)],
        [o for o in objs if isinstance(o, Entity)],
    )
    return drift_problems(spec, views, services, entity_join_keys=entities)


def registry_drift(spec: StudySpec, store: Any) -> list[str]:
    """Where the applied registry differs from ``spec`` (a stale ``apply`` shows here)."""
    views, services, entities = _describe(
        store.list_feature_views(), store.list_feature_services(), store.list_entities()
    )
    return drift_problems(spec, views, services, entity_join_keys=entities)


# ---------------------------------------------------------------------------- apply, materialize


def install_offline_data(data: str | Path, repo_path: str | Path | None = None) -> Path:
    """Copy a featurised Parquet table to where the repository's FileSource reads it.

    The source is read first (a clear error for a bad file) and never modified.
    """
    repo = _repo(repo_path)
    src = Path(data)
    read_table(src, what="--data")
    dest = repo / OFFLINE_DATA_PATH
    dest.parent.mkdir(parents=True, exist_ok=True)
    if src.suffix.lower() in (".parquet", ".pq"):
        tmp = dest.with_name(dest.name + ".tmp")
        shutil.copyfile(src, tmp)
        tmp.replace(dest)
    else:
        write_table(read_table(src, what="--data"), dest)
    return dest


def apply(repo_path: str | Path | None = None, *, store: Any = None) -> ApplySummary:
    """Register the repository's definitions (``feast apply``), removing stale views and services."""
    from feast import Entity, FeatureService, FeatureView

    repo = _repo(repo_path)
    store = store if store is not None else open_store(repo)
    objects = repo_objects(repo)
    names = {o.name for o in objects}
    stale = [o for o in [*store.list_feature_services(), *store.list_feature_views()] if o.name not in names]
    store.apply(objects, objects_to_delete=stale, partial=not stale)
    return ApplySummary(
        project=store.project,
        entities=[o.name for o in objects if isinstance(o, Entity)],
        feature_views=[o.name for o in objects if isinstance(o, FeatureView)],
        feature_services=[o.name for o in objects if isinstance(o, FeatureService)],
        deleted=[o.name for o in stale],
        offline_data=repo / OFFLINE_DATA_PATH,
    )


def offline_time_range(store: Any) -> tuple[datetime, datetime]:
    """Earliest and latest event time in the offline Parquet sources of ``store``."""
    lo: datetime | None = None
    hi: datetime | None = None
    for fv in store.list_feature_views():
        src = fv.batch_source
        path = Path(src.path)
        if not path.is_absolute():
            path = Path(store.repo_path) / path
        if not path.exists():
            raise UsageError(
                f"the offline data {path} does not exist; run `cohortlm features apply --data FILE` first"
            )
        ts = pq.read_table(path, columns=[src.timestamp_field]).column(0).to_pandas()
        t0, t1 = pd.Timestamp(ts.min()), pd.Timestamp(ts.max())
        lo = t0 if lo is None else min(lo, t0)
        hi = t1 if hi is None else max(hi, t1)
    if lo is None or hi is None:
        raise UsageError("the registry holds no feature views; run `cohortlm features apply` first")
    return _utc(lo), _utc(hi)


def _utc(t: datetime | pd.Timestamp) -> datetime:
    ts = pd.Timestamp(t)
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return ts.to_pydatetime()


def materialize(
    repo_path: str | Path | None = None,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    store: Any = None,
) -> tuple[datetime, datetime]:
    """Load the latest feature values per patient into the online store.

    Args:
        repo_path: the feature repository.
        start: earliest event time to load (default: the earliest in the data).
        end: latest event time to load (default: now).
        store: an open store (default: open ``repo_path``).

    Returns:
        The (start, end) interval materialised, in UTC.
    """
    store = store if store is not None else open_store(repo_path)
    lo, _ = offline_time_range(store)
    start = _utc(start) if start is not None else lo - timedelta(seconds=1)
    end = _utc(end) if end is not None else datetime.now(UTC)
    if start >= end:
        raise UsageError("--start must come before --end")
    store.materialize(start_date=start, end_date=end)
    return start, end


# ---------------------------------------------------------------------------- retrieval


def _join_key(store: Any) -> str:
    key = getattr(store, "_cohortlm_join_key", None)
    if key is None:
        key = store.get_entity(ENTITY_NAME).join_key
        store._cohortlm_join_key = key
    return str(key)


def _service(store: Any, name: str) -> Any:
    # The same FeatureService object on every call: Feast caches the request
    # plan per object, and rebuilding it from the registry costs ~15 ms a lookup.
    services = store.__dict__.setdefault("_cohortlm_services", {})
    if name not in services:
        services[name] = store.get_feature_service(name)
    return services[name]


def get_training_table(
    entity_df: pd.DataFrame,
    *,
    repo_path: str | Path | None = None,
    service: str = DEFAULT_SERVICE,
    store: Any = None,
) -> pd.DataFrame:
    """Point-in-time correct training table from the offline store.

    For each entity row, every feature takes its latest value with an event
    time at or before that row's ``event_timestamp``; nothing recorded later
    can leak into the row.

    Args:
        entity_df: the patient id column, ``event_timestamp`` (the prediction
            time, e.g. from :func:`cohortlm.cohort.features.entity_frame`), and any
            other columns (labels), which are kept.
        repo_path: the feature repository.
        service: the feature service to retrieve.
        store: an open store (default: open ``repo_path``).

    Returns:
        One row per entity row, in the original order, with the service's
        features added (missing where no row precedes the timestamp) and
        ``event_timestamp`` in UTC.
    """
    store = store if store is not None else open_store(repo_path)
    join_key = _join_key(store)
    for col in (join_key, EVENT_TIMESTAMP):
        if col not in entity_df.columns:
            raise DataError(f"the entity frame lacks the column {col}")
    order = "__cohortlm_row"
    entities = entity_df.assign(**{order: range(len(entity_df))})
    entities[EVENT_TIMESTAMP] = pd.to_datetime(entities[EVENT_TIMESTAMP], utc=True)
    feature_service = store.get_feature_service(service)
    job = store.get_historical_features(entity_df=entities, features=feature_service)
    features = [f.name for p in feature_service.feature_view_projections for f in p.features]
    found = job.to_df().set_index(order)[features]
    # Feast's file store drops an entity row whose only feature rows all lie after
    # its timestamp; a training table keeps every row, with missing features there.
    found = found.reindex(range(len(entity_df)))
    table = pd.concat([entity_df.reset_index(drop=True), found.reset_index(drop=True)], axis=1)
    table[EVENT_TIMESTAMP] = entities[EVENT_TIMESTAMP].reset_index(drop=True)
    return table


def get_online_features_for(
    repo_path: str | Path | None,
    patient_ids: Sequence[str],
    service: str = DEFAULT_SERVICE,
    *,
    config_file: str | Path | None = None,
    store: Any = None,
    missing: Literal["nan", "error"] = "nan",
) -> pd.DataFrame:
    """Online feature values for patients, as serving needs them.

    Args:
        repo_path: the feature repository (None: ``feature_repo/``).
        patient_ids: the ids to look up, in the order rows are wanted.
        service: the feature service (``ra_baseline_v1``).
        config_file: another Feast YAML, e.g. ``feature_store.cluster.yaml``.
        store: an open store; by default one store per repo/config is opened
            once and reused across calls.
        missing: ``"nan"`` gives unknown patients a row of missing values;
            ``"error"`` raises :class:`DataError` (the message counts the
            unknown ids and never names them).

    Returns:
        One row per id, in order: the id column and the service's features.
    """
    ids = [str(p) for p in patient_ids]
    if not ids:
        raise UsageError("no patient ids to look up")
    store = store if store is not None else _cached_store(repo_path, config_file)
    join_key = _join_key(store)
    feature_service = _service(store, service)
    response = store.get_online_features(
        features=feature_service, entity_rows=[{join_key: pid} for pid in ids]
    )
    table = response.to_df()
    features = [f.name for p in feature_service.feature_view_projections for f in p.features]
    table = table[[join_key, *features]]
    unknown = int(table[features].isna().all(axis=1).sum())
    if unknown and missing == "error":
        raise DataError(
            f"{unknown} of {len(ids)} patient id(s) have no features in the online store "
            f"(service {service}); materialise the feature store or check the ids"
        )
    return table
