"""The ``featurise`` component (``components/featurise/component.py``) on real kfp.dsl artifacts."""

from __future__ import annotations

import pandas as pd


def test_featurise_records_counts_on_the_cohort(chain):
    meta = chain.cohort.metadata
    assert meta["n_input"] == meta["n_included"] == 300 and meta["seconds"] >= 0
    assert len(pd.read_parquet(chain.cohort.path)) == 300
