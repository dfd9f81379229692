"""The compiled IR: GPU node pool on the training task, caching, retries and resources everywhere."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml


@pytest.fixture(scope="module")
def ir(tmp_path_factory) -> tuple[dict, dict]:
    out = tmp_path_factory.mktemp("ir") / "pipeline.yaml"
    exe = Path(sys.executable).with_name("cohortlm")
    res = subprocess.run(
        [str(exe), "compile", "--out", str(out)], capture_output=True, text=True, timeout=300
    )
    assert res.returncode == 0, res.stderr
    spec, platform = list(yaml.safe_load_all(out.read_text()))
    return spec, platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]


def _all_tasks(spec: dict) -> dict:
    """Tasks of the root DAG and of every sub-DAG (the exit handler's body, the conditions)."""
    tasks = dict(spec["root"]["dag"]["tasks"])
    for comp in spec["components"].values():
        tasks.update(comp.get("dag", {}).get("tasks", {}))
    return tasks


def test_training_task_requests_a_gpu_from_parameters(ir):
    spec, _ = ir
    res = spec["deploymentSpec"]["executors"]["exec-train-qlora"]["container"]["resources"]
    assert "gpu_type" in res["accelerator"]["resourceType"]
    assert "gpu_count" in res["accelerator"]["resourceCount"]
    params = spec["root"]["inputDefinitions"]["parameters"]
    assert params["gpu_type"]["defaultValue"] == "nvidia.com/gpu"
    assert params["gpu_count"]["defaultValue"] == 1


def test_training_task_node_selector_toleration_shm_and_cache(ir):
    _, executors = ir
    qlora = executors["exec-train-qlora"]
    # Inside the exit handler's DAG the parameters arrive as pipeline channels.
    selector = qlora["nodeSelector"]["nodeSelectorJson"]["componentInputParameter"]
    toleration = qlora["tolerations"][0]["tolerationJson"]["componentInputParameter"]
    assert selector.removeprefix("pipelinechannel--") == "gpu_node_selector"
    assert toleration.removeprefix("pipelinechannel--") == "gpu_tolerations"
    shm = qlora["emptyDirMounts"][0]
    assert shm["mountPath"] == "/dev/shm" and shm["medium"] == "Memory"
    assert any(m["mountPath"] == "/var/cache/cohortlm" for m in qlora["pvcMount"])


def test_only_the_training_task_asks_for_a_gpu(ir):
    spec, executors = ir
    for name, ex in spec["deploymentSpec"]["executors"].items():
        if "importer" in ex:  # the raw-cohort importer runs in the KFP driver: no pod of its own
            continue
        if name != "exec-train-qlora":
            assert "accelerator" not in ex["container"].get("resources", {}), name
            assert "nodeSelector" not in executors.get(name, {}), name


def test_every_task_has_resources_and_caching_settings(ir):
    spec, _ = ir
    importers = [name for name, ex in spec["deploymentSpec"]["executors"].items() if "importer" in ex]
    assert importers == ["exec-importer"]  # the raw cohort; every other executor is a container
    for name, ex in spec["deploymentSpec"]["executors"].items():
        if name in importers:
            continue
        res = ex["container"]["resources"]
        for key in ("resourceCpuRequest", "resourceCpuLimit", "resourceMemoryRequest", "resourceMemoryLimit"):
            assert key in res, (name, key)
    tasks = dict(spec["root"]["dag"]["tasks"])
    for comp in spec["components"].values():
        tasks.update(comp.get("dag", {}).get("tasks", {}))
    assert len(tasks) >= 12
    for name, task in tasks.items():
        if "componentRef" in task and not name.startswith(("condition", "exit-handler", "for-loop")):
            assert "cachingOptions" in task, name
    assert tasks["train-qlora"]["cachingOptions"]["enableCache"] is True
    assert tasks["evaluate-gate"]["cachingOptions"].get("enableCache", False) is False


@pytest.mark.parametrize("task", ["train-qlora", "score-zero-shot", "score-fine-tuned"])
def test_training_and_scoring_retry(ir, task):
    spec, _ = ir
    policy = _all_tasks(spec)[task]["retryPolicy"]
    assert policy["maxRetryCount"] == 2
    assert policy["backoffDuration"] == "60s"


def test_promotion_is_conditional_on_the_gate(ir):
    spec, _ = ir
    conditions = [
        t["triggerPolicy"].get("condition", "") for t in _all_tasks(spec).values() if "triggerPolicy" in t
    ]
    assert any("candidate" in c for c in conditions)
    assert any("baseline" in c for c in conditions)
