"""The cluster's online store path, locally: the pipeline's materialise step writes the cohort into
a real redis-server (password set, as the manifests run it) with the overlay's Feast config, and the
server's patient_id lookup reads it back from there."""

from __future__ import annotations

import asyncio
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from services import redis_server
from serving_testlib import patient_instance

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "manifests"))
import manifest_checks as mc  # noqa: E402

pytestmark = [pytest.mark.service, pytest.mark.slow]
PASSWORD = "local-test-password-7f3a"


@pytest.fixture
def redis_with_password(tmp_path) -> Iterator[str]:
    with redis_server(tmp_path, password=PASSWORD) as url:
        yield url


@pytest.fixture
def cluster_config(tmp_path) -> Path:
    """The feature_store.yaml of the gpu-cluster overlay's ConfigMap, as the pipeline mounts it."""
    cm = next(
        d
        for d in mc.render("gpu-cluster")
        if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "cohortlm-feature-store"
    )
    path = tmp_path / "config" / "feature_store.yaml"
    path.parent.mkdir()
    path.write_text(cm["data"]["feature_store.yaml"])
    return path


def _secrets(tmp_path: Path, password: str, registry: str) -> tuple[Path, Path]:
    redis_dir, registry_dir = tmp_path / "secrets" / "redis", tmp_path / "secrets" / "feast-registry"
    redis_dir.mkdir(parents=True)
    registry_dir.mkdir(parents=True)
    (redis_dir / "password").write_text(password)
    (registry_dir / "url").write_text(registry)
    return redis_dir, registry_dir


def test_materialised_store_answers_patient_id_requests(
    tmp_path, monkeypatch, redis_with_password, cluster_config, small_cohort, ra_spec, promoted
):
    from featurestore.pipeline import materialize_online_step
    from serving.features import feast_lookup
    from serving.model import CohortModel

    cohort = tmp_path / "cohort.parquet"
    small_cohort.to_parquet(cohort, index=False)
    # The SQL registry takes any SQLAlchemy URL; SQLite stands in for the cluster's database.
    registry_url = f"sqlite:///{tmp_path / 'registry.db'}"
    redis_dir, registry_dir = _secrets(tmp_path, PASSWORD, registry_url)
    monkeypatch.delenv("FEAST_REDIS_URL", raising=False)
    info = materialize_online_step(
        str(cohort),
        ra_spec,
        str(cluster_config),
        redis_address=redis_with_password,
        redis_secret_dir=str(redis_dir),
        registry_secret_dir=str(registry_dir),
    )
    assert info["online_store"] == "redis" and info["rows"] == len(small_cohort)
    assert info["feature_service"] == "ra_baseline_v1"

    import redis

    host, port = redis_with_password.split(":")
    assert redis.Redis(host=host, port=int(port), password=PASSWORD).dbsize() == len(small_cohort)

    # The server's lookup reads the same store: a repo folder holding only the cluster config.
    repo = tmp_path / "serving_repo"
    repo.mkdir()
    shutil.copy(cluster_config, repo / "feature_store.yaml")
    monkeypatch.setenv("FEAST_REDIS_URL", f"{redis_with_password},password={PASSWORD}")
    monkeypatch.setenv("FEAST_REGISTRY_URL", registry_url)
    model = CohortModel("ra_iorra", promoted, lookup=feast_lookup(repo, promoted), watch_interval=0)
    model.load()
    ids = small_cohort[ra_spec.id_column].astype(str).tolist()
    by_id = asyncio.run(model({"instances": [{"patient_id": ids[3]}, {"patient_id": ids[11]}]}))[0]
    by_features = asyncio.run(
        model(
            {
                "instances": [
                    patient_instance(small_cohort, ra_spec, 3),
                    patient_instance(small_cohort, ra_spec, 11),
                ]
            }
        )
    )[0]
    for got, want in zip(by_id["predictions"], by_features["predictions"], strict=True):
        assert got == pytest.approx(want, abs=1e-12)


def test_the_step_refuses_placeholder_secrets_without_echoing_them(
    tmp_path, cluster_config, small_cohort, ra_spec
):
    from cohortlm.errors import UsageError
    from featurestore.pipeline import materialize_online_step

    cohort = tmp_path / "cohort.parquet"
    small_cohort.to_parquet(cohort, index=False)
    placeholder = yaml.safe_load((ROOT / "manifests" / "base" / "kustomization.yaml").read_text())
    shipped = next(g for g in placeholder["secretGenerator"] if g["name"] == "cohortlm-redis")
    value = shipped["literals"][0].split("=", 1)[1]
    redis_dir, registry_dir = _secrets(tmp_path, value, "sqlite:///x.db")
    with pytest.raises(UsageError, match=r"Secret cohortlm-redis \(key password\) still holds") as err:
        materialize_online_step(
            str(cohort),
            ra_spec,
            str(cluster_config),
            redis_secret_dir=str(redis_dir),
            registry_secret_dir=str(registry_dir),
        )
    assert value not in str(err.value)
    assert materialize_online_step(str(cohort), ra_spec, "") == {"skipped": True}
