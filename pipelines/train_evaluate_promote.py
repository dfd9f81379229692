"""The cohortlm pipeline: validate -> features -> split -> baseline | zero-shot | QLoRA -> gate -> promote.

The same function runs locally (``cohortlm run``, kfp.local) and on Kubeflow
(``cohortlm compile`` / ``cohortlm submit``). Branches run in parallel where
the data allows: the baseline, the zero-shot scoring and the QLoRA training all
start from the split table. Only the QLoRA task asks for a GPU; its node pool
(selector, tolerations, accelerator type and count) are pipeline parameters.
Where one GPU is not enough, ``use_trainer=True`` hands the fine-tune to a
Kubeflow Trainer TrainJob with ``trainer_gpus`` GPUs (``pipelines/trainer.py``);
set ``gpu_count=0`` then, so the waiting pod holds no GPU.
"""

from kfp import dsl, kubernetes

from components.evaluate_gate import evaluate_gate
from components.export_metrics import export_metrics
from components.feature_store import feature_store
from components.featurise import featurise
from components.promote import promote
from components.score_fine_tuned import score_fine_tuned
from components.score_zero_shot import score_zero_shot
from components.split import split
from components.train_baseline import train_baseline
from components.train_qlora import train_qlora
from components.validate import validate

PIPELINE_NAME = "cohortlm-train-evaluate-promote"

#: (cpu request, cpu limit, memory request, memory limit) per task kind.
RESOURCES = {
    "light": ("500m", "2", "1Gi", "4Gi"),
    "data": ("1", "2", "2Gi", "8Gi"),
    "score": ("2", "4", "8Gi", "16Gi"),
    "train": ("4", "8", "32Gi", "64Gi"),
}
RETRIES = {"score": 2, "train": 2}
#: Where the model-store PVC is mounted on a cluster; `cohortlm submit` passes it as model_store.
MODEL_STORE_MOUNT = "/var/lib/cohortlm/models"
MODEL_CACHE_MOUNT = "/var/cache/cohortlm"


def _resources(task: dsl.PipelineTask, kind: str) -> dsl.PipelineTask:
    cpu_req, cpu_lim, mem_req, mem_lim = RESOURCES[kind]
    task.set_cpu_request(cpu_req).set_cpu_limit(cpu_lim).set_memory_request(mem_req).set_memory_limit(mem_lim)
    task.set_caching_options(enable_caching=True)
    if kind in RETRIES:
        # Retried steps are idempotent: training resumes from its last checkpoint.
        task.set_retry(num_retries=RETRIES[kind], backoff_duration="60s", backoff_factor=2.0)
    return task


