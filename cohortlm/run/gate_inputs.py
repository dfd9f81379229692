"""What the gate step judges: every model's scores on the patients all of them scored.

:func:`gate_inputs` reads the split table and the score tables,
:func:`add_champion` scores the bundle now serving on the same patients,
:func:`decide_against_champion` chooses the candidate on the split the gate does
not judge and decides, counting the look in the store's ledger; the subgroup and
internal-validation helpers feed the report. :func:`cohortlm.run.steps.evaluate_step`
calls them in that order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from cohortlm.cohort.io import read_provenance, read_table
from cohortlm.cohort.study import StudySpec
from cohortlm.errors import DataError
from cohortlm.evaluation.evaluate import ThresholdPool

if TYPE_CHECKING:
    from cohortlm.evaluation.cohort_counts import CohortSummary
    from cohortlm.evaluation.gate import Decision


def _load_scores(path: str, spec: StudySpec) -> pd.DataFrame:
    df = read_table(path, what="scores table")
    return df.set_index(spec.id_column)[spec.endpoint_names]


def choose_candidate(
    labels: pd.DataFrame,
    scores: Mapping[str, pd.DataFrame],
    contenders: Sequence[str],
    split: pd.Series,
    *,
    gating_split: str = "test",
    endpoints: Sequence[str] | None = None,
) -> tuple[str, dict[str, Any]]:
    """The gate's candidate among several models, chosen without looking at the gating split.

    The rule: the highest mean AUC over the endpoints on the validation split
    (the test split when the policy gates on validation), ties to the first
    contender. Choosing the best of several on the split the gate then judges
    would bias the gate towards promotion (the winner's curse).

    Returns:
        ``(name, selection)``; ``selection`` is the decision record's field
        (empty when there is one contender).
    """
    from sklearn.metrics import roc_auc_score

    from cohortlm.evaluation.evaluate import endpoint_arrays

    if len(contenders) == 1:
        return contenders[0], {}
    look_at = "test" if gating_split == "validation" else "validation"
    rows = split.index[split == look_at]
    eps = list(endpoints) if endpoints is not None else [str(c) for c in labels.columns]
    means: dict[str, float | None] = {}
    for name in contenders:
        aucs = []
        for ep in eps:
            y, s = endpoint_arrays(labels, scores[name], ep, model=name, rows=rows)
            if len(np.unique(y)) == 2:
                aucs.append(float(roc_auc_score(y, s)))
        means[name] = float(np.mean(aucs)) if aucs else None
    ranked = [n for n in contenders if means[n] is not None]
    if not ranked:
        raise DataError(
            f"cannot choose the candidate: no endpoint has both classes on the {look_at} split; "
            "give the split more patients"
        )
    chosen = max(ranked, key=lambda n: (means[n], -list(contenders).index(n)))
    return chosen, {
        "rule": f"highest mean AUC over the endpoints on the {look_at} split",
        "split": look_at,
        "gating_split": gating_split,
        "contenders": list(contenders),
        "mean_auc": means,
        "chosen": chosen,
    }


@dataclass
class GateInputs:
    """What the gate judges: every model's scores on the patients all of them scored."""

    table: pd.DataFrame  # the split table's rows of those patients, indexed by id
    labels: pd.DataFrame
    split: pd.Series
    scores: dict[str, pd.DataFrame]
    pairs: list[tuple[str, str]]
    champion: str = "baseline"
    champion_version: str | None = None
    #: patients and cases per split, every split (the report and model card cite them)
    cohort: CohortSummary | None = None
    #: the baseline's out-of-fold training scores, pooled with validation for its thresholds
    threshold_pool: ThresholdPool | None = None
    #: the training rows (features and endpoint sources), for the baseline's internal validation
    train: pd.DataFrame | None = None


def gate_inputs(split_table: str, spec: StudySpec, scores: Mapping[str, str]) -> GateInputs:
    """Labels, split and scores, restricted to the patients every model scored.

    The cohort summary says whether the data is synthetic as the split table's provenance
    records it (None, not recorded, for a table written without one).
    """
    from cohortlm.evaluation.cohort_counts import cohort_summary
    from cohortlm.evaluation.comparisons import llm_pairs

    raw = read_table(split_table, what="split table")
    provenance = read_provenance(split_table)
    labels = spec.labels(raw).set_axis(raw[spec.id_column].to_numpy())
    df = raw.set_index(spec.id_column)
    model_scores = {name: _load_scores(path, spec) for name, path in scores.items()}
    common = df.index[df["split"].isin(["validation", "test"])]
    for frame in model_scores.values():
        common = common.intersection(frame.index)
    pairs = llm_pairs(list(model_scores))
    if not pairs:
        raise DataError("no fine-tuned model to gate: the scores hold no '<base>+qlora' with its '<base>'")
    if "baseline" not in model_scores:
        raise DataError("no champion to gate against: the baseline scores are missing")
    train_ids = df.index[df["split"] == "train"]
    oof = model_scores["baseline"]
    pool_ids = train_ids.intersection(oof.index)
    return GateInputs(
        table=df.loc[common],
        labels=labels.loc[common],
        split=df.loc[common, "split"],
        scores={name: frame.loc[common] for name, frame in model_scores.items()},
        pairs=pairs,
        cohort=cohort_summary(raw, spec, synthetic=provenance["synthetic"] if provenance else None),
        threshold_pool=(
            ThresholdPool(labels.loc[pool_ids], {"baseline": oof.loc[pool_ids]}, "train (out-of-fold)")
            if len(pool_ids)
            else None
        ),
        train=df.loc[train_ids].reset_index(),
    )


def add_champion(inputs: GateInputs, spec: StudySpec, model_store: str) -> None:
    """Score the bundle now serving (when one does) on this run's patients; it becomes the champion."""
    from cohortlm.models.loaders import load_bundle
    from cohortlm.store.registry import champion as find_champion

    current = find_champion(model_store, spec.name) if model_store else None
    if current is None:
        return
    predictor = load_bundle(current, spec=spec)
    rows = inputs.table.reset_index()
    probs = predictor.predict_proba(rows)
    name = f"champion_{predictor.kind}_{predictor.version}"
    inputs.scores[name] = pd.DataFrame(
        probs[spec.endpoint_names].to_numpy(), index=inputs.split.index, columns=spec.endpoint_names
    )
    inputs.champion, inputs.champion_version = name, predictor.version


def decide_against_champion(
    inputs: GateInputs, spec: StudySpec, *, model_store: str, policy_path: str
) -> Decision:
    """Choose the candidate on validation, decide against the champion, count the look."""
    from cohortlm.evaluation.gate import decide, load_policy

    policy = load_policy(policy_path or None)
    contenders = [f for _, f in inputs.pairs] + (["baseline"] if inputs.champion_version is not None else [])
    candidate, selection = choose_candidate(
        inputs.labels,
        inputs.scores,
        contenders,
        inputs.split,
        gating_split=policy.split,
        endpoints=spec.endpoint_names,
    )
    # Every decision is a look at the test split; the store's ledger counts them (gate.decide).
    look, digest = 1, ""
    if model_store:
        from cohortlm.store.registry import next_look, split_hash

        digest = split_hash(inputs.split.index[inputs.split == policy.split])
        look = next_look(model_store, spec.name, digest)
    decision = decide(
        inputs.labels,
        inputs.scores[candidate],
        inputs.scores[inputs.champion],
        policy=policy,
        candidate_name=candidate,
        champion_name=inputs.champion,
        split=inputs.split,
        endpoints=spec.endpoint_names,
        look=look,
        split_hash=digest,
        subgroups=subgroup_levels_of(inputs, spec),
    )
    if selection:
        figures = ", ".join(
            f"{n} {v:.3f}" if v is not None else f"{n} -" for n, v in selection["mean_auc"].items()
        )
        reasons = (
            f"Candidate {candidate}: {selection['rule']} among {len(contenders)} ({figures}); "
            f"the {policy.split} split was not looked at to choose it.",
            *decision.reasons,
        )
        decision = replace(decision, reasons=reasons, selection=selection)
    if model_store:
        from cohortlm.store.registry import record_look

        record_look(
            model_store,
            spec.name,
            split=digest,
            candidate=candidate,
            champion=inputs.champion,
            promote=decision.promote,
            look=look,
            alpha_look=decision.alpha_look,
        )
    return decision


def subgroup_levels_of(inputs: GateInputs, spec: StudySpec) -> pd.DataFrame | None:
    """Each gated patient's level in every subgroup the study declares (None: it declares none)."""
    from cohortlm.evaluation.subgroups import subgroup_levels

    return subgroup_levels(inputs.table, spec) if spec.subgroups else None


def subgroup_rows(inputs: GateInputs, spec: StudySpec, models: list[str], split: str) -> pd.DataFrame | None:
    """``report/subgroups.csv``'s rows: every model in every declared subgroup level of ``split``."""
    from cohortlm.evaluation.subgroups import subgroup_table

    levels = subgroup_levels_of(inputs, spec)
    if levels is None:
        return None
    rows = inputs.split.index[inputs.split == split]
    scores = {m: inputs.scores[m] for m in models}
    return subgroup_table(inputs.labels, scores, levels, endpoints=spec.endpoint_names, rows=rows)


def baseline_internal_validation(inputs: GateInputs, spec: StudySpec) -> dict[str, Any] | None:
    """The baseline's bootstrap optimism correction on the training rows (None without any)."""
    from cohortlm.evaluation.optimism import internal_validation

    if inputs.train is None or len(inputs.train) == 0:
        return None
    return internal_validation(inputs.train, spec)
