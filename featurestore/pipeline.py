"""The pipeline's feature-store step: cohort -> Feast offline store -> point-in-time training table.

Each run gets its own repository (``feature_repo`` parameter, or a temporary
folder): the definitions are built from the run's study spec, the validated
cohort becomes the offline store's Parquet source, the registry is applied,
and the training table is read back with ``get_historical_features`` as of
each patient's baseline time. Nothing recorded after that time can enter a
training row. Endpoint source columns (the labels) travel in the entity frame.
"""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from cohortlm.cohort.features import EVENT_TIMESTAMP, OFFLINE_DATA_PATH, entity_frame, feature_service_name
from cohortlm.cohort.io import read_provenance, read_table, write_table
from cohortlm.cohort.study import StudySpec
from cohortlm.errors import UsageError
from cohortlm.run.steps import timed
from featurestore.definitions import AS_OF_COLUMN, build_definitions

#: The as-of time given to flat tables without a timestamp column (any fixed instant works:
#: every row has the same one, so the join returns each patient's only row).
FLAT_AS_OF = pd.Timestamp("2000-01-01", tz="UTC")

_LOCAL_CONFIG = {
    "project": "cohortlm_run",
    "provider": "local",
    "registry": "data/registry.db",
    "online_store": {"type": "sqlite", "path": "data/online_store.db"},
    "offline_store": {"type": "file"},
    "entity_key_serialization_version": 3,
}


def _with_timestamp(table: pd.DataFrame, spec: StudySpec) -> tuple[pd.DataFrame, StudySpec]:
    if spec.timestamp_column is not None:
        return table, spec
    table = table.assign(**{AS_OF_COLUMN: FLAT_AS_OF})
    return table, replace(spec, timestamp_column=AS_OF_COLUMN)


def training_table(cohort: pd.DataFrame, spec: StudySpec, repo_dir: str | Path) -> pd.DataFrame:
    """Apply a repository for ``spec`` in ``repo_dir`` and read the training table back from Feast.

    Returns:
        One row per patient: id, the study's features as Feast returns them, the
        endpoint source columns, and the study's timestamp column.
    """
    from feast import FeatureStore
    from feast.repo_config import RepoConfig

    table, spec_ts = _with_timestamp(cohort, spec)
    repo = Path(repo_dir)
    (repo / "data").mkdir(parents=True, exist_ok=True)
    ts_col = spec_ts.timestamp_column
    assert ts_col is not None
    offline = table[[spec.id_column, ts_col, *spec.feature_names]].copy()
    offline[ts_col] = pd.to_datetime(offline[ts_col], utc=True)
    write_table(offline, repo / OFFLINE_DATA_PATH)
    (repo / "feature_store.yaml").write_text(yaml.safe_dump(_LOCAL_CONFIG, sort_keys=False))
    config = RepoConfig(**_LOCAL_CONFIG)
    config.repo_path = repo.resolve()
    store = FeatureStore(repo_path=str(repo.resolve()), config=config)
    definitions = build_definitions(spec_ts, path=str((repo / OFFLINE_DATA_PATH).resolve()))
    store.apply(definitions.objects())

    entities = entity_frame(table, spec_ts)
    entities[EVENT_TIMESTAMP] = pd.to_datetime(entities[EVENT_TIMESTAMP], utc=True)
    order = "__cohortlm_row"
    entities[order] = range(len(entities))
    job = store.get_historical_features(entity_df=entities, features=definitions.service)
    found = job.to_df().set_index(order)
    found = found.reindex(range(len(entities)))
    out = entities.drop(columns=[order]).reset_index(drop=True)
    for name in spec.feature_names:
        out[name] = found[name].to_numpy()
    out = out.rename(columns={EVENT_TIMESTAMP: ts_col})
    if spec.timestamp_column is None:
        out = out.drop(columns=[ts_col])
    return out


@timed
def training_table_step(cohort: str, spec: StudySpec, feature_repo: str, out: str) -> dict[str, Any]:
    """Pipeline step: featurised cohort file -> Feast -> training table file.

    The training table keeps the cohort file's provenance (whether the data is synthetic)
    for the split and gate steps.
    """
    table = read_table(cohort, what="cohort")
    repo = feature_repo or tempfile.mkdtemp(prefix="feature-repo-")
    result = training_table(table, spec, repo)
    write_table(result, out, provenance=read_provenance(cohort))
    return {
        "rows": len(result),
        "feature_service": feature_service_name(spec),
        "feature_repo": str(repo),
        "missing_feature_rows": int(result[spec.feature_names].isna().all(axis=1).sum()),
    }


