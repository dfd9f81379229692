"""The cluster configuration end to end: Redis online store (a real redis-server) and SQL registry."""

from __future__ import annotations

import pandas as pd
import pytest

pytestmark = [pytest.mark.service, pytest.mark.slow]


def test_cluster_config_with_redis(small_cohort, scratch_repo, redis_url, tmp_path, monkeypatch):
    import featurestore as fs

    # The SQL registry takes any SQLAlchemy URL; SQLite stands in for the cluster's database.
    monkeypatch.setenv("FEAST_REGISTRY_URL", f"sqlite:///{tmp_path / 'registry.db'}")
    monkeypatch.setenv("FEAST_REDIS_URL", redis_url)
    config = "feature_store.cluster.yaml"
    store = fs.open_store(scratch_repo, config_file=config)
    assert store.config.online_store.type == "redis"
    fs.apply(scratch_repo, store=store)
    fs.materialize(scratch_repo, store=store)

    ids = list(small_cohort["patient_id"].iloc[[0, 7, 42]])
    online = fs.get_online_features_for(scratch_repo, ids, config_file=config)
    assert list(online["patient_id"]) == ids
    expected = small_cohort.set_index("patient_id").loc[ids]
    for col in ("age", "sex", "das28_esr", "tjc28", "methotrexate", "acpa_positive"):
        pd.testing.assert_series_equal(
            online[col].reset_index(drop=True),
            expected[col].reset_index(drop=True),
            check_dtype=False,
            check_names=False,
        )

    import redis

    host, port = redis_url.split(":")
    assert redis.Redis(host=host, port=int(port)).dbsize() == len(small_cohort)  # one hash per patient
