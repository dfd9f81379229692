"""The Grafana dashboard: shipped for the sidecar, and every PromQL expression in it reads
metrics the code exports and returns data when Prometheus evaluates it on sample series."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import manifest_checks as mc
import pytest
import yaml
from test_alert_rules import exported_metric_names, rule_groups

DASHBOARD = mc.REPO / "manifests" / "base" / "dashboards" / "cohortlm.json"


def _configmap(overlay: str) -> dict:
    return next(
        d
        for d in mc.render(overlay)
        if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "cohortlm-grafana-dashboard"
    )


def expressions() -> list[tuple[str, str]]:
    """(panel title, expr) of every query in the dashboard."""
    dash = json.loads(DASHBOARD.read_text())
    return [(p["title"], t["expr"]) for p in dash["panels"] for t in p.get("targets", [])]


@pytest.mark.parametrize("overlay", mc.OVERLAYS)
def test_dashboard_configmap_is_labelled_for_the_grafana_sidecar(overlay):
    cm = _configmap(overlay)
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    dash = json.loads(cm["data"]["cohortlm.json"])
    assert dash == json.loads(DASHBOARD.read_text())
    assert dash["uid"] == "cohortlm-overview"


def test_dashboard_shows_what_the_issue_asks_for():
    text = " ".join(e for _, e in expressions())
    for needle in (
        "rate(cohortlm_requests_total",
        "histogram_quantile(0.5,",
        "histogram_quantile(0.99,",
        'status=~"5.."',
        "cohortlm_predicted_probability_bucket",
        "cohortlm_run_auc",
        "cohortlm_gate_promoted",
    ):
        assert needle in text, needle


def test_every_expression_reads_exported_metrics():
    recorded = {r["record"] for g in rule_groups() for r in g["rules"] if "record" in r}
    known = exported_metric_names() | recorded
    for title, expr in expressions():
        used = set(re.findall(r"\bcohortlm[a-z0-9_:]*[a-z0-9_]", expr))
        assert used, f"panel {title!r} reads no cohortlm metric"
        assert used <= known, f"panel {title!r} reads {sorted(used - known)}, which no code exports"


# Sample series with the label sets the code produces; 30 minutes at 1m.
_EP = 'endpoint="das28_esr_high", model_version="v1"'
_RUN = 'study="ra_iorra"'
_V1 = 'model_version="v1", protocol="v1"'
_FEATURE = 'feature="age", model_version="v1"'
_SERIES = {
    'cohortlm_requests_total{model_version="v1", status="200"}': "0+100x30",
    'cohortlm_requests_total{model_version="v1", status="400"}': "0+5x30",
    'cohortlm_requests_total{model_version="v1", status="500"}': "0+1x30",
    **{
        f'cohortlm_request_latency_seconds_bucket{{{_V1}, le="{le}"}}': f"0+{n}x30"
        for le, n in (("0.01", 50), ("0.1", 95), ("1", 100), ("+Inf", 100))
    },
    **{
        f'cohortlm_predicted_probability_bucket{{{_EP}, le="{le}"}}': f"0+{n}x30"
        for le, n in (("0.1", 20), ("0.5", 70), ("0.9", 95), ("+Inf", 100))
    },
    f"cohortlm_predicted_probability_sum{{{_EP}}}": "0+35x30",
    f"cohortlm_predicted_probability_count{{{_EP}}}": "0+100x30",
    f'cohortlm_run_auc{{job="cohortlm", {_RUN}, endpoint="das28_esr_high", model="fine_tuned"}}': "0.71x30",
    f'cohortlm_gate_promoted{{job="cohortlm", {_RUN}}}': "1x30",
    f'cohortlm_run_failed{{job="cohortlm-run", {_RUN}}}': "0x30",
    f'cohortlm_run_last_success_timestamp_seconds{{job="cohortlm-run", {_RUN}}}': "60x30",
    f'cohortlm_validation_failures_total{{job="cohortlm-validation", {_RUN}, rule="in_range:age"}}': "0x30",
    **{
        f'cohortlm_monitor_{name}{{job="cohortlm-monitor", {_RUN}, {_EP}}}': f"{value}x30"
        for name, value in (
            ("auc", 0.7),
            ("auc_ci_low", 0.65),
            ("auc_ci_high", 0.75),
            ("gate_auc", 0.78),
            ("citl", -0.3),
            ("calibration_slope", 0.9),
            ("oe_ratio", 0.8),
            ("expected_auc", 0.76),
            ("degraded", 1),
        )
    },
    f'cohortlm_monitor_feature_psi{{job="cohortlm-monitor", {_RUN}, {_FEATURE}}}': "0.4x30",
    f'cohortlm_monitor_feature_drifted{{job="cohortlm-monitor", {_RUN}, {_FEATURE}}}': "1x30",
    'cohortlm_prediction_log_dropped_total{reason="queue_full"}': "0+1x30",
}


@pytest.mark.slow
def test_prometheus_evaluates_every_expression_to_data(tmp_path):
    """Each query becomes a recording rule; an alert on its absence must stay quiet (promtool)."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is missing (Debian package prometheus): run `bash scripts/install-services.sh`")
    rules, checks = [], []
    for i, (_title, expr) in enumerate(expressions()):
        rules.append({"record": f"dashboard:panel_{i}", "expr": expr})
        rules.append({"alert": f"DashboardQueryEmpty{i}", "expr": f"absent(dashboard:panel_{i})"})
        checks.append({"eval_time": "30m", "alertname": f"DashboardQueryEmpty{i}", "exp_alerts": []})
    groups = [*rule_groups(), {"name": "dashboard", "rules": rules}]
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": groups}))
    tests = {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [{"series": s, "values": v} for s, v in _SERIES.items()],
                "alert_rule_test": checks,
            }
        ],
    }
    (tmp_path / "dashboard.test.yaml").write_text(yaml.safe_dump(tests))
    proc = subprocess.run(
        [promtool, "test", "rules", "dashboard.test.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
