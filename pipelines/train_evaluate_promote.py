"""The cohortlm pipeline: validate -> features -> split -> baseline | per base LLM -> gate -> promote.

The same function runs locally (``cohortlm run``, kfp.local) and on Kubeflow
(``cohortlm compile`` / ``cohortlm submit``). Branches run in parallel where
the data allows: the baseline, the zero-shot scoring and the QLoRA training all
start from the split table. Each base LLM of ``base_models`` (seed 000 compares
Llama-2-70B and Meditron-70B) is scored zero-shot and fine-tuned in its own
iteration of a ``dsl.ParallelFor``, so on a cluster the bases fine-tune side by
side, one GPU pod each; the gate collects every base's scores and bundle
(``dsl.Collected``), chooses the candidate on validation and hands the winning
bundle to ``promote``. Only the QLoRA task asks for a GPU; its node pool
(selector, tolerations, accelerator type and count) are pipeline parameters.
Where one GPU is not enough, ``use_trainer=True`` hands the fine-tune to a
Kubeflow Trainer TrainJob with ``trainer_gpus`` GPUs (``components/trainer.py``);
set ``gpu_count=0`` then, so the waiting pod holds no GPU.

Everything on the cluster that the compiled pipeline mounts is shipped by
``manifests/`` (tests/manifests/test_cluster_contract.py checks both ways): the
PVCs ``cohortlm-models`` and ``cohortlm-model-cache``, the Secrets
``cohortlm-bundle-signing-key``, ``cohortlm-redis`` and ``cohortlm-feast-registry``
and the ConfigMap ``cohortlm-feature-store``. Every run ends in an exit handler
that pushes its outcome to the Pushgateway, success or failure.
"""

import ast
import re
from pathlib import Path
from typing import Any, NamedTuple

from kfp import dsl, kubernetes
from kfp.dsl import Artifact

from components.endpoint_metrics import endpoint_metrics, gate_endpoints
from components.evaluate_gate import evaluate_gate
from components.export_metrics import export_metrics
from components.feature_store import feature_store
from components.featurise import featurise
from components.keep_champion import keep_champion
from components.materialize_online import materialize_online
from components.promote import promote
from components.report_run_outcome import report_run_outcome
from components.score_fine_tuned import score_fine_tuned
from components.score_zero_shot import score_zero_shot
from components.split import split
from components.study_spec import study_spec
from components.train_baseline import train_baseline
from components.train_qlora import train_qlora
from components.validate import validate
from featurestore.pipeline import CLUSTER_CONFIG_MOUNT, REDIS_SECRET_MOUNT, REGISTRY_SECRET_MOUNT

PIPELINE_NAME = "cohortlm-train-evaluate-promote"
RUN_PIPELINE_NAME = f"{PIPELINE_NAME}-run"

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
#: The cluster objects the pipeline mounts (all shipped by manifests/base).
MODEL_STORE_PVC = "cohortlm-models"
MODEL_CACHE_PVC = "cohortlm-model-cache"
SIGNING_KEY_SECRET = "cohortlm-bundle-signing-key"
SIGNING_KEY_MOUNT = "/var/run/secrets/cohortlm/bundle-signing-key"
FEATURE_STORE_CONFIGMAP = "cohortlm-feature-store"
REDIS_SECRET = "cohortlm-redis"
FEAST_REGISTRY_SECRET = "cohortlm-feast-registry"
#: The in-cluster Pushgateway the NetworkPolicy pipeline-egress lets the steps reach.
DEFAULT_PUSHGATEWAY = "http://prometheus-pushgateway.monitoring.svc:9091"


def _resources(task: dsl.PipelineTask, kind: str) -> dsl.PipelineTask:
    cpu_req, cpu_lim, mem_req, mem_lim = RESOURCES[kind]
    task.set_cpu_request(cpu_req).set_cpu_limit(cpu_lim).set_memory_request(mem_req).set_memory_limit(mem_lim)
    task.set_caching_options(enable_caching=True)
    if kind in RETRIES:
        # Retried steps are idempotent: training resumes from its last checkpoint.
        task.set_retry(num_retries=RETRIES[kind], backoff_duration="60s", backoff_factor=2.0)
    return task


class RunOutputs(NamedTuple):
    """What one run hands back (kfp.local returns it to ``cohortlm run``)."""

    #: the gate's folder: report, decision record and ``outcome.json`` (a GateOutcome)
    outcome: Artifact
    #: the model version serving after the run: the promoted one, or the champion kept
    served_version: str


