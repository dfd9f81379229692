"""Every alert can fire and stays quiet when healthy (promtool unit tests), links a runbook,
and reads only metric names the code exports."""

from __future__ import annotations

import re
import shutil
import subprocess

import manifest_checks as mc
import pytest
import yaml

PROMTOOL_TESTS = mc.REPO / "tests" / "manifests" / "promtool" / "alerts.test.yaml"
#: every promtool test file (alerts.test.yaml, and monitor.test.yaml for the monitor's alerts)
PROMTOOL_FILES = sorted(PROMTOOL_TESTS.parent.glob("*.test.yaml"))
RUNBOOK = mc.REPO / "docs" / "runbook.md"
RUNBOOK_URL = "https://github.com/cohortlm/cohortlm/blob/main/docs/runbook.md#"


def rule_groups() -> list[dict]:
    rule = next(d for d in mc.render("gpu-cluster") if d["kind"] == "PrometheusRule")
    return rule["spec"]["groups"]


def alerts() -> dict[str, dict]:
    return {r["alert"]: r for g in rule_groups() for r in g["rules"] if "alert" in r}


def exported_metric_names() -> set[str]:
    """Sample names the serving and pipeline code export, from their real registries."""
    from prometheus_client import REGISTRY

    import serving.metrics  # noqa: F401  (registers the server's metrics on the default registry)
    from cohortlm.run.metrics import build_outcome_registry, build_run_registry, build_validation_registry
    from serving.monitor import build_monitor_registry

    registries = [
        REGISTRY,
        build_run_registry(
            run_id="r1",
            aucs={"baseline": {"e": 0.7}},
            decision_promoted=True,
            tokens_per_second=1.0,
            validation_failures={"rule": 1},
        ),
        build_validation_registry(run_id="r1", failures={"rule": 1}),
        build_outcome_registry(run_id="r1", succeeded=True),
        build_monitor_registry({"model_version": "0f329037e60c"}),
    ]
    # From the families, not the samples: a labelled metric has no sample before its first use.
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
    names = {
        m.name + suffix for r in registries for m in r.collect() for suffix in suffixes.get(m.type, ("",))
    }
    return {n for n in names if n.startswith("cohortlm_")}


def test_every_alert_has_a_runbook_url_into_docs():
    headings = {m.group(1).lower() for m in re.finditer(r"^## (\S+)\s*$", RUNBOOK.read_text(), re.M)}
    for name, rule in alerts().items():
        url = rule["annotations"].get("runbook_url", "")
        assert url == RUNBOOK_URL + name.lower(), f"{name}: runbook_url {url!r}"
        assert name.lower() in headings, f"docs/runbook.md has no section '## {name}'"
        assert "runbook" not in rule["annotations"], f"{name}: use runbook_url, not runbook"


def test_every_alert_has_a_firing_and_a_quiet_case():
    cases = [c for f in PROMTOOL_FILES for c in yaml.safe_load(f.read_text())["tests"]]
    fires: set[str] = set()
    quiet: set[str] = set()
    for case in cases:
        for check in case["alert_rule_test"]:
            (fires if check["exp_alerts"] else quiet).add(check["alertname"])
    names = set(alerts())
    assert names - fires == set(), f"alerts with no firing case in {PROMTOOL_TESTS.name}"
    assert names - quiet == set(), f"alerts with no quiet case in {PROMTOOL_TESTS.name}"


def test_rules_read_only_metrics_the_code_exports():
    exprs = " ".join(str(r["expr"]) for g in rule_groups() for r in g["rules"])
    used = set(re.findall(r"\bcohortlm_[a-z_]+\b", exprs))
    unknown = used - exported_metric_names()
    assert not unknown, f"the rules read metrics no code exports: {sorted(unknown)}"
    # Every pipeline outcome the issue names has an alert that reads it.
    assert {
        "cohortlm_validation_failures_total",
        "cohortlm_run_failed",
        "cohortlm_run_last_success_timestamp_seconds",
        "cohortlm_gate_promoted",
    } <= used


@pytest.mark.slow
def test_promtool_unit_tests_fire_and_stay_quiet(tmp_path):
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is missing (Debian package prometheus): run `bash scripts/install-services.sh`")
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": rule_groups()}))
    for f in PROMTOOL_FILES:
        shutil.copy(f, tmp_path / f.name)
    proc = subprocess.run(
        [promtool, "test", "rules", *(f.name for f in PROMTOOL_FILES)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    assert "SUCCESS" in proc.stdout
