"""Seeded, patient-level train/validation/test split."""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Output

from components._image import PIPELINE_IMAGE


@dsl.component(base_image=PIPELINE_IMAGE, install_kfp_package=False)
def split(table: Input[Dataset], study: Input[Artifact], split_override: dict, split_table: Output[Dataset]):
    """Add the `split` column; counts in metadata. `split_override` (fractions) is for small cohorts."""
    from cohortlm.cohort.study import load_study
    from cohortlm.run.steps import split_step

    split_table.metadata.update(
        split_step(table.path, load_study(study.path), split_table.path, split_override=split_override)
    )