@dsl.pipeline(
    name=PIPELINE_NAME, description="Cohort -> QLoRA LLM vs logistic regression -> DeLong gate -> KServe"
)
def train_evaluate_promote(
    raw_data: str,
    study_yaml: str,
    profile: str = "quick",
    base_model: str = "",
    feature_repo: str = "",
    model_store: str = "models",
    policy_yaml: str = "",
    split_override: dict = {},  # noqa: B006  (KFP pipeline parameters need literal defaults)
    checkpoint_dir: str = "",
    isvc_namespace: str = "",
    pushgateway: str = "",
    run_id: str = "",
    gpu_type: str = "nvidia.com/gpu",
    gpu_count: int = 1,
    gpu_node_selector: dict = {"nvidia.com/gpu.present": "true"},  # noqa: B006
    gpu_tolerations: list = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],  # noqa: B006
    model_cache_pvc: str = "cohortlm-model-cache",
    model_store_pvc: str = "cohortlm-models",
    use_trainer: bool = False,
    trainer_namespace: str = "cohortlm",
    trainer_gpus: int = 4,
):
    """Train, evaluate and (when the gate says so) promote, for one study."""
    feats = _resources(featurise(raw_data=raw_data, study_yaml=study_yaml), "data")
    checked = _resources(validate(cohort=feats.outputs["cohort"], study_yaml=study_yaml), "data")
    store = _resources(
        feature_store(cohort=feats.outputs["cohort"], study_yaml=study_yaml, feature_repo=feature_repo),
        "data",
    ).after(checked)
    splits = _resources(
        split(table=store.outputs["training_table"], study_yaml=study_yaml, split_override=split_override),
        "light",
    )
    table = splits.outputs["split_table"]

    baseline = _resources(train_baseline(split_table=table, study_yaml=study_yaml), "data")
    zero_shot = _resources(
        score_zero_shot(split_table=table, study_yaml=study_yaml, profile=profile, base_model=base_model),
        "score",
    )
    qlora = _resources(
        train_qlora(
            split_table=table,
            study_yaml=study_yaml,
            profile=profile,
            base_model=base_model,
            checkpoint_dir=checkpoint_dir,
            use_trainer=use_trainer,
            trainer_namespace=trainer_namespace,
            trainer_gpus=trainer_gpus,
            gpu_node_selector=gpu_node_selector,
            gpu_tolerations=gpu_tolerations,
        ),
        "train",
    )
    qlora.set_accelerator_type(gpu_type).set_accelerator_limit(gpu_count)
    kubernetes.add_node_selector_json(qlora, gpu_node_selector)
    kubernetes.add_toleration_json(qlora, gpu_tolerations)
    # NCCL and DataLoader workers need more shared memory than the 64 MiB default.
    kubernetes.empty_dir_mount(
        qlora, volume_name="dshm", mount_path="/dev/shm", medium="Memory", size_limit="16Gi"
    )
    fine_tuned = _resources(
        score_fine_tuned(bundle=qlora.outputs["bundle"], split_table=table, profile=profile), "score"
    )
    for task in (zero_shot, qlora, fine_tuned):
        # Base weights (and their GGUF conversion) are cached on a volume, not fetched per pod.
        # The pipeline image sets COHORTLM_CACHE to this mount; a local run keeps the user's cache.
        kubernetes.mount_pvc(task, pvc_name=model_cache_pvc, mount_path=MODEL_CACHE_MOUNT)
        task.set_env_variable("HF_HUB_OFFLINE", "1")
    gate = _resources(
        evaluate_gate(
            split_table=table,
            baseline_scores=baseline.outputs["scores"],
            zero_shot_scores=zero_shot.outputs["scores"],
            fine_tuned_scores=fine_tuned.outputs["scores"],
            study_yaml=study_yaml,
            model_store=model_store,
            policy_yaml=policy_yaml,
        ),
        "score",
    )
    # The gate reads the model store (the champion may have changed): never cache it.
    gate.set_caching_options(enable_caching=False)
    kubernetes.mount_pvc(gate, pvc_name=model_store_pvc, mount_path=MODEL_STORE_MOUNT)

    # First run: the LLM if it beats the baseline, else the baseline becomes the first
    # champion. Later runs: the LLM only if it beats the champion.
    for winner, trained, model, name in (
        ("candidate", qlora, "fine_tuned", "llm-wins"),
        ("baseline", baseline, "baseline", "baseline-first-champion"),
    ):
        with dsl.If(gate.outputs["Output"] == winner, name=name):
            p = promote(
                bundle=trained.outputs["bundle"],
                decision=gate.outputs["decision"],
                model=model,
                model_store=model_store,
                isvc_namespace=isvc_namespace,
            )
            _resources(p, "light").set_caching_options(enable_caching=False)
            kubernetes.mount_pvc(p, pvc_name=model_store_pvc, mount_path=MODEL_STORE_MOUNT)

    exported = export_metrics(
        decision=gate.outputs["decision"],
        llm_bundle=qlora.outputs["bundle"],
        pushgateway=pushgateway,
        run_id=run_id,
    )
    _resources(exported, "light").set_caching_options(enable_caching=False)
