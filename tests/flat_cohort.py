"""A small non-RA study (heart-failure readmission) and its flat table, made in the test.

Used wherever a test needs "a user's own cohort": one row per patient, its own
spec, no featuriser.
"""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd

HF_STUDY = {
    "name": "hf_readmission",
    "version": 2,
    "id_column": "subject",
    "features": [
        {"name": "age", "type": "numeric", "unit": "years", "min": 18, "max": 110},
        {"name": "sex", "type": "categorical", "categories": ["f", "m"]},
        {
            "name": "ef",
            "type": "integer",
            "unit": "%",
            "min": 5,
            "max": 80,
            "description": "ejection fraction",
        },
        {"name": "diabetes", "type": "binary"},
    ],
    "endpoints": [
        {
            "name": "readmitted",
            "column": "readmissions_1y",
            "operator": ">=",
            "threshold": 1,
            "description": "a readmission within one year",
        },
        {"name": "low_ef_1y", "column": "ef_1y", "operator": "<", "threshold": 40},
    ],
    "split": {"sizes": {"train": 0.6, "validation": 0.2, "test": 0.2}, "seed": 5},
}


def hf_study(*, endpoints: int = 2) -> dict:
    """A fresh copy of the study (first ``endpoints`` endpoints), safe to mutate."""
    study = copy.deepcopy(HF_STUDY)
    study["endpoints"] = study["endpoints"][:endpoints]
    return study


def flat_cohort(n: int = 400, seed: int = 0) -> pd.DataFrame:
    """One row per patient: features, readmissions within a year and ejection fraction at one year."""
    rng = np.random.default_rng(seed)
    ef = rng.integers(15, 70, n)
    return pd.DataFrame(
        {
            "subject": [f"S{i:04d}" for i in range(n)],
            "age": rng.uniform(40, 90, n).round(1),
            "sex": rng.choice(["f", "m"], n),
            "ef": ef,
            "diabetes": rng.integers(0, 2, n),
            "readmissions_1y": rng.poisson(np.exp(-1 + 0.03 * (60 - ef))),
            "ef_1y": np.clip(ef + rng.normal(0, 8, n), 5, 80).round(),
        }
    )
