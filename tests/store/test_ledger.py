"""The test-split ledger in the model store: every look recorded, counted per split hash."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cohortlm.store import registry


def test_split_hash_depends_on_the_patients_only() -> None:
    assert registry.split_hash(["b", "a", "c"]) == registry.split_hash(["a", "b", "c"])
    assert registry.split_hash(["a", "b"]) != registry.split_hash(["a", "b", "c"])
    assert len(registry.split_hash([1, 2])) == 64


def test_looks_are_counted_per_split(tmp_path: Path) -> None:
    store, study = tmp_path / "store", "ra_iorra"
    h1, h2 = registry.split_hash(["p1", "p2"]), registry.split_hash(["p3"])
    assert registry.next_look(store, study, h1) == 1
    for i in range(3):
        look = registry.next_look(store, study, h1)
        n = registry.record_look(
            store,
            study,
            split=h1,
            candidate=f"m{i}",
            champion="lr",
            promote=False,
            look=look,
            alpha_look=0.01,
        )
        assert n == look == i + 1
    assert registry.next_look(store, study, h1) == 4
    assert registry.next_look(store, study, h2) == 1
    entries = registry.looks(store, study, h1)
    assert [e["candidate"] for e in entries] == ["m0", "m1", "m2"]
    assert set(entries[0]) >= {"split_hash", "look", "candidate", "champion", "promote", "alpha_look", "time"}
    raw = json.loads((store / study / registry.LEDGER_FILE).read_text())
    assert "p1" not in json.dumps(raw)  # no patient id in the ledger


def test_damaged_ledger_is_an_error_that_says_not_to_delete_it(tmp_path: Path) -> None:
    (tmp_path / "ra_iorra").mkdir()
    (tmp_path / "ra_iorra" / registry.LEDGER_FILE).write_text("{")
    with pytest.raises(registry.PromotionError, match="restore it from a backup"):
        registry.next_look(tmp_path, "ra_iorra", "x")
