"""The ``endpoint_metrics`` component (``components/endpoint_metrics/component.py``)
on real kfp.dsl artifacts.
"""

from __future__ import annotations

from componentlib import ENDPOINTS
from kfp.dsl import ClassificationMetrics

from components.endpoint_metrics.component import endpoint_metrics, gate_endpoints


def test_gate_endpoints_and_endpoint_metrics(first_gate, tmp_path):
    outcome = first_gate.outcome
    endpoints = gate_endpoints.python_func(decision=first_gate.decision)
    assert endpoints == ENDPOINTS
    for ep in endpoints:
        slots = {
            n: ClassificationMetrics(uri=str(tmp_path / f"{ep}-{n}"))
            for n in ("cand", "base", "champ", "conf")
        }
        endpoint_metrics.python_func(
            decision=first_gate.decision, endpoint=ep, roc_candidate=slots["cand"],
            roc_baseline=slots["base"], roc_champion=slots["champ"], confusion=slots["conf"],
        )  # fmt: skip
        for slot, model in (("cand", "tiny+qlora"), ("base", "baseline")):
            meta = slots[slot].metadata
            point = outcome.points[model][ep]
            assert {k: meta[k] for k in ("endpoint", "model", "split", "n", "n_cases")} == {
                "endpoint": ep, "model": model, "split": "test", "n": point["n"], "n_cases": point["n_cases"],
            }  # fmt: skip
            fpr = [p["falsePositiveRate"] for p in meta["confidenceMetrics"]]
            assert fpr == list(outcome.roc_of(model, ep).fpr)
        # A first run has no champion: its slot is empty.
        assert slots["champ"].metadata == {"endpoint": ep, "model": "none", "split": "test"}
        conf = slots["conf"].metadata
        point = outcome.points["tiny+qlora"][ep]
        rows = [r["row"] for r in conf["confusionMatrix"]["rows"]]
        assert rows == [[point["tn"], point["fp"]], [point["fn"], point["tp"]]]
        assert sum(map(sum, rows)) == point["n"] and point["tp"] + point["fn"] == point["n_cases"]
        assert conf["threshold"] == point["threshold"] and conf["threshold_source"] == "validation"
