"""Shared fixtures: small synthetic cohorts built in the test, never downloaded."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from steplib import RecordingGateway

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

#: The longest test files, longest first (pytest --durations on 2 cores). They are handed out
#: first (the Makefile keeps xdist to this order), so that the two test processes of `make test`
#: end together instead of one waiting while the other runs a pipeline it picked up last.
LONGEST_FIRST = (
    "tests/pipelines/test_local_run.py",  # two smoke pipeline runs
    "tests/pipelines/test_two_bases.py",  # a smoke run with two base models
    "tests/manifests/test_image_env_serving.py",  # pip-installs the serving image's environment
    "tests/manifests/test_image_env_pipeline.py",  # and the pipeline image's
    "tests/cohort/test_conform.py",  # a smoke run on a registry export
    "tests/pipelines/test_local_run_flat_cohort.py",  # a smoke run on a user's flat file
    "tests/models/test_default_model.py",
    "tests/models/test_trunk.py",
    "tests/models/test_llm.py",
    "tests/monitoring/test_simulated_deployment.py",
    "tests/manifests/test_manifests_checkov.py",
)


#: Fixtures that start a real server on 127.0.0.1: a test that asks for one is a `service` test,
#: whatever its file says, so `make check` (-m "not service") never starts one.
SERVER_FIXTURES = frozenset({"start_server"})


@pytest.hookimpl(tryfirst=True)  # before pytest's own hook deselects by -m
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if SERVER_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.service)
    rank = {path: n for n, path in enumerate(LONGEST_FIRST)}

    def place(item: pytest.Item) -> int:
        return rank.get(item.path.relative_to(config.rootpath).as_posix(), len(rank))

    items.sort(key=place)  # stable: the rest keep their order, each file's tests together


@pytest.fixture(scope="session")
def ra_spec():
    from cohortlm.cohort.study import load_study

    return load_study("ra_iorra")


@pytest.fixture(scope="session")
def small_raw(tmp_path_factory) -> Path:
    """Raw tables of a 600-patient synthetic registry."""
    from cohortlm.cohort.synthetic import generate_cohort

    out = tmp_path_factory.mktemp("raw")
    generate_cohort(n=600, seed=0).write(out)
    return out


@pytest.fixture(scope="session")
def small_cohort(small_raw, ra_spec):
    """The featurised 600-patient cohort (one row per eligible patient)."""
    from cohortlm.cohort.featurise import featurise

    return featurise(small_raw, ra_spec).table


@pytest.fixture(scope="session")
def baseline_bundle(tmp_path_factory, small_cohort, ra_spec) -> Path:
    """A baseline bundle (logistic regression per endpoint) trained on the small cohort."""
    from cohortlm.models.baseline import train_baseline

    out = tmp_path_factory.mktemp("bundles") / "baseline"
    train_baseline(small_cohort, ra_spec).save(out)
    return out


@pytest.fixture(scope="session")
def second_bundle(tmp_path_factory, small_cohort, ra_spec) -> Path:
    """Another baseline bundle (other training rows, so another version)."""
    from cohortlm.models.baseline import train_baseline

    out = tmp_path_factory.mktemp("bundles") / "baseline2"
    train_baseline(small_cohort.iloc[: len(small_cohort) // 2], ra_spec, class_weight="balanced").save(out)
    return out


@pytest.fixture()
def store(tmp_path) -> Path:
    return tmp_path / "models"


@pytest.fixture()
def promoted(baseline_bundle, store) -> Path:
    """The store's champion pointer after promoting the baseline bundle."""
    from cohortlm.store.registry import promote

    promote(baseline_bundle, store)
    return store / "ra_iorra" / "champion"


@pytest.fixture(scope="session", autouse=True)
def model_cache(tmp_path_factory) -> Iterator[Path]:
    """Models built or converted by the tests go to a temporary cache, never ~/.cache."""
    import os

    old = os.environ.get("COHORTLM_CACHE")
    path = tmp_path_factory.mktemp("cohortlm-cache")
    os.environ["COHORTLM_CACHE"] = str(path)
    yield path
    if old is None:
        os.environ.pop("COHORTLM_CACHE", None)
    else:
        os.environ["COHORTLM_CACHE"] = old


@pytest.fixture
def gateway() -> Iterator[RecordingGateway]:
    """A Pushgateway stand-in on 127.0.0.1 that records every push (tests/steplib.py)."""
    gw = RecordingGateway()
    try:
        yield gw
    finally:
        gw.close()
