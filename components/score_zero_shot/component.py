"""Zero-shot scores of the base LLM (seed 000 compares base and fine-tuned models)."""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Output

from components._image import PIPELINE_IMAGE


@dsl.component(base_image=PIPELINE_IMAGE, install_kfp_package=False)
def score_zero_shot(
    split_table: Input[Dataset],
    study: Input[Artifact],
    profile: str,
    base_model: str,
    scores: Output[Dataset],
    recipe: str = "",
):
    """P(Yes) vs P(No) per endpoint from the base model, validation and test splits.

    ``base_model`` is one ``NAME=SOURCE`` item of the pipeline's ``base_models``;
    the scores' metadata names the model ``NAME``. ``recipe`` is the resolved recipe
    (JSON; empty: the packaged profile ``profile``), checked here before anything runs.
    """
    from cohortlm.cohort.study import load_study
    from cohortlm.run.profiles import pipeline_recipe
    from cohortlm.run.steps import score_zero_shot_step

    prof = pipeline_recipe(profile, recipe)
    scores.metadata.update(
        score_zero_shot_step(split_table.path, load_study(study.path), prof, base_model, scores.path)
    )
