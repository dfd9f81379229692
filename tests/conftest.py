"""Shared fixtures: small synthetic cohorts built in the test, never downloaded."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")


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