def _data_steps(*, raw_data, study_yaml, feature_repo, split_override, pushgateway, run_id, job_id):
    """Import, spec, featurise, validate, Feast, split: the study, cohort, validation and split outputs."""
    # The raw cohort enters as an imported Dataset: the UI shows lineage from data to served model.
    raw = dsl.importer(
        artifact_uri=raw_data, artifact_class=dsl.Dataset, reimport=False, metadata={"role": "raw cohort"}
    ).set_display_name("raw-cohort")
    spec = _resources(study_spec(study_yaml=study_yaml), "light")
    study = spec.outputs["spec"]
    cohort = _resources(featurise(raw=raw.output, study=study), "data").outputs["cohort"]
    checked = _resources(
        validate(cohort=cohort, study=study, pushgateway=pushgateway, run_id=run_id, job_id=job_id), "data"
    )
    # It pushes this run's validation counts: it must run every time.
    checked.set_caching_options(enable_caching=False)
    store = _resources(
        feature_store(cohort=cohort, study=study, feature_repo=feature_repo),
        "data",
    ).after(checked)
    splits = _resources(
        split(table=store.outputs["training_table"], study=study, split_override=split_override),
        "light",
    )
    return study, cohort, checked.outputs["details"], splits.outputs["split_table"]


def _on_gpu_pool(task: dsl.PipelineTask, gpu_type, gpu_count, node_selector, tolerations) -> None:
    """The training pod's accelerator, node pool and shared memory."""
    task.set_accelerator_type(gpu_type).set_accelerator_limit(gpu_count)
    kubernetes.add_node_selector_json(task, node_selector)
    kubernetes.add_toleration_json(task, tolerations)
    # NCCL and DataLoader workers need more shared memory than the 64 MiB default.
    kubernetes.empty_dir_mount(
        task, volume_name="dshm", mount_path="/dev/shm", medium="Memory", size_limit="16Gi"
    )


def _promote_or_keep(
    gate: dsl.PipelineTask,
    *,
    cohort,
    study,
    model_store,
    model_store_pvc,
    isvc_namespace,
    signing_key_file,
    online_store_config,
):
    """Promote the gate's winner (and its features online), or keep the champion: the served version.

    First run: the candidate if it beats the baseline, else the baseline becomes the first
    champion. Later runs: the candidate (a fine-tuned LLM or this run's baseline) only if it
    beats the champion. Either way the gate's ``winner`` output is the bundle to promote.
    """
    with dsl.If(gate.outputs["Output"] != "none", name="promote-winner"):
        p = promote(
            bundle=gate.outputs["winner"],
            decision=gate.outputs["decision"],
            model_store=model_store,
            isvc_namespace=isvc_namespace,
            signing_key_file=signing_key_file,
        )
        _resources(p, "light").set_caching_options(enable_caching=False)
        kubernetes.mount_pvc(p, pvc_name=model_store_pvc, mount_path=MODEL_STORE_MOUNT)
        kubernetes.use_secret_as_volume(p, secret_name=SIGNING_KEY_SECRET, mount_path=SIGNING_KEY_MOUNT)
        # patient_id-only requests to the new champion find the features it was trained on.
        online = materialize_online(
            cohort=cohort, study=study, online_store_config=online_store_config
        ).after(p)
        _resources(online, "data").set_caching_options(enable_caching=False)
        kubernetes.use_config_map_as_volume(
            online, config_map_name=FEATURE_STORE_CONFIGMAP, mount_path=CLUSTER_CONFIG_MOUNT
        )
        kubernetes.use_secret_as_volume(online, secret_name=REDIS_SECRET, mount_path=REDIS_SECRET_MOUNT)
        kubernetes.use_secret_as_volume(
            online, secret_name=FEAST_REGISTRY_SECRET, mount_path=REGISTRY_SECRET_MOUNT
        )
    with dsl.Else(name="keep-champion"):
        kept = keep_champion(decision=gate.outputs["decision"], model_store=model_store)
        _resources(kept, "light").set_caching_options(enable_caching=False)
        kubernetes.mount_pvc(kept, pvc_name=model_store_pvc, mount_path=MODEL_STORE_MOUNT)
    return dsl.OneOf(p.outputs["Output"], kept.output)


def _report_steps(gate: dsl.PipelineTask, *, pushgateway, run_id, job_id) -> None:
    """The KFP UI's per-endpoint curves and the run's metrics pushed to the Pushgateway."""
    # Per endpoint, a ROC artifact per model and the confusion matrix. One at a time:
    # kfp.local runs loop iterations in threads, and these steps are light.
    endpoints = _resources(gate_endpoints(decision=gate.outputs["decision"]), "light")
    with dsl.ParallelFor(endpoints.output, parallelism=1, name="per-endpoint") as endpoint:
        curves = endpoint_metrics(decision=gate.outputs["decision"], endpoint=endpoint)
        _resources(curves, "light")
    exported = export_metrics(
        decision=gate.outputs["decision"], pushgateway=pushgateway, run_id=run_id, job_id=job_id
    )
    _resources(exported, "light").set_caching_options(enable_caching=False)


