"""Evaluate every model, run the DeLong gate against the champion, and report."""

from kfp import dsl
from kfp.dsl import HTML, Artifact, ClassificationMetrics, Dataset, Input, Markdown, Metrics, Model, Output

from components._image import PIPELINE_IMAGE


@dsl.component(base_image=PIPELINE_IMAGE, install_kfp_package=False)
def evaluate_gate(
    split_table: Input[Dataset],
    baseline_scores: Input[Dataset],
    baseline_bundle: Input[Model],
    zero_shot_scores: Input[list[Dataset]],
    fine_tuned_scores: Input[list[Dataset]],
    llm_bundles: Input[list[Model]],
    study_yaml: str,
    model_store: str,
    policy_yaml: str,
    decision: Output[Artifact],
    winner: Output[Model],
    metrics: Output[Metrics],
    roc: Output[ClassificationMetrics],
    report: Output[HTML],
    table1: Output[Markdown],
) -> str:
    """Table 1, ROC figure, comparison families and the decision record; returns the verdict.

    The score lists hold one table per base model (``dsl.Collected`` over the
    per-base loop), each named by its metadata ``model``. Returns ``"candidate"``
    (promote the candidate), ``"baseline"`` (first run, the candidate failed the
    gate) or ``"none"``; a single output, not a NamedTuple, because kfp.local's
    condition evaluation resolves only a task's ``Output``. ``winner`` is a copy
    of the bundle to promote, its metadata naming the model (empty for ``"none"``).
    """
    import json
    import os
    import shutil
    import tempfile

    import pandas as pd

    from cohortlm.run.steps import evaluate_step

    policy_path = ""
    if policy_yaml:
        policy_path = os.path.join(tempfile.mkdtemp(), "policy.yaml")
        with open(policy_path, "w") as fh:
            fh.write(policy_yaml)
    scores = {"baseline": baseline_scores.path}
    for table in [*zero_shot_scores, *fine_tuned_scores]:
        name = str(table.metadata.get("model", ""))
        if not name or name in scores:
            raise ValueError(f"score table {table.uri} has a missing or repeated model name {name!r}")
        scores[name] = table.path
    info = evaluate_step(
        split_table.path, study_yaml, scores, decision.path, model_store=model_store, policy_path=policy_path
    )
    decision.metadata.update(info)
    bundles = {"baseline": baseline_bundle.path}
    bundles.update({str(b.metadata.get("model", "")): b.path for b in llm_bundles})
    chosen = info["promoted_model"]
    winner.metadata.update({"model": chosen or "none", "verdict": info["winner"]})
    if chosen:
        shutil.copytree(bundles[chosen], winner.path)
    else:
        os.makedirs(winner.path, exist_ok=True)
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
        first = pts[(pts["model"] == info["candidate"]) & (pts["endpoint"] == pts["endpoint"].iloc[0])]
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
