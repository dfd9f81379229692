"""The ``train_baseline`` component (``components/train_baseline/component.py``) on real kfp.dsl artifacts."""

from __future__ import annotations

from pathlib import Path

import pandas as pd


def test_train_baseline_metadata(chain):
    assert {k: chain.bundle.metadata[k] for k in ("kind", "model", "n_train")} == {
        "kind": "baseline",
        "model": "baseline",
        "n_train": 180,
    }
    assert chain.bundle.metadata["seconds"] >= 0
    assert chain.scores.metadata == {"model": "baseline"}
    assert (Path(chain.bundle.path) / "bundle.json").is_file()
    assert len(pd.read_parquet(chain.scores.path)) == 300
