"""QLoRA fine-tuning: the step that runs on the GPU node pool (or hands off to Kubeflow Trainer)."""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Metrics, Model, Output

from components._image import PIPELINE_IMAGE


@dsl.component(base_image=PIPELINE_IMAGE, install_kfp_package=False)
def train_qlora(
    split_table: Input[Dataset],
    study: Input[Artifact],
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
    recipe: str = "",
):
    """Fine-tune on the train split; checkpoints go to `checkpoint_dir` so a retried pod resumes.

    With `use_trainer`, a Kubeflow Trainer TrainJob with `trainer_gpus` GPUs does
    the training (see components.trainer) and this pod only waits and collects.
    `gpu_type` and `gpu_count` (this pod's accelerator) are recorded on the bundle;
    as inputs they also reach the exit handler's sub-DAG, which the KFP compiler
    does not do for values used only in `set_accelerator_*`.
    `training` shows the loss curve (``loss.step_NNNN``), tokens/s, peak memory
    and training time in the KFP UI's metrics view, and the recipe's numbers
    (``recipe.qlora.learning_rate``...). `recipe` is the resolved recipe (JSON; empty:
    the packaged profile `profile`), checked before anything runs; the bundle records
    it (bundle.json and the artifact's ``recipe`` metadata).
    """
    import os
    import tempfile
    from pathlib import Path

    from cohortlm.cohort.study import load_study
    from cohortlm.models.training import TrainingFigures
    from cohortlm.run.profiles import pipeline_recipe
    from cohortlm.run.steps import base_for, llm_bundle_info, train_llm_step

    prof = pipeline_recipe(profile, recipe)

    def log_training() -> None:
        """The bundle's training figures as KFP Metrics (nested: a component ships only its own body)."""
        figures = TrainingFigures.from_bundle(bundle.path)
        for step, loss in figures.loss_curve():
            training.log_metric(f"loss.step_{step:05d}", loss)
        for key, value in figures.scalars().items():
            training.log_metric(key, value)
        numbers = {f"recipe.{k}": v for k, v in prof.to_dict().items()}
        numbers.update({f"recipe.qlora.{k}": v for k, v in prof.qlora.to_dict().items()})
        for key, value in numbers.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                training.log_metric(key, float(value))

    if use_trainer:
        from components.trainer import run_trainjob

        name = run_trainjob(
            split_table=split_table.path,
            study_yaml=Path(study.path).read_text(),
            profile=profile,
            recipe=prof.to_json(),
            base_model=base_model,
            bundle_out=bundle.path,
            shared_dir=os.environ.get("COHORTLM_CACHE", "/var/cache/cohortlm"),
            namespace=trainer_namespace,
            gpus_per_node=trainer_gpus,
            node_selector=gpu_node_selector,
            tolerations=gpu_tolerations,
        )
        bundle.metadata.update(llm_bundle_info(bundle.path, model=base_for(base_model, prof).fine_tuned))
        bundle.metadata["trainjob"] = name
        bundle.metadata.update({"gpu_type": gpu_type, "gpu_count": gpu_count})
        log_training()
        return

    work = checkpoint_dir or tempfile.mkdtemp(prefix="qlora-")
    spec = load_study(study.path)
    bundle.metadata.update(train_llm_step(split_table.path, spec, prof, base_model, bundle.path, work))
    bundle.metadata.update({"gpu_type": gpu_type, "gpu_count": gpu_count})
    log_training()
