"""The gate kept the champion: name the version that goes on serving (the promote step's other branch)."""

from kfp import dsl
from kfp.dsl import Artifact, Input

from components._image import PIPELINE_IMAGE


@dsl.component(base_image=PIPELINE_IMAGE, install_kfp_package=False)
def keep_champion(decision: Input[Artifact], model_store: str) -> str:
    """The champion's version in ``model_store`` (the gate decided against the candidate).

    With the promote step's output it makes the pipeline's ``served_version``
    (``dsl.OneOf``): whichever branch ran, the version serving after the run.
    """
    from cohortlm.run.outcome import GateOutcome
    from cohortlm.store.registry import champion_version

    outcome = GateOutcome.read(decision.path)
    version = champion_version(model_store, outcome.study)
    if version is None:
        raise ValueError(
            f"the gate kept the champion of study {outcome.study}, but {model_store} has none: "
            "was the model store changed during the run?"
        )
    return version
