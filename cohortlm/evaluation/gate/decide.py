"""Decide one run: measure every endpoint, apply the rule, and write the record with its reasons."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import pandas as pd

from cohortlm.errors import SpecError, UsageError
from cohortlm.evaluation.gate import prose
from cohortlm.evaluation.gate.policy import GatePolicy, load_policy
from cohortlm.evaluation.gate.record import INSUFFICIENT_VERDICT, Decision, EndpointVerdict, SubgroupVerdict
from cohortlm.evaluation.gate.rule import RuleResult, alpha_for_look, apply_policy
from cohortlm.evaluation.gate.stats import EndpointStats, ModelStats, RuleInputs, endpoint_stats
from cohortlm.evaluation.subgroups import SubgroupInputs, paired_subgroup_stats

__all__ = ["decide"]


def decide(
    labels: pd.DataFrame,
    candidate_scores: pd.DataFrame,
    champion_scores: pd.DataFrame,
    *,
    policy: GatePolicy | None = None,
    candidate_name: str = "candidate",
    champion_name: str = "champion",
    split: pd.Series | None = None,
    endpoints: Sequence[str] | None = None,
    look: int = 1,
    split_hash: str = "",
    subgroups: pd.DataFrame | None = None,
) -> Decision:
    """Decide whether the candidate replaces the champion (rules in :mod:`cohortlm.evaluation.gate`).

    Args:
        labels: One column per endpoint (0/1/NaN), indexed by patient id; NaN rows
            are dropped per endpoint.
        candidate_scores: The candidate's probabilities, same columns and ids.
        champion_scores: The champion's probabilities, same columns and ids.
        policy: The policy; the packaged default when None.
        candidate_name: Name recorded for the candidate.
        champion_name: Name recorded for the champion.
        split: Split name per patient id; when given, only rows in ``policy.split``
            are used. When None, ``labels`` is taken to hold that split already.
        endpoints: Endpoints to judge, in order; default: the columns of ``labels``.
        look: Which look at this test split this is, 1 for the first (from the
            model store's ledger, :func:`cohortlm.store.registry.next_look`).
        split_hash: The split's hash (:func:`cohortlm.store.registry.split_hash`), recorded.
        subgroups: Each patient's level per declared subgroup
            (:func:`cohortlm.evaluation.subgroups.subgroup_levels`); None: none declared.

    Returns:
        The :class:`Decision`.

    Raises:
        UsageError: If there are no endpoints, the policy's split is absent, or
            ``look`` is below 1.
        DataError: If an endpoint column or a labelled patient's score is missing.
        SpecError: If the policy's ``primary`` or ``margins`` name an endpoint not judged.
    """
    policy = load_policy() if policy is None else policy
    eps = _endpoints_to_judge(labels, endpoints, policy)
    alpha_look = alpha_for_look(policy, look)
    rows: pd.Index | None = None
    if split is not None:
        rows = split.index[split.astype(str) == policy.split]
        if rows.empty:
            raise UsageError(f"split has no rows in the policy's split '{policy.split}'")
    measured = [
        endpoint_stats(
            labels,
            candidate_scores,
            champion_scores,
            ep,
            rows=rows,
            conf_level=policy.conf_level,
            names=(candidate_name, champion_name),
        )
        for ep in eps
    ]
    by_level = None
    if subgroups is not None and not subgroups.empty:
        by_level = paired_subgroup_stats(
            labels,
            candidate_scores,
            champion_scores,
            subgroups,
            rows=rows,
            endpoints=eps,
            names=(candidate_name, champion_name),
        )
    out = apply_policy(RuleInputs.from_endpoints(measured), policy, eps, look=look, subgroups=by_level)
    levels = _subgroup_verdicts(by_level, out)
    adj_name = prose.ADJUSTMENT_NAMES[policy.adjustment]
    verdicts = [
        _verdict(r, out, i, policy, candidate_name, champion_name, adj_name, alpha_look)
        for i, r in enumerate(measured)
    ]
    reasons = [
        prose.headline(bool(out.promote[0]), candidate_name, champion_name, policy, len(verdicts)),
        *prose.evidence_reasons(verdicts, policy, look),
        *prose.test_summary(verdicts, policy, adj_name, look=look, alpha_look=alpha_look),
        prose.calibration_summary(verdicts, policy),
    ]
    if levels:
        reasons.append(prose.subgroup_summary(levels, policy, adj_name))
    return Decision(
        candidate=candidate_name,
        champion=champion_name,
        policy=policy,
        endpoints=tuple(verdicts),
        promote=bool(out.promote[0]),
        n_superior=sum(v.superior for v in verdicts),
        reasons=tuple(reasons),
        look=int(look),
        alpha_look=float(alpha_look),
        split_hash=split_hash,
        notes=tuple(prose.design_notes(verdicts, policy)),
        subgroups=tuple(levels),
    )


def _endpoints_to_judge(
    labels: pd.DataFrame, endpoints: Sequence[str] | None, policy: GatePolicy
) -> list[str]:
    """The endpoints to judge, checked against the ones the policy names.

    Raises:
        UsageError: If there are none.
        SpecError: If the policy's ``primary`` or ``margins`` name an endpoint not judged.
    """
    eps = list(endpoints) if endpoints is not None else [str(c) for c in labels.columns]
    if not eps:
        raise UsageError("labels: no endpoints to judge")
    unknown = sorted((set(policy.primary or ()) | set(policy.margins)) - set(eps))
    if unknown:
        raise SpecError(f"policy names endpoint(s) not judged here: {', '.join(unknown)}")
    return eps


def _verdict(
    r: EndpointStats,
    out: RuleResult,
    i: int,
    policy: GatePolicy,
    candidate: str,
    champion: str,
    adj_name: str,
    alpha_look: float,
) -> EndpointVerdict:
    """One endpoint's verdict: its numbers (column ``i`` of ``out``), the verdict word and the reasons."""
    v = _endpoint_numbers(r, out, i)
    reasons = prose.test_reasons(v, r, policy, candidate, champion, adj_name, alpha_look)
    reasons.append(
        prose.calibration_reason(r.endpoint, r, policy, candidate, champion, v.calibration_ok, v.insufficient)
    )
    return replace(v, verdict=_verdict_word(v), reasons=tuple(reasons))


def _endpoint_numbers(r: EndpointStats, out: RuleResult, i: int) -> EndpointVerdict:
    """The endpoint's numbers and flags, its verdict and reasons left empty."""
    t = r.test
    return EndpointVerdict(
        endpoint=r.endpoint,
        n=t.n_cases + t.n_controls,
        brier_delta=r.brier_delta,
        **{name: getattr(t, name) for name in _TEST_NUMBERS},
        **_model_numbers("candidate", t.auc_a, r.candidate),
        **_model_numbers("champion", t.auc_b, r.champion),
        **{name: getattr(out, name)[0, i].item() for name in _RULE_NUMBERS},
        verdict="",
        reasons=(),
    )


def _model_numbers(side: str, auc: float, own: ModelStats) -> dict[str, Any]:
    """One model's figures under the record's names for its side (``auc_candidate``, ``citl_champion``)."""
    cal = own.calibration
    return {
        f"auc_{side}": auc,
        f"ci_auc_{side}": own.ci_auc,
        f"brier_{side}": own.brier,
        f"citl_{side}": cal.citl,
        f"ci_citl_{side}": cal.citl_ci,
        f"slope_{side}": cal.slope,
        f"ci_slope_{side}": cal.slope_ci,
        f"calibration_p_{side}": cal.p_value,
    }


#: What the record keeps of the paired test, under the test's own names.
_TEST_NUMBERS = ("n_cases", "n_controls", "delta", "ci_delta", "se_delta", "z")

#: What the rule finds per endpoint that the record keeps, under the rule's own names (row 0,
#: the endpoint's column, as Python bools and floats).
_RULE_NUMBERS = (
    "primary",
    "insufficient",
    "p_better",
    "p_worse",
    "p_better_adjusted",
    "p_worse_adjusted",
    "margin",
    "ni_lower",
    "superior",
    "worse",
    "non_inferior",
    "calibration_ok",
)


def _verdict_word(v: EndpointVerdict) -> str:
    """The verdict word: ``insufficient evidence``, ``worse``, ``superior``, ``non-inferior`` or the rest."""
    if v.insufficient:
        return INSUFFICIENT_VERDICT
    if v.worse:
        return "worse"
    if v.superior and v.non_inferior:
        return "superior"
    if v.non_inferior:
        return "non-inferior"
    return "inferiority-not-excluded"


def _subgroup_verdicts(by_level: SubgroupInputs | None, out: RuleResult) -> list[SubgroupVerdict]:
    """One verdict per endpoint and subgroup level (row 0 of the rule's subgroup arrays)."""
    if by_level is None:
        return []
    verdicts = []
    for j, cell in enumerate(by_level.cells):
        cases, controls = float(by_level.n_cases[0, j]), float(by_level.n_controls[0, j])
        tested, worse = bool(out.subgroup_tested[0, j]), bool(out.subgroup_worse[0, j])
        auc_candidate, auc_champion = float(by_level.auc_candidate[0, j]), float(by_level.auc_champion[0, j])
        verdicts.append(
            SubgroupVerdict(
                endpoint=cell.endpoint,
                subgroup=cell.subgroup,
                level=cell.level,
                n=int(cases + controls),
                n_cases=int(cases),
                auc_candidate=auc_candidate,
                auc_champion=auc_champion,
                delta=auc_candidate - auc_champion,
                p_worse=float(out.subgroup_p_worse[0, j]),
                p_worse_adjusted=float(out.subgroup_p_worse_adjusted[0, j]),
                tested=tested,
                worse=worse,
                verdict="worse" if worse else ("not shown worse" if tested else "not tested"),
            )
        )
    return verdicts
