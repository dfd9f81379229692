"""Great Expectations validation of the featurised cohort."""

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Metrics, Output

from components._image import PIPELINE_IMAGE


@dsl.component(base_image=PIPELINE_IMAGE, install_kfp_package=False)
def validate(
    cohort: Input[Dataset],
    study: Input[Artifact],
    pushgateway: str,
    run_id: str,
    job_id: str,
    report: Output[HTML],
    details: Output[Artifact],
    metrics: Output[Metrics],
):
    """Validate against the suite generated from the study; the task fails when the data does.

    The failing rows per expectation are pushed to the Pushgateway before the task
    fails (or passes), so that the data-validation alert sees a failed run: the
    steps after this one never run then. The reports and metrics hold expectation
    names and row counts only, never a patient's values.
    """
    import os
    import shutil

    from cohortlm.cohort.study import load_study
    from cohortlm.run.steps import push_validation_step, validate_step

    spec = load_study(study.path)

    os.makedirs(details.path, exist_ok=True)
    failure: Exception | None = None
    summary: dict = {}
    try:
        summary = validate_step(cohort.path, spec, details.path)
    except Exception as exc:
        failure = exc
    html = os.path.join(details.path, "validation.html")
    if os.path.exists(html):
        shutil.copyfile(html, report.path)
    try:
        push_validation_step(details.path, spec, pushgateway, run_id or job_id)
    except Exception as exc:
        if failure is None:
            raise
        print(f"validation metrics not pushed: {exc}")
    if failure is not None:
        raise failure
    for key, value in summary.items():
        metrics.log_metric(key, value)
    details.metadata.update(summary)
