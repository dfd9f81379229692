"""Evaluate every model, run the DeLong gate against the champion, and report."""

from kfp import dsl
from kfp.dsl import HTML, Artifact, ClassificationMetrics, Dataset, Input, Markdown, Metrics, Output

from components._image import PIPELINE_IMAGE


@dsl.component(base_image=PIPELINE_IMAGE, install_kfp_package=False)
def evaluate_gate(
    split_table: Input[Dataset],
    baseline_scores: Input[Dataset],
    zero_shot_scores: Input[Dataset],
    fine_tuned_scores: Input[Dataset],
    study_yaml: str,
    model_store: str,
    policy_yaml: str,
    decision: Output[Artifact],
    metrics: Output[Metrics],
    roc: Output[ClassificationMetrics],
    report: Output[HTML],
    table1: Output[Markdown],
) -> str:
    """Table 1, ROC figure and the decision record; returns the winner that drives promotion.

    ``"candidate"`` (promote the LLM), ``"baseline"`` (first run, the LLM failed
    the gate) or ``"none"``. A single output, not a NamedTuple: kfp.local's
    condition evaluation resolves only a task's ``Output``.
    """
    import json
    import os
    import shutil
    import tempfile

    import pandas as pd

    from cohortlm.steps import evaluate_step

    policy_path = ""
    if policy_yaml:
        policy_path = os.path.join(tempfile.mkdtemp(), "policy.yaml")
        with open(policy_path, "w") as fh:
            fh.write(policy_yaml)
    info = evaluate_step(
        split_table.path,
        study_yaml,
        {
            "baseline": baseline_scores.path,
            "zero_shot": zero_shot_scores.path,
            "fine_tuned": fine_tuned_scores.path,
        },
        decision.path,
        model_store=model_store,
        policy_path=policy_path,
    )
    decision.metadata.update(info)
    with open(os.path.join(decision.path, "decision.json")) as fh:
        record = json.load(fh)
    for ep in record.get("endpoints", []):
        for key in ("auc_candidate", "auc_champion", "delta", "p_better_adjusted", "p_worse_adjusted"):
            if isinstance(ep.get(key), (int, float)):
                metrics.log_metric(f"{ep['endpoint']}.{key}", ep[key])
    metrics.log_metric("promote", 1.0 if info["promote"] else 0.0)
    # ROC of the candidate for the first endpoint (a ClassificationMetrics holds one curve;
    # every curve is in the HTML report and roc.png).
    roc_csv = os.path.join(decision.path, "report", "roc_points.csv")
    if os.path.exists(roc_csv):
        pts = pd.read_csv(roc_csv)
        first = pts[(pts["model"] == "fine_tuned") & (pts["endpoint"] == pts["endpoint"].iloc[0])]
        thresholds = [min(float(t), 1.0) for t in first["threshold"]]
        roc.log_roc_curve(first["fpr"].tolist(), first["tpr"].tolist(), thresholds)
    # The HTML artifact is the run's page (index.html, self-contained), report.html if it is missing.
    pages = [os.path.join(decision.path, "report", n) for n in ("index.html", "report.html")]
    page = next((p for p in pages if os.path.exists(p)), None)
    if page is not None:
        shutil.copyfile(page, report.path)
    src = os.path.join(decision.path, "report", "table1.md")
    if os.path.exists(src):
        shutil.copyfile(src, table1.path)
    return info["winner"]
