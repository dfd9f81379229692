"""The ``feature_store`` component (``components/feature_store/component.py``) on real kfp.dsl artifacts."""

from __future__ import annotations

import pandas as pd
import pytest
from kfp.dsl import Dataset

from components.feature_store.component import feature_store


@pytest.mark.slow
def test_feature_store_reads_the_training_table_back(chain, tmp_path):
    out = Dataset(uri=str(tmp_path / "t.parquet"))
    feature_store.python_func(
        cohort=chain.cohort, study=chain.study, feature_repo=str(tmp_path / "repo"), training_table=out
    )
    assert out.metadata["rows"] == 300 and out.metadata["missing_feature_rows"] == 0
    assert out.metadata["feature_repo"] == str(tmp_path / "repo") and out.metadata["seconds"] >= 0
    got = pd.read_parquet(out.path).set_index("subject").sort_index()
    want = pd.read_parquet(chain.cohort.path).set_index("subject").sort_index()
    pd.testing.assert_frame_equal(got[want.columns], want, check_dtype=False)
