"""Make the winner the champion (atomic: a crash leaves the old champion serving)."""

from kfp import dsl
from kfp.dsl import Artifact, Input, Model

from components._image import PIPELINE_IMAGE


@dsl.component(base_image=PIPELINE_IMAGE, install_kfp_package=False)
def promote(
    bundle: Input[Model], decision: Input[Artifact], model: str, model_store: str, isvc_namespace: str
) -> str:
    """Promote into the model store; on a cluster also roll out the InferenceService (canary)."""
    from cohortlm.steps import promote_step

    info = promote_step(bundle.path, model_store, decision.path, model)
    if isvc_namespace:
        from serving.isvc import rollout_champion

        rollout_champion(info["model_version"], namespace=isvc_namespace, model_store=model_store)
    return info["model_version"]
