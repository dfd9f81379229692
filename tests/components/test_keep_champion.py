"""The ``keep_champion`` component (``components/keep_champion/component.py``) on real kfp.dsl artifacts."""

from __future__ import annotations

from pathlib import Path

import pytest
from componentlib import ds, run_gate
from steplib import fake_scores

from components.keep_champion.component import keep_champion


def test_keep_champion_names_the_serving_version(chain, tmp_path):
    from cohortlm.store.registry import promote as store_promote

    store = tmp_path / "models"
    version = store_promote(chain.bundle.path, store)
    ft = fake_scores(
        Path(chain.split_table.path), chain.study_spec, tmp_path / "ft.parquet", quality="noise", seed=2
    )
    gate = run_gate(chain, tmp_path / "gate", fine_tuned=ds(ft, model="tiny+qlora"), model_store=str(store))
    assert gate.verdict == "none" and gate.winner.metadata == {"model": "none", "verdict": "none"}
    assert list(Path(gate.winner.path).iterdir()) == []
    assert gate.outcome.champion == f"champion_baseline_{version}"
    assert keep_champion.python_func(decision=gate.decision, model_store=str(store)) == version
    with pytest.raises(ValueError, match=r"study hf_readmission, but .* has none"):
        keep_champion.python_func(decision=gate.decision, model_store=str(tmp_path / "empty"))
