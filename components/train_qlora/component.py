"""QLoRA fine-tuning: the step that runs on the GPU node pool."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Model, Output

from components._image import PIPELINE_IMAGE


@dsl.component(base_image=PIPELINE_IMAGE, install_kfp_package=False)
def train_qlora(
    split_table: Input[Dataset],
    study_yaml: str,
    profile: str,
    base_model: str,
    checkpoint_dir: str,
    bundle: Output[Model],
):
    """Fine-tune on the train split; checkpoints go to `checkpoint_dir` so a retried pod resumes."""
    import tempfile

    from cohortlm.steps import train_llm_step

    work = checkpoint_dir or tempfile.mkdtemp(prefix="qlora-")
    bundle.metadata.update(
        train_llm_step(split_table.path, study_yaml, profile, base_model, bundle.path, work)
    )