def build_run_pipeline(*, base_parallelism: int = 0):
    """The run's steps as a pipeline of their own, with :class:`RunOutputs`.

    KFP returns a pipeline's outputs only from its top level, never from inside an
    exit handler; so the cluster's pipeline (:func:`build_pipeline`) runs this one
    inside its exit handler, and ``cohortlm run`` runs it directly with kfp.local and
    reads what it returns (the run outcome is pushed by the caller then).
    ``base_parallelism`` (KFP fixes it at compile time) is how many base models
    fine-tune at once, 0 for all.
    """

    @dsl.pipeline(name=RUN_PIPELINE_NAME, description="The run's steps: data -> models -> gate -> promote")
    def run(
        raw_data: str,
        study_yaml: str,
        profile: str,
        recipe: str,
        base_models: list,
        feature_repo: str,
        model_store: str,
        policy_yaml: str,
        split_override: dict,
        checkpoint_dir: str,
        isvc_namespace: str,
        pushgateway: str,
        run_id: str,
        gpu_type: str,
        gpu_count: int,
        gpu_node_selector: dict,
        gpu_tolerations: list,
        model_cache_pvc: str,
        model_store_pvc: str,
        use_trainer: bool,
        trainer_namespace: str,
        trainer_gpus: int,
        signing_key_file: str,
        online_store_config: str,
    ) -> RunOutputs:
        """The run's tasks; the parameters are :func:`build_pipeline`'s."""
        job_id = dsl.PIPELINE_JOB_ID_PLACEHOLDER
        study, cohort, validation, table = _data_steps(
            raw_data=raw_data,
            study_yaml=study_yaml,
            feature_repo=feature_repo,
            split_override=split_override,
            pushgateway=pushgateway,
            run_id=run_id,
            job_id=job_id,
        )
        baseline = _resources(train_baseline(split_table=table, study=study), "data")
        # One iteration per base model: on a cluster side by side, one GPU pod each.
        with dsl.ParallelFor(base_models, parallelism=base_parallelism, name="per-base-model") as base_model:
            zero_shot = _resources(
                score_zero_shot(
                    split_table=table, study=study, profile=profile, recipe=recipe, base_model=base_model
                ),
                "score",
            )
            qlora = _resources(
                train_qlora(
                    split_table=table,
                    study=study,
                    profile=profile,
                    recipe=recipe,
                    base_model=base_model,
                    checkpoint_dir=checkpoint_dir,
                    use_trainer=use_trainer,
                    trainer_namespace=trainer_namespace,
                    trainer_gpus=trainer_gpus,
                    gpu_node_selector=gpu_node_selector,
                    gpu_tolerations=gpu_tolerations,
                    gpu_type=gpu_type,
                    gpu_count=gpu_count,
                ),
                "train",
            )
            _on_gpu_pool(qlora, gpu_type, gpu_count, gpu_node_selector, gpu_tolerations)
            fine_tuned = _resources(
                score_fine_tuned(
                    bundle=qlora.outputs["bundle"], split_table=table, profile=profile, recipe=recipe
                ),
                "score",
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
                baseline_bundle=baseline.outputs["bundle"],
                zero_shot_scores=dsl.Collected(zero_shot.outputs["scores"]),
                fine_tuned_scores=dsl.Collected(fine_tuned.outputs["scores"]),
                llm_bundles=dsl.Collected(qlora.outputs["bundle"]),
                study=study,
                validation=validation,
                model_store=model_store,
                policy_yaml=policy_yaml,
                profile=profile,
                recipe=recipe,
                run_id=run_id,
            ),
            "score",
        )
        # The gate reads the model store (the champion may have changed): never cache it.
        gate.set_caching_options(enable_caching=False)
        kubernetes.mount_pvc(gate, pvc_name=model_store_pvc, mount_path=MODEL_STORE_MOUNT)

        served = _promote_or_keep(
            gate,
            cohort=cohort,
            study=study,
            model_store=model_store,
            model_store_pvc=model_store_pvc,
            isvc_namespace=isvc_namespace,
            signing_key_file=signing_key_file,
            online_store_config=online_store_config,
        )
        _report_steps(gate, pushgateway=pushgateway, run_id=run_id, job_id=job_id)
        return RunOutputs(outcome=gate.outputs["decision"], served_version=served)

    return run


