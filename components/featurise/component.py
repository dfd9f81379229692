"""Raw registry tables (or a flat cohort file) -> one row per eligible patient."""

from kfp import dsl
from kfp.dsl import Dataset, Output

from components._image import PIPELINE_IMAGE


@dsl.component(base_image=PIPELINE_IMAGE, install_kfp_package=False)
def featurise(raw_data: str, study_yaml: str, cohort: Output[Dataset]):
    """Featurise the raw data with the study's featuriser (exclusion counts in metadata)."""
    from cohortlm.steps import featurise_step

    cohort.metadata.update(featurise_step(raw_data, study_yaml, cohort.path))
