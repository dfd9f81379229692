"""Fixtures for the model tests: a small split cohort and a spec with fractional split sizes."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def frac_spec(ra_spec):
    """The RA study with split sizes as fractions, so that any cohort size splits."""
    from cohortlm.cohort.study import study_from_dict

    data = ra_spec.to_dict()
    data["split"] = {"sizes": {"train": 0.6, "validation": 0.1, "test": 0.3}, "seed": 0}
    return study_from_dict(data)


@pytest.fixture(scope="session")
def split_cohort(small_cohort, frac_spec):
    """The 600-patient featurised cohort with a ``split`` column."""
    from cohortlm.cohort.split import split_table

    return split_table(small_cohort, frac_spec)


@pytest.fixture(scope="session", autouse=True)
def model_cache(tmp_path_factory):
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


@pytest.fixture(scope="session")
def tiny_base(frac_spec, model_cache):
    """The tiny random Llama for the RA words, as an HF folder."""
    from cohortlm.models.llm.tiny import tiny_model_folder

    return tiny_model_folder(frac_spec)
