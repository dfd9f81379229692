"""Scores of the fine-tuned LLM bundle."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Model, Output

from components._image import PIPELINE_IMAGE


@dsl.component(base_image=PIPELINE_IMAGE, install_kfp_package=False)
def score_fine_tuned(
    bundle: Input[Model], split_table: Input[Dataset], profile: str, scores: Output[Dataset], recipe: str = ""
):
    """Validation and test scores from the fine-tuned bundle (``recipe``: test patients, batch size)."""
    from cohortlm.run.profiles import pipeline_recipe
    from cohortlm.run.steps import score_bundle_step

    prof = pipeline_recipe(profile, recipe)
    scores.metadata.update(score_bundle_step(bundle.path, split_table.path, scores.path, prof))
    # The fine-tuned model's name (<base>+qlora), as the training step recorded it on the bundle.
    scores.metadata["model"] = str(bundle.metadata.get("model", "fine_tuned"))
