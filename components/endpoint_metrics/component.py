"""Per-endpoint artifacts for the KFP UI: ROC curves of the gated models and the confusion matrix.

A ``ClassificationMetrics`` artifact holds one curve and a component's outputs
are fixed when the pipeline compiles, while a study's endpoints are known only
when it runs; so the pipeline loops (``dsl.ParallelFor``) over the endpoints the
gate evaluated and this component writes, for one endpoint, a ROC artifact for
the candidate, the baseline and the champion, and the candidate's confusion matrix at its chosen threshold.
"""

from kfp import dsl
from kfp.dsl import Artifact, ClassificationMetrics, Input, Output

from components._image import PIPELINE_IMAGE


@dsl.component(base_image=PIPELINE_IMAGE, install_kfp_package=False)
def gate_endpoints(decision: Input[Artifact]) -> list:
    """The endpoints the gate evaluated (what the per-endpoint loop runs over)."""
    from cohortlm.run.outcome import GateOutcome

    return list(GateOutcome.read(decision.path).endpoints)


@dsl.component(base_image=PIPELINE_IMAGE, install_kfp_package=False)
def endpoint_metrics(
    decision: Input[Artifact],
    endpoint: str,
    roc_candidate: Output[ClassificationMetrics],
    roc_baseline: Output[ClassificationMetrics],
    roc_champion: Output[ClassificationMetrics],
    confusion: Output[ClassificationMetrics],
):
    """ROC on the evaluation split of the gate's candidate, the baseline and the champion,
    and the candidate's confusion matrix (every model's curve is in the report's figure).

    Everything comes from the gate's outcome (``outcome.json``). Each artifact's
    metadata names the endpoint, the model, n and cases; the champion's artifact
    is empty (``model: none``) on a first run.
    """
    from cohortlm.run.outcome import GateOutcome

    outcome = GateOutcome.read(decision.path)
    champion = outcome.champion if outcome.champion != "baseline" else None  # a first run has none
    slots = [(outcome.candidate, roc_candidate), ("baseline", roc_baseline), (champion, roc_champion)]
    for model, artifact in slots:
        artifact.metadata.update(
            {"endpoint": endpoint, "model": model or "none", "split": outcome.eval_split}
        )
        point = outcome.points.get(model or "", {}).get(endpoint)
        if point is not None:
            artifact.metadata.update({"n": point["n"], "n_cases": point["n_cases"]})
        curve = outcome.roc_of(model or "", endpoint)
        if curve is not None:
            artifact.log_roc_curve(list(curve.fpr), list(curve.tpr), list(curve.thresholds))
    point = outcome.points.get(outcome.candidate, {}).get(endpoint) or {}
    confusion.metadata.update({"endpoint": endpoint, "model": outcome.candidate, "split": outcome.eval_split})
    if point.get("tp") is not None:
        confusion.metadata.update(
            {"threshold": point.get("threshold"), "threshold_source": point.get("threshold_source") or ""}
        )
        # Rows are the true class, columns the predicted one.
        confusion.log_confusion_matrix(
            ["no event", "event"],
            [[int(point["tn"]), int(point["fp"])], [int(point["fn"]), int(point["tp"])]],
        )
