"""Great Expectations validation of the featurised cohort."""

from kfp import dsl
from kfp.dsl import HTML, Dataset, Input, Metrics, Output

from components._image import PIPELINE_IMAGE


@dsl.component(base_image=PIPELINE_IMAGE, install_kfp_package=False)
def validate(cohort: Input[Dataset], study_yaml: str, report: Output[HTML], metrics: Output[Metrics]):
    """Validate against the suite generated from the study; the task fails when the data does."""
    import os
    import shutil
    import tempfile

    from cohortlm.errors import DataError
    from cohortlm.steps import validate_step

    folder = tempfile.mkdtemp(prefix="validation-")
    try:
        summary = validate_step(cohort.path, study_yaml, folder)
    except DataError:
        summary = None
        raise
    finally:
        html = os.path.join(folder, "validation.html")
        if os.path.exists(html):
            shutil.copyfile(html, report.path)
    for key, value in summary.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            metrics.log_metric(key, value)
    report.metadata.update({k: v for k, v in summary.items() if isinstance(v, (int, float, str, bool))})
