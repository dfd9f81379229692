"""The run's study spec: validated once, then an artifact every step reads."""

from kfp import dsl
from kfp.dsl import Artifact, Output

from components._image import PIPELINE_IMAGE


@dsl.component(base_image=PIPELINE_IMAGE, install_kfp_package=False)
def study_spec(study_yaml: str, spec: Output[Artifact]):
    """Validate the pipeline's ``study_yaml``; ``spec`` is the study YAML the other steps read.

    A bad spec fails here, before any data is read, with the key and the rule it broke.
    The artifact's metadata names the study, its version and the spec's hash, so the
    lineage of a served model reaches the exact spec it was trained under.
    """
    from cohortlm.run.steps import study_step

    spec.metadata.update(study_step(study_yaml, spec.path))
