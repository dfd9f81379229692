"""The gate's rule: a pure function of a :class:`GatePolicy` and :class:`RuleInputs`.

:func:`apply_policy` works on arrays of shape ``(R, E)``, so that one code path
decides a run (R = 1) and measures a policy on thousands of simulated test splits
(:func:`operating_characteristics`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray
from scipy.stats import norm

from cohortlm.errors import UsageError
from cohortlm.evaluation.gate.policy import GatePolicy
from cohortlm.evaluation.gate.stats import RuleInputs
from cohortlm.evaluation.stats.multitest import adjust_pvalues_rows
from cohortlm.evaluation.subgroups import SubgroupInputs

if TYPE_CHECKING:
    from cohortlm.evaluation.stats.simulate import GateStats, Scenario

__all__ = [
    "OperatingCharacteristics",
    "RuleResult",
    "alpha_for_look",
    "apply_policy",
    "endpoint_margins",
    "operating_characteristics",
]


def alpha_for_look(policy: GatePolicy, look: int) -> float:
    """The superiority level of look ``look`` (1 = the first) at one test split; 0 past the budget.

    Raises:
        UsageError: If ``look`` is below 1.
    """
    if isinstance(look, bool) or int(look) < 1:
        raise UsageError(f"look must be a whole number ≥ 1, got {look!r}")
    k = int(look)
    if policy.max_looks is not None and k > policy.max_looks:
        return 0.0
    if policy.alpha_spending == "none":
        return policy.alpha
    budget = int(policy.max_looks or 1)
    if policy.alpha_spending == "bonferroni":
        return policy.alpha / budget
    total = sum(1.0 / j**2 for j in range(1, budget + 1))
    return policy.alpha / (k * k) / total


def endpoint_margins(
    policy: GatePolicy,
    endpoints: Sequence[str],
    n_cases: NDArray[np.float64] | Sequence[float],
    n_controls: NDArray[np.float64] | Sequence[float],
) -> NDArray[np.float64]:
    """Non-inferiority margins in AUC units, per endpoint (the last axis).

    The ``cases`` rule scales ``margin`` by ``√(margin_cases / n_eff)`` with the
    effective count ``n_eff = cases·controls / (cases + controls)``: the case
    count for a rare endpoint, about half the patients for a balanced one, so
    that the margin follows the ΔAUC standard error, which shrinks as ``1/√n_eff``.
    """
    cases = np.asarray(n_cases, dtype=np.float64)
    controls = np.asarray(n_controls, dtype=np.float64)
    if policy.margin_rule == "absolute":
        out = np.full(cases.shape, policy.margin)
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            n_eff = cases * controls / (cases + controls)
            out = np.minimum(policy.margin * np.sqrt(policy.margin_cases / n_eff), policy.margin_max)
    for i, ep in enumerate(endpoints):
        if ep in policy.margins:
            out[..., i] = policy.margins[ep]
    return out


@dataclass(frozen=True)
class RuleResult:
    """What :func:`apply_policy` finds, as arrays of shape ``(R, E)`` (per endpoint) or ``(R,)``."""

    insufficient: NDArray[np.bool_]
    primary: NDArray[np.bool_]
    z: NDArray[np.float64]
    p_better: NDArray[np.float64]
    p_worse: NDArray[np.float64]
    p_better_adjusted: NDArray[np.float64]
    p_worse_adjusted: NDArray[np.float64]
    superior: NDArray[np.bool_]
    worse: NDArray[np.bool_]
    margin: NDArray[np.float64]
    ni_lower: NDArray[np.float64]
    non_inferior: NDArray[np.bool_]
    calibration_ok: NDArray[np.bool_]
    alpha_look: NDArray[np.float64]
    looks_ok: NDArray[np.bool_]
    promote: NDArray[np.bool_]
    #: per subgroup level (``(R, L)``, L = 0 without subgroups): tested (enough cases and
    #: controls), one-sided p of "worse", adjusted over the tested levels, shown worse
    subgroup_tested: NDArray[np.bool_] = field(default_factory=lambda: np.zeros((0, 0), bool))
    subgroup_p_worse: NDArray[np.float64] = field(default_factory=lambda: np.zeros((0, 0)))
    subgroup_p_worse_adjusted: NDArray[np.float64] = field(default_factory=lambda: np.zeros((0, 0)))
    subgroup_worse: NDArray[np.bool_] = field(default_factory=lambda: np.zeros((0, 0), bool))


def apply_policy(
    stats: RuleInputs,
    policy: GatePolicy,
    endpoints: Sequence[str],
    *,
    look: int | NDArray[np.int64] = 1,
    subgroups: SubgroupInputs | None = None,
) -> RuleResult:
    """The gate's rule on arrays: one row per data set (a run, or a simulated replicate).

    Args:
        stats: The numbers per data set and endpoint.
        policy: The policy.
        endpoints: Endpoint names, in column order.
        look: The look at this split, 1 for the first (a number, or one per row).
        subgroups: The candidate against the champion per declared subgroup level
            (same rows); None when the study declares none.

    Returns:
        A :class:`RuleResult`.

    Raises:
        ValueError: If the policy's calibration rule needs arrays ``stats`` lacks.
    """
    m = np.asarray(stats.n_cases, dtype=np.float64)
    n0 = np.asarray(stats.n_controls, dtype=np.float64)
    delta = np.asarray(stats.auc_candidate, dtype=np.float64) - np.asarray(stats.auc_champion)
    var = np.asarray(stats.var_delta, dtype=np.float64)
    rows, k = delta.shape
    insufficient = (m < policy.min_cases) | (n0 < policy.min_cases) | ~np.isfinite(var) | ~np.isfinite(delta)
    assessed = ~insufficient
    se = np.sqrt(np.maximum(np.where(np.isfinite(var), var, np.nan), 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        # Identical curves (0/0) carry no evidence of a difference (z = 0), as in delong_test.
        z = np.where(delta == 0.0, 0.0, delta / se)
    z = np.where(assessed, z, np.nan)
    p_better = norm.sf(z)
    p_worse = norm.cdf(z)
    primary = np.array([policy.primary is None or ep in policy.primary for ep in endpoints])[None, :]
    primary = np.broadcast_to(primary, (rows, k))
    in_sup = assessed & primary
    looks = np.broadcast_to(np.asarray(look, dtype=np.int64), (rows,))
    alpha_look = np.array([alpha_for_look(policy, int(x)) for x in looks]) if looks.size else np.zeros(0)
    p_better_adj = adjust_pvalues_rows(np.where(in_sup, p_better, np.nan), method=policy.adjustment)
    p_worse_adj = adjust_pvalues_rows(np.where(assessed, p_worse, np.nan), method=policy.adjustment)
    superior = in_sup & (p_better_adj < alpha_look[:, None])
    worse = assessed & (p_worse_adj < policy.alpha)
    margin = endpoint_margins(policy, endpoints, m, n0)
    ni_lower = delta - float(norm.isf(policy.ni_level)) * se
    non_inferior = assessed & (ni_lower >= -margin)
    calibration_ok = _calibration_ok(stats, policy, assessed)
    looks_ok = np.array([policy.max_looks is None or int(x) <= policy.max_looks for x in looks], dtype=bool)
    blocked_by_small = insufficient.any(axis=1) if policy.insufficient == "block" else np.zeros(rows, bool)
    sub_tested, sub_p, sub_p_adj, sub_worse = _subgroup_tests(subgroups, policy, rows)
    blocked_by_subgroup = sub_worse.any(axis=1) if policy.subgroups == "test" else np.zeros(rows, bool)
    promote = (
        looks_ok
        & ~blocked_by_small
        & (superior.sum(axis=1) >= policy.min_superior)
        & assessed.any(axis=1)
        & ~worse.any(axis=1)
        & (non_inferior | insufficient).all(axis=1)
        & (calibration_ok | insufficient).all(axis=1)
        & ~blocked_by_subgroup
    )
    return RuleResult(
        insufficient=insufficient,
        primary=np.array(primary),
        z=z,
        p_better=p_better,
        p_worse=p_worse,
        p_better_adjusted=p_better_adj,
        p_worse_adjusted=p_worse_adj,
        superior=superior,
        worse=worse,
        margin=margin,
        ni_lower=ni_lower,
        non_inferior=non_inferior,
        calibration_ok=calibration_ok,
        alpha_look=alpha_look,
        looks_ok=looks_ok,
        promote=promote,
        subgroup_tested=sub_tested,
        subgroup_p_worse=sub_p,
        subgroup_p_worse_adjusted=sub_p_adj,
        subgroup_worse=sub_worse,
    )


def _subgroup_tests(
    subgroups: SubgroupInputs | None, policy: GatePolicy, rows: int
) -> tuple[NDArray[np.bool_], NDArray[np.float64], NDArray[np.float64], NDArray[np.bool_]]:
    """Per subgroup level: tested, one-sided p(Δ < 0), adjusted over the tested levels, shown worse.

    A level with fewer than ``min_cases`` cases or controls is not tested (the
    endpoints' small-sample guard); the adjustment runs over every endpoint and
    level tested, so that the chance of blocking a candidate equal to the champion
    everywhere stays at ``subgroup_level``.
    """
    if subgroups is None:
        empty = np.zeros((rows, 0))
        return empty.astype(bool), empty, empty.copy(), empty.astype(bool)
    m = np.asarray(subgroups.n_cases, dtype=np.float64)
    n0 = np.asarray(subgroups.n_controls, dtype=np.float64)
    delta = np.asarray(subgroups.auc_candidate, dtype=np.float64) - np.asarray(subgroups.auc_champion)
    var = np.asarray(subgroups.var_delta, dtype=np.float64)
    tested = (m >= policy.min_cases) & (n0 >= policy.min_cases) & np.isfinite(var) & np.isfinite(delta)
    se = np.sqrt(np.maximum(np.where(np.isfinite(var), var, np.nan), 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(delta == 0.0, 0.0, delta / se)
    p_worse = np.where(tested, norm.cdf(z), np.nan)
    p_adj = adjust_pvalues_rows(p_worse, method=policy.adjustment)
    return tested, p_worse, p_adj, tested & (p_adj < policy.subgroup_level)


def _needed(value: NDArray[np.float64] | None, name: str, rule: str) -> NDArray[np.float64]:
    if value is None:
        raise ValueError(f"calibration: {rule} needs the statistics' '{name}'")
    return np.asarray(value, dtype=np.float64)


def _calibration_ok(stats: RuleInputs, policy: GatePolicy, assessed: NDArray[np.bool_]) -> NDArray[np.bool_]:
    if policy.calibration == "none":
        return np.ones(assessed.shape, dtype=bool)
    rule = policy.calibration
    if rule == "brier_margin":
        diff = _needed(stats.brier_candidate, "brier_candidate", rule) - _needed(
            stats.brier_champion, "brier_champion", rule
        )
        return np.isfinite(diff) & (diff <= policy.brier_margin)
    # Bonferroni over the two parameters of every assessed endpoint; the interval must lie
    # wholly outside the tolerance for the gate to call calibration off.
    tests = np.maximum(2 * assessed.sum(axis=1, keepdims=True), 1)
    zc = norm.isf(policy.calibration_level / tests / 2.0)
    citl, se_citl = _needed(stats.citl, "citl", rule), _needed(stats.se_citl, "se_citl", rule)
    slope, se_slope = _needed(stats.slope, "slope", rule), _needed(stats.se_slope, "se_slope", rule)
    low_s, high_s = policy.slope_range
    tol = policy.citl_tolerance
    off = (
        (citl - zc * se_citl > tol)
        | (citl + zc * se_citl < -tol)
        | (slope + zc * se_slope < low_s)
        | (slope - zc * se_slope > high_s)
    )
    finite = np.isfinite(citl) & np.isfinite(se_citl) & np.isfinite(slope) & np.isfinite(se_slope)
    return finite & ~off


@dataclass(frozen=True)
class OperatingCharacteristics:
    """How often a policy promoted in simulated test splits.

    Attributes:
        promoted: Share of replicates promoted (at any look).
        mc_se: Monte Carlo standard error of ``promoted``.
        reps: Replicates.
        per_look: Share promoted at each look.
        insufficient: Share of replicates in which each endpoint was insufficient (first look).
    """

    promoted: float
    mc_se: float
    reps: int
    per_look: list[float]
    insufficient: list[float]


def operating_characteristics(
    policy: GatePolicy,
    scenario: Scenario,
    *,
    reps: int = 2000,
    seed: int = 0,
    endpoints: Sequence[str] | None = None,
    stats: GateStats | None = None,
) -> OperatingCharacteristics:
    """How often ``policy`` promotes under ``scenario``, by simulation (:mod:`cohortlm.evaluation.stats`).

    With ``scenario.n_candidates`` > 1 the candidates are gated in turn on the same
    split (look 1, 2, …) and a replicate counts as promoted if any look promoted.

    Args:
        policy: The policy.
        scenario: The study and truth.
        reps: Replicates.
        seed: Random seed.
        endpoints: Endpoint names (for ``primary`` and ``margins``); default ``e1``, ``e2``, ….
        stats: Simulated statistics to reuse
            (from :func:`~cohortlm.evaluation.stats.simulate.simulate_gate_stats`).
    """
    from cohortlm.evaluation.stats.simulate import simulate_gate_stats

    st = stats if stats is not None else simulate_gate_stats(scenario, reps=reps, seed=seed)
    names = list(endpoints) if endpoints is not None else [f"e{i + 1}" for i in range(scenario.n_endpoints)]
    any_promoted = np.zeros(st.auc_candidate.shape[1], dtype=bool)
    per_look = []
    insufficient = np.zeros(st.auc_candidate.shape[2])
    for c in range(st.auc_candidate.shape[0]):
        out = apply_policy(st.rule_inputs(c), policy, names, look=c + 1, subgroups=st.subgroup_inputs(c))
        any_promoted |= out.promote
        per_look.append(float(out.promote.mean()))
        if c == 0:
            insufficient = out.insufficient.mean(axis=0)
    rate = float(any_promoted.mean())
    n = any_promoted.size
    return OperatingCharacteristics(
        promoted=rate,
        mc_se=math.sqrt(rate * (1 - rate) / n) if n else math.nan,
        reps=n,
        per_look=per_look,
        insufficient=[float(x) for x in insufficient],
    )
