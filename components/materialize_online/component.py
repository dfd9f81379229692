"""Load the promoted run's features into the cluster's online store (Redis), for patient_id requests."""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input

from components._image import PIPELINE_IMAGE


@dsl.component(base_image=PIPELINE_IMAGE, install_kfp_package=False)
def materialize_online(cohort: Input[Dataset], study: Input[Artifact], online_store_config: str) -> str:
    """``feast materialize`` into the store of ``online_store_config``; no-op when it is empty.

    On a cluster the config is the ConfigMap cohortlm-feature-store and the Redis
    password and registry URL come from the mounted Secrets (pipelines/ mounts them).
    """
    import json

    from cohortlm.cohort.study import load_study
    from featurestore.pipeline import materialize_online_step

    return json.dumps(materialize_online_step(cohort.path, load_study(study.path), online_store_config))