def build_pipeline(*, base_parallelism: int = 0):
    """The pipeline, with ``base_parallelism`` base models fine-tuned at once (0: all).

    The cluster's pipeline (:data:`train_evaluate_promote`) runs every base at once;
    ``cohortlm run`` builds it with 1, because kfp.local runs a loop's iterations in
    threads of one process and two fine-tunes on one CPU only slow each other.
    """

    run_steps = build_run_pipeline(base_parallelism=base_parallelism)

    @dsl.pipeline(
        name=PIPELINE_NAME, description="Cohort -> QLoRA LLM vs logistic regression -> DeLong gate -> KServe"
    )
    def train_evaluate_promote(
        raw_data: str,
        study_yaml: str,
        profile: str = "quick",
        recipe: str = "",
        base_models: list[str] = [""],  # noqa: B006  (NAME=SOURCE per base; "" = the profile's model)
        feature_repo: str = "",
        model_store: str = "models",
        policy_yaml: str = "",
        split_override: dict = {},  # noqa: B006  (KFP pipeline parameters need literal defaults)
        checkpoint_dir: str = "",
        isvc_namespace: str = "",
        pushgateway: str = DEFAULT_PUSHGATEWAY,
        run_id: str = "",
        gpu_type: str = "nvidia.com/gpu",
        gpu_count: int = 1,
        gpu_node_selector: dict = {"nvidia.com/gpu.present": "true"},  # noqa: B006
        gpu_tolerations: list = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],  # noqa: B006
        model_cache_pvc: str = MODEL_CACHE_PVC,
        model_store_pvc: str = MODEL_STORE_PVC,
        use_trainer: bool = False,
        trainer_namespace: str = "cohortlm",
        trainer_gpus: int = 4,
        signing_key_file: str = f"{SIGNING_KEY_MOUNT}/signing-key.pem",
        online_store_config: str = f"{CLUSTER_CONFIG_MOUNT}/feature_store.yaml",
    ):
        """Train, evaluate and (when the gate says so) promote, for one study.

        ``recipe`` is the resolved recipe as JSON text (``Profile.to_json``: the profile with
        its ``--set`` overrides); every LLM step runs it, checking it first. Empty: the
        packaged profile ``profile`` names. ``profile`` names the run either way.
        The defaults are the cluster's; a local run (pipelines/local.py) passes an
        empty ``signing_key_file`` and ``online_store_config`` and its own ``pushgateway``.
        """
        outcome = report_run_outcome(
            study_yaml=study_yaml,
            pushgateway=pushgateway,
            run_id=run_id,
            job_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
        )
        _resources(outcome, "light").set_caching_options(enable_caching=False)
        with dsl.ExitHandler(outcome, name="run"):
            run_steps(
                raw_data=raw_data,
                study_yaml=study_yaml,
                profile=profile,
                recipe=recipe,
                base_models=base_models,
                feature_repo=feature_repo,
                model_store=model_store,
                policy_yaml=policy_yaml,
                split_override=split_override,
                checkpoint_dir=checkpoint_dir,
                isvc_namespace=isvc_namespace,
                pushgateway=pushgateway,
                run_id=run_id,
                gpu_type=gpu_type,
                gpu_count=gpu_count,
                gpu_node_selector=gpu_node_selector,
                gpu_tolerations=gpu_tolerations,
                model_cache_pvc=model_cache_pvc,
                model_store_pvc=model_store_pvc,
                use_trainer=use_trainer,
                trainer_namespace=trainer_namespace,
                trainer_gpus=trainer_gpus,
                signing_key_file=signing_key_file,
                online_store_config=online_store_config,
            )

    return train_evaluate_promote


train_evaluate_promote = build_pipeline()


# The compiled file's header comment lists each parameter's default, written by kfp from a
# protobuf Struct whose map order changes from one process to the next (the default toleration's
# keys came out in a new order on each compile). The body is written with sorted keys; the header's
# container defaults are rewritten the same way, so a compile is reproducible byte for byte.
_HEADER_DEFAULT = re.compile(r"^(#\s+\S+: \S+ \[Default: )(.*)\]$")


def _sorted_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _sorted_keys(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted_keys(v) for v in value]
    return value


def compile_pipeline(path: str | Path, pipeline_parameters: dict[str, Any] | None = None) -> Path:
    """Compile :func:`train_evaluate_promote` to IR YAML at ``path``, the same bytes on every compile."""
    from kfp import compiler

    path = Path(path)
    compiler.Compiler().compile(train_evaluate_promote, str(path), pipeline_parameters=pipeline_parameters)
    lines = path.read_text().split("\n")
    for i, line in enumerate(lines):
        if not line.startswith("#"):
            break
        match = _HEADER_DEFAULT.match(line)
        if match and match.group(2).startswith(("[", "{")):
            value = ast.literal_eval(match.group(2))
            lines[i] = f"{match.group(1)}{_sorted_keys(value)}]"
    path.write_text("\n".join(lines))
    return path
