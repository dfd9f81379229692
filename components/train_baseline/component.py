"""Logistic regression per endpoint: the champion when nothing serves yet."""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Model, Output

from components._image import PIPELINE_IMAGE


@dsl.component(base_image=PIPELINE_IMAGE, install_kfp_package=False)
def train_baseline(
    split_table: Input[Dataset], study: Input[Artifact], bundle: Output[Model], scores: Output[Dataset]
):
    """Train on the train split; write the bundle and the scores of every split."""
    from cohortlm.cohort.study import load_study
    from cohortlm.run.steps import train_baseline_step

    info = train_baseline_step(split_table.path, load_study(study.path), bundle.path, scores.path)
    bundle.metadata.update(info)
    scores.metadata["model"] = "baseline"
