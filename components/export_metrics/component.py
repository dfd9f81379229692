"""Push the run's metrics (AUCs, verdict, tokens/s, validation failures) to a Pushgateway."""

from kfp import dsl
from kfp.dsl import Artifact, Input

from components._image import PIPELINE_IMAGE


@dsl.component(base_image=PIPELINE_IMAGE, install_kfp_package=False)
def export_metrics(decision: Input[Artifact], pushgateway: str, run_id: str, job_id: str) -> str:
    """No-op without a gateway URL; never sends patient data (labels are model/endpoint names).

    Everything pushed comes from the gate's outcome (``outcome.json``): the tokens/s
    are the gate candidate's training figures when it is fine-tuned, else the first base's.
    ``run_id`` is the caller's id (a local run's); empty on a cluster, where the KFP job id is used.
    """
    from cohortlm.run.outcome import GateOutcome
    from cohortlm.run.steps import export_metrics_step

    return export_metrics_step(GateOutcome.read(decision.path), pushgateway, run_id or job_id)
