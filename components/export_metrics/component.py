"""Push the run's metrics (AUCs, verdict, tokens/s, validation failures) to a Pushgateway."""

from kfp import dsl
from kfp.dsl import Artifact, Input, Model

from components._image import PIPELINE_IMAGE


@dsl.component(base_image=PIPELINE_IMAGE, install_kfp_package=False)
def export_metrics(
    decision: Input[Artifact], llm_bundles: Input[list[Model]], pushgateway: str, run_id: str, job_id: str
) -> str:
    """No-op without a gateway URL; never sends patient data (labels are model/endpoint names).

    ``llm_bundles`` holds one fine-tuned bundle per base model; the tokens/s pushed
    are the gate candidate's when it is one of them, else the first base's.
    ``run_id`` is the caller's id (a local run's); empty on a cluster, where the KFP job id is used.
    """
    from cohortlm.run.steps import export_metrics_step

    bundles = {str(b.metadata.get("model", i)): b.path for i, b in enumerate(llm_bundles)}
    return export_metrics_step(decision.path, bundles, pushgateway, run_id or job_id)
