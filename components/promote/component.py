"""Make the winner the champion (atomic: a crash leaves the old champion serving)."""

from kfp import dsl
from kfp.dsl import Artifact, Input, Model, Output

from components._image import PIPELINE_IMAGE


@dsl.component(base_image=PIPELINE_IMAGE, install_kfp_package=False)
def promote(
    bundle: Input[Model],
    decision: Input[Artifact],
    model_store: str,
    isvc_namespace: str,
    signing_key_file: str,
    promoted: Output[Model],
) -> str:
    """Promote into the model store; on a cluster also roll out the InferenceService (canary).

    ``signing_key_file`` is the private key the promoted copy is signed with (the
    predictor refuses unsigned bundles); empty leaves it unsigned (local runs).
    ``promoted`` records the version, its manifest digest, where it is served from
    and the gate's decision, so that lineage runs from the data to the served model.
    ``bundle`` is the gate's ``winner`` output: the outcome's promoted model
    (``baseline`` or ``<base>+qlora``), whose validation thresholds are applied.
    """
    import json
    import os

    from cohortlm.run.outcome import GateOutcome
    from cohortlm.run.steps import promote_step

    if signing_key_file:
        with open(signing_key_file, encoding="utf-8") as fh:
            if fh.read(64).strip().startswith("REPLACE_ME"):
                raise ValueError(
                    "Secret cohortlm-bundle-signing-key still holds the shipped placeholder; "
                    "fill it (docs/platform.md#secrets)"
                )
        os.environ["COHORTLM_SIGNING_KEY"] = signing_key_file
    # Not under components/promote/: importing that package would define the component again.
    from components.promotion_record import promoted_record

    outcome = GateOutcome.read(decision.path)
    model = str(bundle.metadata.get("model", ""))
    if model != outcome.promoted_model:
        raise ValueError(
            f"the bundle to promote is {model or 'unnamed'}, "
            f"the gate promoted {outcome.promoted_model or 'nothing'}: re-run the gate"
        )
    info = promote_step(bundle.path, model_store, outcome)
    record = promoted_record(model_store, outcome, info["model_version"])
    os.makedirs(os.path.dirname(promoted.path) or ".", exist_ok=True)
    with open(promoted.path, "w", encoding="utf-8") as fh:
        json.dump(record, fh, indent=2)
    promoted.metadata.update({k: v for k, v in record.items() if isinstance(v, (str, int, float, bool))})
    if isvc_namespace:
        from serving.isvc import rollout_champion

        rollout_champion(info["model_version"], namespace=isvc_namespace, model_store=model_store)
    return info["model_version"]
