"""Great Expectations validation of the featurised cohort."""

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Metrics, Output

from components._image import PIPELINE_IMAGE


@dsl.component(base_image=PIPELINE_IMAGE, install_kfp_package=False)
def validate(
    cohort: Input[Dataset],
    study_yaml: str,
    report: Output[HTML],
    details: Output[Artifact],
    metrics: Output[Metrics],
):
    """Validate against the suite generated from the study; the task fails when the data does.

    The reports hold expectation names and row counts only, never a patient's values.
    """
    import os
    import shutil

    from cohortlm.steps import validate_step

    os.makedirs(details.path, exist_ok=True)
    try:
        summary = validate_step(cohort.path, study_yaml, details.path)
    finally:
        html = os.path.join(details.path, "validation.html")
        if os.path.exists(html):
            shutil.copyfile(html, report.path)
    for key, value in summary.items():
        metrics.log_metric(key, value)
    details.metadata.update(summary)
