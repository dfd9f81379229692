"""The ``evaluate_gate`` component (``components/evaluate_gate/component.py``) on real kfp.dsl artifacts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from componentlib import ENDPOINTS, ds, run_gate
from steplib import fake_scores


def test_evaluate_gate_first_run_makes_the_baseline_the_winner(first_gate, chain):
    gate, outcome = first_gate, first_gate.outcome
    assert gate.verdict == "baseline" == outcome.winner
    assert gate.winner.metadata == {"model": "baseline", "verdict": "baseline"}
    assert json.loads((Path(gate.winner.path) / "bundle.json").read_text()) == json.loads(
        (Path(chain.bundle.path) / "bundle.json").read_text()
    )
    meta = gate.decision.metadata
    assert {k: meta[k] for k in ("winner", "promote", "candidate", "champion", "promoted_model")} == {
        "winner": "baseline", "promote": False, "candidate": "tiny+qlora", "champion": "baseline",
        "promoted_model": "baseline",
    }  # fmt: skip
    assert meta["seconds"] > 0
    assert gate.metrics.metadata["promote"] == 0.0
    for ep in outcome.decision.endpoints:
        assert gate.metrics.metadata[f"{ep.endpoint}.auc_candidate"] == pytest.approx(ep.auc_candidate)
    curve = outcome.roc_of("tiny+qlora", ENDPOINTS[0])
    assert [p["recall"] for p in gate.roc.metadata["confidenceMetrics"]] == list(curve.tpr)
    page = Path(gate.report.path).read_text()
    assert page.lstrip().lower().startswith("<!doctype html")
    # The page is complete when the gate writes it: the run, its profile and the validation summary.
    assert "run run-7" in page and "mean nothing" in page and "expectations met on 300 rows" in page
    assert "readmitted" in Path(gate.table1.path).read_text()


def test_evaluate_gate_refuses_a_repeated_model_name(chain, tmp_path):
    ft = fake_scores(Path(chain.split_table.path), chain.study_spec, tmp_path / "ft.parquet", quality="noise")
    with pytest.raises(ValueError, match="repeated model name 'tiny'"):
        run_gate(chain, tmp_path, fine_tuned=ds(ft, model="tiny"))
    with pytest.raises(ValueError, match="missing or repeated model name ''"):
        run_gate(chain, tmp_path, fine_tuned=ds(ft))
