"""Pipeline run metrics (cohortlm.run.metrics): names, values, label safety, push behaviour."""

from __future__ import annotations

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from cohortlm.errors import UsageError
from cohortlm.run.metrics import MetricsPushError, build_run_registry, push_run_metrics

AUCS = {"logistic_regression": {"das28_esr_high": 0.71}, "SmolLM2-135M+lora": {"das28_esr_high": 0.74}}


def _samples(registry):
    text = generate_latest(registry).decode()
    return [s for fam in text_string_to_metric_families(text) for s in fam.samples]


def test_names_and_values():
    registry = build_run_registry(
        run_id="run-20260101-abc",
        aucs=AUCS,
        decision_promoted=True,
        tokens_per_second=812.5,
        validation_failures={"das28_esr_consistent": 3, "cdai_consistent": 0},
        finished_at=1_700_000_000.0,
    )
    got = {(s.name, tuple(sorted(s.labels.items()))): s.value for s in _samples(registry)}
    assert (
        got[("cohortlm_run_auc", (("endpoint", "das28_esr_high"), ("model", "logistic_regression")))] == 0.71
    )
    assert got[("cohortlm_gate_promoted", ())] == 1.0
    assert got[("cohortlm_validation_failures_total", (("rule", "das28_esr_consistent"),))] == 3
    assert got[("cohortlm_training_tokens_per_second", ())] == 812.5
    assert got[("cohortlm_run_last_success_timestamp_seconds", ())] == 1_700_000_000.0
    assert got[("cohortlm_run_info", (("run_id", "run-20260101-abc"),))] == 1.0


def test_tokens_per_second_absent_when_no_llm():
    registry = build_run_registry(
        run_id="r1", aucs={}, decision_promoted=False, tokens_per_second=None, validation_failures={}
    )
    names = {s.name for s in _samples(registry)}
    assert "cohortlm_training_tokens_per_second" not in names
    assert "cohortlm_gate_promoted" in names


@pytest.mark.parametrize(
    "kwargs",
    [
        {"aucs": {"lr": {"P000123 age=61": 0.7}}},
        {"validation_failures": {"patient P000123": 1}},
        {"run_id": "x" * 200},
        {"aucs": {"lr": {"das28_esr_high": 1.7}}},
    ],
)
def test_labels_must_be_identifiers(kwargs):
    base = dict(run_id="r1", aucs={}, decision_promoted=False, tokens_per_second=None, validation_failures={})
    with pytest.raises(UsageError):
        build_run_registry(**{**base, **kwargs})


#: a run's metrics without a fine-tune or validation failures
RUN = dict(run_id="r1", study="ra_iorra", aucs=AUCS, decision_promoted=False, tokens_per_second=None)


def test_no_gateway_configured_pushes_nothing():
    assert push_run_metrics(None, **RUN, validation_failures={}) is False


def test_unreachable_gateway_is_a_clear_error():
    from serving_testlib import free_port

    with pytest.raises(MetricsPushError, match="could not push run metrics"):
        push_run_metrics(f"127.0.0.1:{free_port()}", **RUN, validation_failures={}, timeout=2)
