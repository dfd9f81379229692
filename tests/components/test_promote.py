"""The ``promote`` component (``components/promote/component.py``) on real kfp.dsl artifacts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from componentlib import promote_winner
from kfp.dsl import Model

from components.promote.component import promote


def test_promote_the_first_champion(first_gate, tmp_path):
    from cohortlm.store.registry import champion, champion_version

    store = tmp_path / "models"
    version, promoted = promote_winner(first_gate, store, tmp_path)
    assert champion_version(store, "hf_readmission") == version
    record = json.loads(Path(promoted.path).read_text())
    assert {k: record[k] for k in ("model_version", "study", "signed", "model", "promote", "candidate")} == {
        "model_version": version, "study": "hf_readmission", "signed": False, "model": "baseline",
        "promote": False, "candidate": "tiny+qlora",
    }  # fmt: skip
    assert len(record["manifest_sha256"]) == 64 and version in record["storage_uri"]
    assert promoted.metadata["model_version"] == version and "reasons" not in promoted.metadata
    thresholds = json.loads((champion(store, "hf_readmission") / "thresholds.json").read_text())
    assert thresholds == {ep: r["threshold"] for ep, r in first_gate.outcome.serving_thresholds.items()}


def test_promote_refuses_a_bundle_the_gate_did_not_choose(first_gate, tmp_path):
    other = Model(uri=first_gate.winner.uri)
    other.metadata["model"] = "tiny+qlora"
    with pytest.raises(ValueError, match="the bundle to promote is tiny\\+qlora, the gate promoted baseline"):
        promote.python_func(
            bundle=other, decision=first_gate.decision, model_store=str(tmp_path / "m"), isvc_namespace="",
            signing_key_file="", promoted=Model(uri=str(tmp_path / "p.json")),
        )  # fmt: skip
    (tmp_path / "key.pem").write_text("REPLACE_ME with the signing key\n")
    with pytest.raises(ValueError, match="placeholder"):
        promote.python_func(
            bundle=first_gate.winner, decision=first_gate.decision, model_store=str(tmp_path / "m"),
            isvc_namespace="", signing_key_file=str(tmp_path / "key.pem"),
            promoted=Model(uri=str(tmp_path / "p.json")),
        )  # fmt: skip
    assert not (tmp_path / "m").exists()
