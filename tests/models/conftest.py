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


@pytest.fixture(scope="session")
def tiny_base(frac_spec, model_cache):
    """The tiny random Llama for the RA words, as an HF folder."""
    from cohortlm.models.llm.tiny import tiny_model_folder

    return tiny_model_folder(frac_spec)
