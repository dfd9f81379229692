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
    # One branch: the gate's verdict is not "none"; the gate's `winner` output is what it promotes.
    assert any("!= 'none'" in c for c in conditions), conditions
    promote = _all_tasks(spec)["promote"]
    bundle = promote["inputs"]["artifacts"]["bundle"]
    assert bundle["componentInputArtifact"].endswith("evaluate-gate-winner")


def _loop_holding(spec: dict, task: str) -> dict:
    """The for-loop task whose DAG holds ``task``."""
    tasks = _all_tasks(spec)
    for t in tasks.values():
        comp = spec["components"].get(t.get("componentRef", {}).get("name", ""), {})
        if "parameterIterator" in t and task in comp.get("dag", {}).get("tasks", {}):
            return t
    raise AssertionError(f"no loop holds {task}")


def test_each_base_model_is_scored_and_fine_tuned_in_its_own_loop_iteration(ir):
    spec, _ = ir
    loop = _loop_holding(spec, "train-qlora")
    for task in ("score-zero-shot", "score-fine-tuned"):
        assert _loop_holding(spec, task) is loop
    items = loop["parameterIterator"]["items"]["inputParameter"]
    assert items.removeprefix("pipelinechannel--") == "base_models"
    # The gate and the metrics export collect every iteration's outputs.
    gate = _all_tasks(spec)["evaluate-gate"]["inputs"]["artifacts"]
    for name in ("zero_shot_scores", "fine_tuned_scores", "llm_bundles"):
        assert "taskOutputArtifact" in gate[name], name
    assert spec["root"]["inputDefinitions"]["parameters"]["base_models"]["defaultValue"] == [""]


def test_compile_with_two_bases_shows_one_fine_tune_per_base_on_the_gpu_pool(tmp_path):
    out = tmp_path / "two.yaml"
    exe = Path(sys.executable).with_name("cohortlm")
    res = subprocess.run(
        [str(exe), "compile", "--out", str(out), "--base-model", "llama2-70b=/models/Llama-2-70b-hf",
         "--base-model", "meditron-70b=/models/meditron-70b"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    spec = next(yaml.safe_load_all(out.read_text()))
    assert spec["root"]["inputDefinitions"]["parameters"]["base_models"]["defaultValue"] == [
        "llama2-70b=/models/Llama-2-70b-hf",
        "meditron-70b=/models/meditron-70b",
    ]
    plan = [ln for ln in res.stderr.splitlines() if ln.startswith("fine-tune ")]
    assert len(plan) == 2
    assert plan[0].startswith("fine-tune llama2-70b+qlora: task train-qlora, 1 x nvidia.com/gpu")
    assert plan[1].startswith("fine-tune meditron-70b+qlora:")
    assert all("node pool nvidia.com/gpu.present=true" in ln and "GPU taint" in ln for ln in plan)
    # No parallelism limit: on a cluster the bases fine-tune side by side.
    loop = _loop_holding(spec, "train-qlora")
    assert not loop.get("iteratorPolicy", {}).get("parallelismLimit")


def test_compile_refuses_two_bases_with_one_name(tmp_path):
    exe = Path(sys.executable).with_name("cohortlm")
    res = subprocess.run(
        [str(exe), "compile", "--out", str(tmp_path / "x.yaml"),
         "--base-model", "a=/m/1", "--base-model", "a=/m/2"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert res.returncode == 2
    assert "two base models are named 'a'" in res.stderr
    assert not (tmp_path / "x.yaml").exists()


def test_set_reaches_the_compiled_pipelines_recipe_parameter(tmp_path):
    """`compile --set` makes the resolved recipe the recipe parameter's default, wired to every LLM step."""
    import json

    out = tmp_path / "recipe.yaml"
    exe = Path(sys.executable).with_name("cohortlm")
    res = subprocess.run(
        [str(exe), "compile", "--out", str(out), "--profile", "quick",
         "--set", "qlora.learning_rate=2e-4", "--set", "qlora.lora_layers=4", "--set", "eval_rows=1000"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    spec = next(yaml.safe_load_all(out.read_text()))
    params = spec["root"]["inputDefinitions"]["parameters"]
    assert params["recipe"]["parameterType"] == "STRING" and params["profile"]["defaultValue"] == "quick"
    recipe = json.loads(params["recipe"]["defaultValue"])
    assert recipe["qlora"]["learning_rate"] == 2e-4 and recipe["qlora"]["lora_layers"] == 4
    assert recipe["eval_rows"] == 1000 and recipe["qlora"]["epochs"] == 3.0  # the rest is quick's
    tasks = _all_tasks(spec)
    for task in ("score-zero-shot", "train-qlora", "score-fine-tuned", "evaluate-gate"):
        given = tasks[task]["inputs"]["parameters"]["recipe"]
        assert "recipe" in json.dumps(given), task  # the pipeline parameter, not a constant


def test_compile_refuses_a_bad_override_naming_it(tmp_path):
    exe = Path(sys.executable).with_name("cohortlm")
    res = subprocess.run(
        [str(exe), "compile", "--out", str(tmp_path / "x.yaml"), "--set", "qlora.lora_rank=8"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert res.returncode == 2
    assert "--set qlora.lora_rank: unknown key" in res.stderr and "lora_r" in res.stderr
    assert not (tmp_path / "x.yaml").exists()


@pytest.mark.slow  # three compiles in three processes
def test_the_compiled_file_is_the_same_bytes_on_every_compile(tmp_path):
    """kfp writes the header's defaults in protobuf's map order, which changes between processes."""
    exe = Path(sys.executable).with_name("cohortlm")
    texts = []
    for i in range(3):
        out = tmp_path / f"pipeline{i}.yaml"
        res = subprocess.run(
            [str(exe), "compile", "--out", str(out)], capture_output=True, text=True, timeout=300
        )
        assert res.returncode == 0, res.stderr
        texts.append(out.read_text())
    assert texts[0] == texts[1] == texts[2]
    header = [line for line in texts[0].splitlines() if line.startswith("#    gpu_tolerations:")]
    assert header == [
        "#    gpu_tolerations: list [Default: "
        "[{'effect': 'NoSchedule', 'key': 'nvidia.com/gpu', 'operator': 'Exists'}]]"
    ]
