"""The Kubeflow Trainer hand-off builds a TrainJob the SDK accepts (no cluster needed)."""

from __future__ import annotations

import json

import pytest
from kubeflow.trainer.backends.kubernetes import utils
from kubeflow.trainer.constants import constants
from kubeflow.trainer.options.kubernetes import Labels, RuntimePatch, _patch_to_dict
from kubeflow.trainer.types import types

from components.trainer import TRAINER_RUNTIME, build_options, build_trainer, trainjob_entry


def _runtime() -> types.Runtime:
    trainer = types.RuntimeTrainer(
        trainer_type=types.TrainerType.CUSTOM_TRAINER, framework="torch", image="pytorch", num_nodes=1
    )
    trainer.set_command(constants.TORCH_COMMAND)  # what the SDK sets for torch runtimes
    return types.Runtime(
        name=TRAINER_RUNTIME, trainer=trainer, kind=types.RuntimeKind.CLUSTER_TRAINING_RUNTIME
    )


def _trainer(gpus: int = 4):
    return build_trainer(
        split_table="/var/cache/cohortlm/trainjobs/split_table.parquet",
        study_yaml="name: ra_iorra\n",
        profile="paper",
        base_model="/var/cache/cohortlm/llama-2-70b",
        bundle_dir="/var/cache/cohortlm/trainjobs/bundle",
        gpus_per_node=gpus,
    )


def test_trainjob_trainer_has_gpus_and_runs_the_recipe():
    cr = utils.get_trainer_cr_from_custom_trainer(_runtime(), _trainer(4)).to_dict()
    assert cr["numNodes"] == 1 if "numNodes" in cr else cr["num_nodes"] == 1
    resources = json.dumps(cr.get("resourcesPerNode") or cr.get("resources_per_node"))
    assert "nvidia.com/gpu" in resources and "4" in resources
    command = " ".join(cr["command"])
    assert "trainjob_entry" in command and "train_llm_step" in command
    assert "pip install" not in command  # the image carries the pinned stack


def test_gpus_must_be_positive():
    with pytest.raises(ValueError, match="gpus_per_node"):
        _trainer(0)


def test_options_mount_the_shared_volume_and_place_on_gpu_nodes():
    options = build_options(
        mount_path="/var/cache/cohortlm",
        node_selector={"nvidia.com/gpu.present": "true"},
        tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
    )
    patch = next(o for o in options if isinstance(o, RuntimePatch))
    data = json.dumps(_patch_to_dict(patch))
    for needle in (
        "cohortlm-model-cache",
        "/var/cache/cohortlm",
        "nvidia.com/gpu.present",
        "RuntimeDefault",
        "ALL",
    ):
        assert needle in data
    assert any(isinstance(o, Labels) for o in options)


def test_entry_does_nothing_on_other_ranks(monkeypatch, tmp_path):
    monkeypatch.setenv("RANK", "1")
    trainjob_entry("missing.parquet", "name: x", "paper", "", str(tmp_path / "b"))
    assert not (tmp_path / "b").exists()
