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
    study: Input[Artifact],
    validation: Input[Artifact],
    model_store: str,
    policy_yaml: str,
    profile: str,
    run_id: str,
    decision: Output[Artifact],
    winner: Output[Model],
    metrics: Output[Metrics],
    roc: Output[ClassificationMetrics],
    report: Output[HTML],
    table1: Output[Markdown],
    recipe: str = "",
) -> str:
    """Table 1, ROC figure, comparison families and the decision record; returns the verdict.

    The score lists hold one table per base model (``dsl.Collected`` over the
    per-base loop), each named by its metadata ``model``. Returns ``"candidate"``
    (promote the candidate), ``"baseline"`` (first run, the candidate failed the
    gate) or ``"none"``; a single output, not a NamedTuple, because kfp.local's
    condition evaluation resolves only a task's ``Output``. ``winner`` is a copy
    of the bundle to promote, its metadata naming the model (empty for ``"none"``).
    ``decision`` is the run folder, with ``outcome.json`` for the steps after this one; its
    report page is complete (``validation``: the validate step's summary; the profile and run id).
    ``recipe`` (the resolved recipe, JSON; empty: the packaged ``profile``) goes into the
    outcome and the decision artifact's metadata.
    """
    import os
    import shutil
    import tempfile
    import time

    from cohortlm.cohort.study import load_study
    from cohortlm.models.training import TrainingFigures
    from cohortlm.run.profiles import pipeline_recipe
    from cohortlm.run.steps import evaluate_step

    started = time.perf_counter()
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
    bundles = {"baseline": baseline_bundle.path}
    bundles.update({str(b.metadata.get("model", "")): b.path for b in llm_bundles})
    outcome = evaluate_step(
        split_table.path,
        load_study(study.path),
        scores,
        decision.path,
        model_store=model_store,
        policy_path=policy_path,
        training={str(b.metadata.get("model", "")): TrainingFigures.from_bundle(b.path) for b in llm_bundles},
        validation_dir=validation.path,
        profile=profile,
        run_id=run_id,
        recipe=pipeline_recipe(profile, recipe).to_dict(),
    )
    chosen = outcome.promoted_model
    winner.metadata.update({"model": chosen or "none", "verdict": outcome.winner})
    if chosen and chosen not in bundles:
        raise ValueError(f"the gate promoted {chosen}, but no bundle of that name was passed (llm_bundles)")
    if chosen:
        shutil.copytree(bundles[chosen], winner.path)
    else:
        os.makedirs(winner.path, exist_ok=True)
    for ep in outcome.decision.endpoints:
        for key in ("auc_candidate", "auc_champion", "delta", "p_better_adjusted", "p_worse_adjusted"):
            value = getattr(ep, key)
            if value == value:  # not NaN
                metrics.log_metric(f"{ep.endpoint}.{key}", float(value))
    metrics.log_metric("promote", 1.0 if outcome.promote else 0.0)
    # ROC of the candidate for the first endpoint (a ClassificationMetrics holds one curve;
    # the per-endpoint steps log the rest, and every curve is in the report's figure).
    curve = outcome.roc_of(outcome.candidate, outcome.endpoints[0])
    if curve is not None:
        roc.log_roc_curve(list(curve.fpr), list(curve.tpr), list(curve.thresholds))
    # The HTML artifact is the run's page (index.html, self-contained).
    shutil.copyfile(os.path.join(decision.path, "report", "index.html"), report.path)
    shutil.copyfile(os.path.join(decision.path, "report", "table1.md"), table1.path)
    decision.metadata.update(
        {
            "winner": outcome.winner,
            "promote": outcome.promote,
            "candidate": outcome.candidate,
            "champion": outcome.champion,
            "promoted_model": chosen,
            "recipe": dict(outcome.recipe),
            "seconds": round(time.perf_counter() - started, 2),
        }
    )
    return outcome.winner
