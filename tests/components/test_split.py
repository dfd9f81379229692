"""The ``split`` component (``components/split/component.py``) on real kfp.dsl artifacts."""

from __future__ import annotations

import pytest
from kfp.dsl import Dataset

from cohortlm.errors import SpecError
from components.split.component import split


def test_split_counts_and_override(chain, tmp_path):
    assert {k: chain.split_table.metadata[k] for k in ("train", "validation", "test")} == {
        "train": 180, "validation": 60, "test": 60,
    }  # fmt: skip
    out = Dataset(uri=str(tmp_path / "s.parquet"))
    split.python_func(
        table=chain.cohort,
        study=chain.study,
        split_override={"train": 0.5, "validation": 0.25, "test": 0.25},
        split_table=out,
    )
    assert {k: out.metadata[k] for k in ("train", "validation", "test")} == {
        "train": 150,
        "validation": 75,
        "test": 75,
    }
    with pytest.raises(SpecError, match="split_override"):
        split.python_func(
            table=chain.cohort,
            study=chain.study,
            split_override={"train": 2.0},
            split_table=Dataset(uri=str(tmp_path / "t.parquet")),
        )
