"""The pipeline's exit handler: push the run's outcome to the Pushgateway, whatever happened."""

from kfp import dsl

from components._image import PIPELINE_IMAGE


@dsl.component(base_image=PIPELINE_IMAGE, install_kfp_package=False)
def report_run_outcome(
    status: dsl.PipelineTaskFinalStatus, study_yaml: str, pushgateway: str, run_id: str, job_id: str
) -> str:
    """Runs after every other task, succeeded or failed (``dsl.ExitHandler``).

    Pushes ``cohortlm_run_failed`` (0 or 1), the finish time and, on success, the
    last-success time, so that the "run failed" and "no recent run" alerts can fire.
    ``run_id`` is the caller's id (a local run's); empty on a cluster, where the
    KFP job id is used.
    """
    from cohortlm.run.steps import report_run_outcome_step

    return report_run_outcome_step(status.state, study_yaml, pushgateway, run_id or job_id)
