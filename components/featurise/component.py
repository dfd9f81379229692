"""Raw registry tables (or a flat cohort file) -> one row per eligible patient."""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Output

from components._image import PIPELINE_IMAGE


@dsl.component(base_image=PIPELINE_IMAGE, install_kfp_package=False)
def featurise(raw: Input[Dataset], study: Input[Artifact], cohort: Output[Dataset]):
    """Featurise the raw data (imported by the pipeline's ``dsl.importer``) with the study's featuriser.

    The exclusion counts go into the cohort's metadata; the raw artifact's
    path is where the pod sees its URI (a mounted path, or ``/gcs/``, ``/s3/``
    or ``/minio/`` for a bucket URI).
    """
    from cohortlm.cohort.study import load_study
    from cohortlm.run.steps import featurise_step

    cohort.metadata.update(featurise_step(raw.path, load_study(study.path), cohort.path))
