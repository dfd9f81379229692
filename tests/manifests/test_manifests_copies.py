"""kustomize cannot read outside manifests/base, so two files live there as copies.
These tests fail when a copy drifts from its original."""

from __future__ import annotations

import manifest_checks as mc
import pytest
import yaml

BASE = mc.MANIFESTS / "base"


def test_study_spec_copy_matches_the_package():
    original = mc.REPO / "cohortlm" / "studies" / "ra_iorra.yaml"
    copy = BASE / "ra_iorra.yaml"
    assert copy.read_text() == original.read_text(), f"{copy} drifted from {original}: cp {original} {copy}"


def test_feature_store_copy_matches_the_feature_repo():
    original = mc.REPO / "feature_repo" / "feature_store.cluster.yaml"
    copy = BASE / "feature_store.cluster.yaml"
    if not original.exists():
        pytest.skip(f"{original} does not exist yet; the copy under manifests/base is the only one")
    assert copy.read_text() == original.read_text(), f"{copy} drifted from {original}: cp {original} {copy}"


def test_feature_store_config_is_for_the_cluster():
    config = yaml.safe_load((BASE / "feature_store.cluster.yaml").read_text())
    assert config["online_store"]["type"] == "redis"
    assert config["registry"]["registry_type"] == "sql"
    # Connection strings come from the environment the feature server's start script
    # builds from the mounted Secrets; none is written in the file.
    assert config["online_store"]["connection_string"] == "${FEAST_REDIS_URL}"
    assert config["registry"]["path"] == "${FEAST_REGISTRY_URL}"
    start = next(d for d in mc.render("local") if d["kind"] == "Deployment")
    script = start["spec"]["template"]["spec"]["containers"][0]["args"][0]
    assert "export FEAST_REDIS_URL FEAST_REGISTRY_URL" in script


def test_study_config_map_is_generated_with_a_stable_name():
    docs = mc.render("local")
    study = next(
        d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "cohortlm-study-ra-iorra"
    )
    assert yaml.safe_load(study["data"]["ra_iorra.yaml"])["name"] == "ra_iorra"
