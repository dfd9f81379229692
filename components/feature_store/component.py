"""Write the cohort to the Feast offline store and read the training table back, point in time."""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Output

from components._image import PIPELINE_IMAGE


@dsl.component(base_image=PIPELINE_IMAGE, install_kfp_package=False)
def feature_store(
    cohort: Input[Dataset], study: Input[Artifact], feature_repo: str, training_table: Output[Dataset]
):
    """Training rows come from Feast's get_historical_features (point-in-time correct)."""
    from cohortlm.cohort.study import load_study
    from featurestore.pipeline import training_table_step

    training_table.metadata.update(
        training_table_step(cohort.path, load_study(study.path), feature_repo, training_table.path)
    )
