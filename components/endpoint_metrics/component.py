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
    """The endpoints in the gate's report (what the per-endpoint loop runs over)."""
    import json
    import os

    with open(os.path.join(decision.path, "report", "metrics.json")) as fh:
        return list(json.load(fh)["endpoints"])


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

    Each artifact's metadata names the endpoint, the model, n and cases; the
    champion's artifact is empty (``model: none``) on a first run. Thresholds are
    capped at 1 (scikit-learn's first point is at +inf, which JSON cannot hold).
    """
    import json
    import os

    import pandas as pd

    from cohortlm.evaluation.evaluate import roc_points

    with open(os.path.join(decision.path, "report", "metrics.json")) as fh:
        metrics = json.load(fh)
    with open(os.path.join(decision.path, "run.json")) as fh:
        run = json.load(fh)
    eval_split = metrics.get("eval_split", "test")
    # Single-threaded reads: Arrow's reader threads can abort the process at exit
    # ("terminate called without an active exception", apache/arrow#34314); it happened
    # here once, after this step had written its outputs.
    labels = pd.read_parquet(os.path.join(decision.path, "labels.parquet"), use_threads=False)
    id_column = labels.columns[0]  # the study's id column, then split and the endpoints
    labels = labels.set_index(id_column)
    labels = labels[labels["split"] == eval_split]
    y = labels[endpoint].dropna()
    champion = run.get("champion")
    slots = [
        (run.get("candidate"), roc_candidate),
        ("baseline", roc_baseline),
        (champion if champion != "baseline" else None, roc_champion),  # a first run has none
    ]
    for model, artifact in slots:
        artifact.metadata.update({"endpoint": endpoint, "model": model or "none", "split": eval_split})
        path = os.path.join(decision.path, "scores", f"{model}.parquet")
        if not model or not os.path.exists(path):
            continue
        table = pd.read_parquet(path, use_threads=False)
        scores = table.set_index(table.columns[0])[endpoint]
        both = pd.concat([y.rename("y"), scores.rename("s")], axis=1, join="inner").dropna()
        artifact.metadata.update({"n": len(both), "n_cases": int(both["y"].sum())})
        pts = roc_points(both["y"].to_numpy(dtype=int), both["s"].to_numpy())
        if len(pts):
            thresholds = [min(float(t), 1.0) for t in pts["threshold"]]
            artifact.log_roc_curve(pts["fpr"].tolist(), pts["tpr"].tolist(), thresholds)
    candidate = run.get("candidate", "")
    row = next(
        (r for r in metrics.get("table1", []) if r["endpoint"] == endpoint and r["model"] == candidate), None
    )
    confusion.metadata.update({"endpoint": endpoint, "model": candidate, "split": eval_split})
    if row is not None and row.get("tp") is not None:
        confusion.metadata.update(
            {"threshold": row.get("threshold"), "threshold_source": row.get("threshold_source", "")}
        )
        # Rows are the true class, columns the predicted one.
        confusion.log_confusion_matrix(
            ["no event", "event"],
            [[int(row["tn"]), int(row["fp"])], [int(row["fn"]), int(row["tp"])]],
        )
