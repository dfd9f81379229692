"""The PodMonitor scrapes the predictor, and the PrometheusRule alerts on the metric names
the serving and pipeline code expose (the contract in serving/ and components/)."""

from __future__ import annotations

import re
import shutil
import subprocess

import manifest_checks as mc
import pytest
import yaml

SERVING_METRICS = {
    "cohortlm_request_latency_seconds_bucket",
    "cohortlm_requests_total",
    "cohortlm_predicted_probability_sum",
    "cohortlm_predicted_probability_count",
}
#: pushed by `cohortlm monitor` (serving/monitor.py) and the prediction log's drop counter
MONITOR_METRICS = {
    "cohortlm_monitor_auc_drop_significant",
    "cohortlm_monitor_calibration_off",
    "cohortlm_monitor_feature_psi",
    "cohortlm_monitor_feature_drifted",
    "cohortlm_monitor_last_run_timestamp_seconds",
    "cohortlm_prediction_log_dropped_total",
}
PIPELINE_METRICS = {
    "cohortlm_gate_promoted",
    "cohortlm_validation_failures_total",
    "cohortlm_run_last_success_timestamp_seconds",
    "cohortlm_run_failed",
}


def _rule_resource():
    return next(d for d in mc.render("gpu-cluster") if d["kind"] == "PrometheusRule")


def test_alerts_cover_errors_latency_drift_gate_and_validation():
    rules = [r for g in _rule_resource()["spec"]["groups"] for r in g["rules"]]
    alerts = {r["alert"]: r for r in rules if "alert" in r}
    for name in (
        "CohortlmHighErrorRate",
        "CohortlmHighLatencyP95",
        "CohortlmPredictionDrift",
        "CohortlmGateRejectedCandidate",
        "CohortlmDataValidationFailed",
    ):
        assert name in alerts
        assert alerts[name]["labels"]["severity"] in {"critical", "warning", "info"}
        assert alerts[name]["annotations"]["summary"]
    exprs = " ".join(str(r["expr"]) for r in rules)
    used = set(re.findall(r"\bcohortlm_[a-z_]+", exprs))
    assert used >= SERVING_METRICS | PIPELINE_METRICS
    assert used >= MONITOR_METRICS
    assert used <= SERVING_METRICS | PIPELINE_METRICS | MONITOR_METRICS | {"cohortlm_run_auc"}, used
    assert "offset 7d" in alerts["CohortlmPredictionDrift"]["expr"]


def test_pod_monitor_selects_the_predictor():
    monitor = next(d for d in mc.render("gpu-cluster") if d["kind"] == "PodMonitor")
    assert monitor["spec"]["selector"]["matchLabels"]["serving.kserve.io/inferenceservice"] == "cohortlm-ra"
    assert monitor["spec"]["podMetricsEndpoints"][0]["path"] == "/metrics"


@pytest.mark.skipif(
    shutil.which("promtool") is None, reason="promtool (Debian package prometheus) not installed"
)
def test_promtool_accepts_the_rules(tmp_path):
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text(yaml.safe_dump({"groups": _rule_resource()["spec"]["groups"]}))
    proc = subprocess.run(["promtool", "check", "rules", str(rules_file)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
