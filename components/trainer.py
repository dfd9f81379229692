"""Hand the fine-tune to Kubeflow Trainer when one GPU (one pod) is not enough.

With ``use_trainer=True`` the pipeline's ``train-qlora`` task does not train
in its own pod: it submits a TrainJob (kubeflow SDK, ``CustomTrainer`` on the
``torch-distributed`` runtime) whose node runs the same recipe
(:func:`cohortlm.run.steps.train_llm_step`) with several GPUs, waits for it, and
copies the bundle into its output artifact. Inputs and outputs travel through
the shared model-cache volume that both pods mount, so nothing large passes
through the Kubernetes API.

It lives with the components (the ``train-qlora`` component calls it) and
imports nothing from ``pipelines``, so the components never import the
pipeline that imports them; ``pipelines.trainer`` re-exports it.

Why one node with several GPUs rather than data parallelism over nodes: the
step budget of a cohort of ~10k patients is small enough that one node is
enough; ``num_nodes`` is still a parameter. Memory: the recipe places the whole
4-bit base on one device (``device_map={"": device}`` in
``cohortlm.models.llm.loading.load_causal_lm``), so every GPU must hold the paper's
70B base in NF4 (~35 GB) plus activations: 80 GB cards (A100 80GB, H100).
Splitting one model layer-wise over several smaller cards (``device_map="auto"``,
as the QLoRA authors did for 65B) is not implemented, so more GPUs per node do
not make a 70B base fit on smaller cards.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from components._image import PIPELINE_IMAGE

TRAINER_RUNTIME = "torch-distributed"
SHARED_VOLUME = "cohortlm-model-cache"


def trainjob_entry(
    split_table: str, study_yaml: str, profile: str, base_model: str, bundle_dir: str, recipe: str = ""
) -> None:
    """What the TrainJob node runs: the pipeline's training step, on shared storage.

    ``recipe`` is the pipeline's resolved recipe (JSON; empty: the packaged profile ``profile``).

    Only the first process trains and writes: the recipe uses every visible GPU
    of its node itself (model parallel), so further ranks would duplicate work.
    """
    import os

    if int(os.environ.get("RANK", os.environ.get("PET_NODE_RANK", "0"))) != 0:
        return
    from cohortlm.cohort.study import study_from_dict
    from cohortlm.run.profiles import pipeline_recipe
    from cohortlm.run.steps import train_llm_step
    from cohortlm.yamlsafe import load_yaml_text

    source = "the TrainJob's study_yaml"
    spec = study_from_dict(load_yaml_text(study_yaml, source=source), source=source)
    prof = pipeline_recipe(profile, recipe)
    train_llm_step(split_table, spec, prof, base_model, bundle_dir, bundle_dir + ".work")


def build_trainer(
    *,
    split_table: str,
    study_yaml: str,
    profile: str,
    base_model: str,
    bundle_dir: str,
    gpus_per_node: int,
    num_nodes: int = 1,
    image: str = PIPELINE_IMAGE,
    recipe: str = "",
) -> Any:
    """The ``CustomTrainer`` for the fine-tune (paths are on the shared volume)."""
    from kubeflow.trainer import CustomTrainer

    if gpus_per_node < 1:
        raise ValueError(f"gpus_per_node must be at least 1, got {gpus_per_node}")
    return CustomTrainer(
        func=trainjob_entry,
        func_args={
            "split_table": split_table,
            "study_yaml": study_yaml,
            "profile": profile,
            "base_model": base_model,
            "bundle_dir": bundle_dir,
            "recipe": recipe,
        },
        image=image,
        packages_to_install=[],  # the pipeline image has cohortlm and its pinned stack
        num_nodes=num_nodes,
        resources_per_node={"gpu": gpus_per_node},
        env={"HF_HUB_OFFLINE": "1", "COHORTLM_CACHE": str(Path(bundle_dir).parent)},
    )


def build_options(
    *,
    mount_path: str,
    pvc_name: str = SHARED_VOLUME,
    node_selector: Mapping[str, str] | None = None,
    tolerations: Sequence[Mapping[str, Any]] = (),
    labels: Mapping[str, str] | None = None,
) -> list[Any]:
    """TrainJob options: the shared volume, GPU placement, restricted security context, labels."""
    from kubeflow.trainer.options.kubernetes import (
        ContainerPatch,
        JobSetSpecPatch,
        JobSetTemplatePatch,
        JobSpecPatch,
        JobTemplatePatch,
        Labels,
        PodSpecPatch,
        PodTemplatePatch,
        ReplicatedJobPatch,
        RuntimePatch,
        TrainingRuntimeSpecPatch,
    )

    pod = PodSpecPatch(
        volumes=[
            {"name": "shared", "persistentVolumeClaim": {"claimName": pvc_name}},
            {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "16Gi"}},
        ],
        containers=[
            ContainerPatch(
                name="node",
                volume_mounts=[
                    {"name": "shared", "mountPath": mount_path},
                    {"name": "dshm", "mountPath": "/dev/shm"},
                ],
                security_context={"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
            )
        ],
        security_context={"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        node_selector=dict(node_selector or {}),
        tolerations=[dict(t) for t in tolerations],
    )
    patch = RuntimePatch(
        training_runtime_spec=TrainingRuntimeSpecPatch(
            template=JobSetTemplatePatch(
                spec=JobSetSpecPatch(
                    replicated_jobs=[
                        ReplicatedJobPatch(
                            name="node",
                            template=JobTemplatePatch(spec=JobSpecPatch(template=PodTemplatePatch(spec=pod))),
                        )
                    ]
                )
            )
        )
    )
    return [patch, Labels({"app.kubernetes.io/part-of": "cohortlm", **(labels or {})})]


def run_trainjob(
    *,
    split_table: str,
    study_yaml: str,
    profile: str,
    base_model: str,
    bundle_out: str,
    shared_dir: str,
    recipe: str = "",
    namespace: str,
    gpus_per_node: int,
    node_selector: Mapping[str, str] | None = None,
    tolerations: Sequence[Mapping[str, Any]] = (),
    runtime: str = TRAINER_RUNTIME,
    timeout_s: int = 48 * 3600,
) -> str:
    """Submit the TrainJob, wait for it, copy its bundle to ``bundle_out``; returns the job name.

    ``shared_dir`` is the shared volume as this pod mounts it; the TrainJob
    mounts the same claim at the same path.
    """
    from kubeflow.trainer import KubernetesBackendConfig, TrainerClient

    from cohortlm.errors import StepFailedError

    shared = Path(shared_dir) / "trainjobs"
    shared.mkdir(parents=True, exist_ok=True)
    staged_table = shared / "split_table.parquet"
    shutil.copyfile(split_table, staged_table)
    bundle_dir = shared / "bundle"
    trainer = build_trainer(
        split_table=str(staged_table),
        study_yaml=study_yaml,
        profile=profile,
        base_model=base_model,
        bundle_dir=str(bundle_dir),
        gpus_per_node=gpus_per_node,
        recipe=recipe,
    )
    options = build_options(mount_path=shared_dir, node_selector=node_selector, tolerations=tolerations)
    client = TrainerClient(KubernetesBackendConfig(namespace=namespace))
    name = client.train(runtime=client.get_runtime(runtime), trainer=trainer, options=options)
    job = client.wait_for_job_status(
        name, status={"Complete", "Failed"}, timeout=timeout_s, polling_interval=30
    )
    if job.status != "Complete":
        raise StepFailedError(
            f"TrainJob {namespace}/{name} ended as {job.status}; see `kubectl logs` of its node pod"
        )
    if Path(bundle_out).exists():
        shutil.rmtree(bundle_out)
    shutil.copytree(bundle_dir, bundle_out)
    return str(name)
