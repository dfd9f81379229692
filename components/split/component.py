"""Seeded, patient-level train/validation/test split."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Output

from components._image import PIPELINE_IMAGE


@dsl.component(base_image=PIPELINE_IMAGE, install_kfp_package=False)
def split(table: Input[Dataset], study_yaml: str, split_override: dict, split_table: Output[Dataset]):
    """Add the `split` column; counts in metadata. `split_override` (fractions) is for small cohorts."""
    from cohortlm.run.steps import split_step

    split_table.metadata.update(
        split_step(table.path, study_yaml, split_table.path, split_override=split_override)
    )