#: Where the pipeline mounts the cluster's Feast config (ConfigMap cohortlm-feature-store).
CLUSTER_CONFIG_MOUNT = "/etc/cohortlm/feature-store"
#: Where the pipeline mounts the Secrets cohortlm-redis and cohortlm-feast-registry.
REDIS_SECRET_MOUNT = "/var/run/secrets/cohortlm/redis"
REGISTRY_SECRET_MOUNT = "/var/run/secrets/cohortlm/feast-registry"


def _secret(path: Path, secret: str, key: str) -> str:
    """A mounted Secret value; refuses the placeholder the manifests ship (never echoes a value)."""
    if not path.is_file():
        raise UsageError(f"Secret {secret} (key {key}) is not mounted at {path}; apply the manifests first")
    value = path.read_text(encoding="utf-8").strip()
    if not value or value.startswith("REPLACE_ME"):
        raise UsageError(
            f"Secret {secret} (key {key}) still holds the shipped placeholder; "
            "fill it (docs/platform.md#secrets)"
        )
    return value


def materialize_online(
    cohort: pd.DataFrame,
    spec: StudySpec,
    repo_dir: str | Path,
    *,
    config_file: str | Path,
    end: pd.Timestamp | None = None,
) -> dict[str, Any]:
    """Register the study's definitions in a store and load each patient's latest features online.

    ``config_file`` is the store's Feast YAML (on a cluster, the overlay's
    ``feature_store.yaml`` with the Redis online store and the SQL registry the
    feature server reads; ``${VAR}`` expanded from the environment). The cohort
    becomes the offline Parquet under ``repo_dir`` and is materialised from
    before its earliest event time to ``end`` (now).

    Returns:
        Metadata: the project, the feature service, rows and the interval loaded.
    """
    from featurestore.store import materialize, open_store

    table, spec_ts = _with_timestamp(cohort, spec)
    ts_col = spec_ts.timestamp_column
    assert ts_col is not None
    repo = Path(repo_dir)
    (repo / "data").mkdir(parents=True, exist_ok=True)
    # open_store wants a repository folder; the cluster YAML is the only config in it.
    (repo / "feature_store.yaml").write_text(Path(config_file).read_text(encoding="utf-8"))
    offline = table[[spec.id_column, ts_col, *spec.feature_names]].copy()
    offline[ts_col] = pd.to_datetime(offline[ts_col], utc=True)
    write_table(offline, repo / OFFLINE_DATA_PATH)
    store = open_store(repo)
    definitions = build_definitions(spec_ts, path=str((repo / OFFLINE_DATA_PATH).resolve()))
    store.apply(definitions.objects())
    start, stop = materialize(repo, store=store, end=end)
    return {
        "project": store.project,
        "feature_service": feature_service_name(spec),
        "online_store": store.config.online_store.type,
        "rows": len(offline),
        "start": start.isoformat(),
        "end": stop.isoformat(),
    }


def materialize_online_step(
    cohort: str,
    spec: StudySpec,
    config_file: str,
    *,
    redis_address: str = "cohortlm-redis:6379",
    redis_secret_dir: str = REDIS_SECRET_MOUNT,
    registry_secret_dir: str = REGISTRY_SECRET_MOUNT,
) -> dict[str, Any]:
    """Pipeline step: the validated cohort -> the cluster's online store (``feast materialize``).

    Builds ``FEAST_REDIS_URL`` and ``FEAST_REGISTRY_URL`` from the mounted
    Secrets, as the feature server does, for this process only. No-op when
    ``config_file`` is empty (a local run keeps its per-run SQLite store).
    """
    import os

    if not config_file:
        return {"skipped": True}
    password = _secret(Path(redis_secret_dir) / "password", "cohortlm-redis", "password")
    registry = _secret(Path(registry_secret_dir) / "url", "cohortlm-feast-registry", "url")
    os.environ["FEAST_REDIS_URL"] = f"{redis_address},password={password}"
    os.environ["FEAST_REGISTRY_URL"] = registry
    with tempfile.TemporaryDirectory(prefix="feature-repo-") as repo:
        return materialize_online(read_table(cohort, what="cohort"), spec, repo, config_file=config_file)
