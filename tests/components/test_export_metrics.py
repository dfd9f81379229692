"""The ``export_metrics`` component (``components/export_metrics/component.py``) on real kfp.dsl artifacts."""

from __future__ import annotations

import pytest

from components.export_metrics.component import export_metrics


def test_export_metrics(first_gate, gateway):
    assert (
        export_metrics.python_func(decision=first_gate.decision, pushgateway="", run_id="", job_id="j")
        == "skipped"
    )
    assert (
        export_metrics.python_func(
            decision=first_gate.decision, pushgateway=gateway.url, run_id="", job_id="job-3"
        )
        == "pushed"
    )
    push = gateway.only()
    assert push.path == "/metrics/job/cohortlm/study/hf_readmission"
    assert push.value("cohortlm_run_info", run_id="job-3") == 1
    assert push.value("cohortlm_gate_promoted") == 0
    assert push.value("cohortlm_run_auc", model="baseline", endpoint="readmitted") == pytest.approx(
        first_gate.outcome.aucs()["baseline"]["readmitted"]
    )
