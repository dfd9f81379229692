"""QLoRA fine-tuning: the step that runs on the GPU node pool (or hands off to Kubeflow Trainer)."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output

from components._image import PIPELINE_IMAGE


@dsl.component(base_image=PIPELINE_IMAGE, install_kfp_package=False)
def train_qlora(
    split_table: Input[Dataset],
    study_yaml: str,
    profile: str,
    base_model: str,
    checkpoint_dir: str,
    use_trainer: bool,
    trainer_namespace: str,
    trainer_gpus: int,
    gpu_node_selector: dict,
    gpu_tolerations: list,
    gpu_type: str,
    gpu_count: int,
    bundle: Output[Model],
    training: Output[Metrics],
):
    """Fine-tune on the train split; checkpoints go to `checkpoint_dir` so a retried pod resumes.

    With `use_trainer`, a Kubeflow Trainer TrainJob with `trainer_gpus` GPUs does
    the training (see pipelines.trainer) and this pod only waits and collects.
    `gpu_type` and `gpu_count` (this pod's accelerator) are recorded on the bundle;
    as inputs they also reach the exit handler's sub-DAG, which the KFP compiler
    does not do for values used only in `set_accelerator_*`.
    `training` shows the loss curve (``loss.step_NNNN``), tokens/s, peak memory
    and training time in the KFP UI's metrics view.
    """
    import json
    import os

    def log_training() -> None:
        """The bundle's training record as KFP Metrics (nested: a component ships only its own body)."""
        with open(os.path.join(bundle.path, "bundle.json")) as fh:
            record = json.load(fh).get("training", {})
        start = int(record.get("resumed_from_step") or 0)
        losses = record.get("losses") or []
        stride = max(1, -(-len(losses) // 200))  # at most ~200 points on the curve
        for i in range(0, len(losses), stride):
            training.log_metric(f"loss.step_{start + i + 1:05d}", float(losses[i]))
        keys = ("tokens_per_s", "train_seconds", "peak_memory_mib", "first_loss", "final_loss")
        for key in (*keys, "steps", "n_train"):
            value = record.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                training.log_metric(key, float(value))

    import tempfile

    if use_trainer:
        from pipelines.trainer import run_trainjob

        name = run_trainjob(
            split_table=split_table.path,
            study_yaml=study_yaml,
            profile=profile,
            base_model=base_model,
            bundle_out=bundle.path,
            shared_dir=os.environ.get("COHORTLM_CACHE", "/var/cache/cohortlm"),
            namespace=trainer_namespace,
            gpus_per_node=trainer_gpus,
            node_selector=gpu_node_selector,
            tolerations=gpu_tolerations,
        )
        with open(os.path.join(bundle.path, "bundle.json")) as fh:
            info = json.load(fh)
        from cohortlm.run.steps import base_for

        bundle.metadata.update(
            {
                "kind": "llm",
                "trainjob": name,
                "model_version": info.get("model_version", ""),
                "model": base_for(base_model, profile).fine_tuned,
            }
        )
        bundle.metadata.update({"gpu_type": gpu_type, "gpu_count": gpu_count})
        log_training()
        return

    from cohortlm.run.steps import train_llm_step

    work = checkpoint_dir or tempfile.mkdtemp(prefix="qlora-")
    bundle.metadata.update(
        train_llm_step(split_table.path, study_yaml, profile, base_model, bundle.path, work)
    )
    bundle.metadata.update({"gpu_type": gpu_type, "gpu_count": gpu_count})
    log_training()
