"""checkov over the rendered manifests of each overlay: zero failed checks, and every
skip is an annotation on the resource that carries its reason.

checkov lives in its own virtual environment (.venv-checkov, made by
scripts/install-checkov.sh on first use) because its pins clash with the project's.
"""

from __future__ import annotations

import json
import os
import subprocess

import manifest_checks as mc
import pytest

CHECKOV = mc.REPO / ".venv-checkov" / "bin" / "checkov"
MIN_REASON_CHARS = 40


@pytest.fixture(scope="module")
def checkov() -> str:
    installer = mc.REPO / "scripts" / "install-checkov.sh"
    subprocess.run(["bash", str(installer)], check=True, timeout=600, capture_output=True)
    return str(CHECKOV)


def run_checkov(checkov: str, overlay: str, tmp_path) -> dict:
    rendered = tmp_path / f"{overlay}.yaml"
    rendered.write_text(mc.render_text(overlay))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BC_", "PRISMA_"))}
    proc = subprocess.run(
        [checkov, "-f", str(rendered), "--framework", "kubernetes", "--skip-download", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )
    # checkov exits 1 when a check fails; anything else without JSON is a crash.
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError as err:
        raise AssertionError(
            f"checkov printed no JSON (exit {proc.returncode}):\n{proc.stderr[-2000:]}"
        ) from err
    return report


@pytest.mark.slow
@pytest.mark.parametrize("overlay", mc.OVERLAYS)
def test_checkov_has_no_failures(checkov, overlay, tmp_path):
    report = run_checkov(checkov, overlay, tmp_path)
    summary = report["summary"]
    failed = [
        f"{c['check_id']} {c['check_name']} on {c['resource']}" for c in report["results"]["failed_checks"]
    ]
    assert summary["failed"] == 0, "\n".join(failed)
    assert summary["passed"] > 150, summary
    for skipped in report["results"]["skipped_checks"]:
        reason = skipped.get("check_result", {}).get("suppress_comment", "")
        assert len(reason) >= MIN_REASON_CHARS, f"{skipped['check_id']} on {skipped['resource']}: no reason"


def test_every_skip_annotation_states_its_reason():
    for overlay in mc.OVERLAYS:
        for doc in mc.render(overlay):
            for key, value in (doc["metadata"].get("annotations") or {}).items():
                if key.startswith("checkov.io/skip"):
                    check_id, _, reason = value.partition("=")
                    assert check_id.startswith("CKV"), f"{mc.resource_name(doc)}: {value}"
                    assert len(reason) >= MIN_REASON_CHARS, f"{mc.resource_name(doc)}: skip without reason"
