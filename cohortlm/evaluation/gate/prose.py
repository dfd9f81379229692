"""The gate's decision in words: the reasons per endpoint and over all endpoints, and design notes.

Every sentence is built from the statistics (:class:`EndpointStats`) and the
verdicts (:class:`EndpointVerdict`); nothing here decides anything.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from scipy.stats import norm

from cohortlm.evaluation.gate.policy import GatePolicy
from cohortlm.evaluation.gate.record import EndpointVerdict, SubgroupVerdict
from cohortlm.evaluation.gate.stats import EndpointStats
from cohortlm.evaluation.stats.calibration import CalibrationResult

__all__ = [
    "ADJUSTMENT_NAMES",
    "calibration_reason",
    "calibration_summary",
    "design_notes",
    "evidence_reasons",
    "headline",
    "subgroup_summary",
    "test_reasons",
    "test_summary",
]

ADJUSTMENT_NAMES = {"holm": "Holm-adjusted", "bh": "BH-adjusted", "none": "unadjusted"}


def headline(promote: bool, candidate: str, champion: str, policy: GatePolicy, n_endpoints: int) -> str:
    """The decision's first sentence."""
    return (
        f"{'Promote' if promote else 'Do not promote'} {candidate} over {champion} "
        f"(paired DeLong on the {policy.split} split, {n_endpoints} endpoint(s))."
    )


def _fmt(x: float, digits: int = 3) -> str:
    return "n/a" if not math.isfinite(x) else f"{x:.{digits}f}"


def _fmt_signed(x: float, digits: int = 3) -> str:
    return "n/a" if not math.isfinite(x) else f"{x:+.{digits}f}"


def _fmt_ci(ci: tuple[float, float], digits: int = 3, *, signed: bool = False) -> str:
    f = _fmt_signed if signed else _fmt
    return f"{f(ci[0], digits)} to {f(ci[1], digits)}"


def _fmt_p(p: float) -> str:
    """``p = 0.0123`` or ``p < 0.0001``."""
    if not math.isfinite(p):
        return "p n/a"
    return "p < 0.0001" if p < 1e-4 else f"p = {p:.4f}"


def test_reasons(
    v: EndpointVerdict,
    r: EndpointStats,
    policy: GatePolicy,
    candidate: str,
    champion: str,
    adj_name: str,
    alpha_look: float,
) -> list[str]:
    """The AUCs and ΔAUC in words, then why the endpoint is insufficient, or its three tests' outcomes."""
    ep = v.endpoint
    level_pct = f"{policy.conf_level * 100:g}%"
    reasons = [
        f"{ep}: AUC {candidate} {_fmt(v.auc_candidate)} ({level_pct} CI {_fmt_ci(v.ci_auc_candidate)}) vs "
        f"{champion} {_fmt(v.auc_champion)} ({_fmt_ci(v.ci_auc_champion)}), n = {v.n} ({v.n_cases} cases); "
        f"ΔAUC {_fmt_signed(v.delta)} ({level_pct} CI {_fmt_ci(v.ci_delta, signed=True)}), "
        f"z = {_fmt(v.z, 2)}."
    ]
    if v.insufficient:
        why = r.why_undefined or (
            f"{v.n_cases} cases and {v.n_controls} controls; the policy needs {policy.min_cases} of each"
        )
        effect = "it blocks promotion" if policy.insufficient == "block" else "it is left out of every test"
        reasons.append(f"{ep}: insufficient evidence on the {policy.split} split ({why}); {effect}.")
        return reasons
    one_sided = f"one-sided {_fmt_p(v.p_worse)}; {adj_name} {_fmt_p(v.p_worse_adjusted)}"
    if v.worse:
        reasons.append(f"{ep}: significantly worse ({one_sided}, below α = {policy.alpha:g}).")
    better = f"one-sided {_fmt_p(v.p_better)}; {adj_name} {_fmt_p(v.p_better_adjusted)}"
    if not v.primary:
        reasons.append(f"{ep}: a safety endpoint (not primary): not tested for superiority.")
    elif v.superior:
        reasons.append(f"{ep}: significantly better ({better}, below this look's α = {alpha_look:.4g}).")
    else:
        reasons.append(
            f"{ep}: not significantly better ({better}, not below this look's α = {alpha_look:.4g})."
        )
    bound = f"one-sided {(1 - policy.ni_level) * 100:g}% lower bound {_fmt_signed(v.ni_lower)}"
    if v.non_inferior:
        reasons.append(f"{ep}: non-inferior ({bound} ≥ −{v.margin:.3f}, the margin).")
    else:
        reasons.append(f"{ep}: non-inferiority not shown ({bound} < −{v.margin:.3f}, the margin).")
    return reasons


def calibration_reason(
    ep: str,
    r: EndpointStats,
    policy: GatePolicy,
    candidate: str,
    champion: str,
    ok: bool,
    insufficient: bool,
) -> str:
    def one(cal: CalibrationResult) -> str:
        return (
            f"CITL {_fmt_signed(cal.citl, 2)} ({_fmt_ci(cal.citl_ci, 2, signed=True)}), "
            f"slope {_fmt(cal.slope, 2)} ({_fmt_ci(cal.slope_ci, 2)})"
        )

    of_candidate, of_champion = one(r.candidate.calibration), one(r.champion.calibration)
    both = f"calibration of {candidate}: {of_candidate}; of {champion}: {of_champion}"
    brier = f"Brier {_fmt(r.candidate.brier, 4)} vs {_fmt(r.champion.brier, 4)}"
    if not math.isfinite(r.candidate.brier):
        return f"{ep}: calibration not available (scores must be probabilities in [0, 1])."
    if policy.calibration == "none" or insufficient:
        return f"{ep}: {both}; {brier} (not judged)."
    if policy.calibration == "brier_margin":
        state = "within" if ok else "exceeds"
        return (
            f"{ep}: {both}; {brier} (Δ {_fmt_signed(r.brier_delta, 4)}, {state} the allowed "
            f"+{policy.brier_margin:g})."
        )
    low, high = policy.slope_range
    tol = f"CITL within ±{policy.citl_tolerance:g}, slope within {low:g}–{high:g}"
    state = "not shown to be outside" if ok else "shown to be outside"
    return f"{ep}: {both}; {brier}. The candidate's calibration is {state} the tolerance ({tol})."


def _names(vs: Sequence[EndpointVerdict]) -> str:
    return ", ".join(v.endpoint for v in vs)


def design_notes(verdicts: Sequence[EndpointVerdict], policy: GatePolicy) -> list[str]:
    """Where the policy asks more than the data can show: say so, with the numbers."""
    notes = []
    z_ni = float(norm.isf(policy.ni_level))
    for v in verdicts:
        if v.insufficient or not math.isfinite(v.se_delta) or v.se_delta <= 0:
            continue
        p_equal = float(norm.cdf(v.margin / v.se_delta - z_ni))
        if p_equal < 0.8:
            notes.append(
                f"{v.endpoint}: with {v.n_cases} cases the ΔAUC standard error is {v.se_delta:.3f}, so an "
                f"equally good candidate shows non-inferiority (margin {v.margin:.3f}) only about "
                f"{p_equal:.0%} of the time; consider a larger test split or margin_rule: cases."
            )
    return notes


def evidence_reasons(verdicts: Sequence[EndpointVerdict], policy: GatePolicy, look: int) -> list[str]:
    """Why the split or the evidence stops the gate: too many looks, endpoints with too few cases."""
    reasons = []
    if policy.max_looks is not None and look > policy.max_looks:
        reasons.append(
            f"This is look {look} at this {policy.split} split; the policy allows {policy.max_looks}. "
            "The gate refuses to promote on a worn-out split: gate on a fresh test split of patients no "
            "model compared has seen (new patients, or a re-split with a new seed after retraining every "
            "model compared, the champion included, on the new training split)."
        )
    insufficient = [v for v in verdicts if v.insufficient]
    if insufficient:
        effect = "so the gate fails" if policy.insufficient == "block" else "left out of every test"
        reasons.append(
            f"Insufficient evidence on {len(insufficient)} endpoint(s) ({_names(insufficient)}): fewer than "
            f"{policy.min_cases} cases or controls on the {policy.split} split; {effect}."
        )
    return reasons


def test_summary(
    verdicts: Sequence[EndpointVerdict], policy: GatePolicy, adj_name: str, *, look: int, alpha_look: float
) -> list[str]:
    """The three tests over all endpoints: none worse, all non-inferior, enough superior."""
    assessed = [v for v in verdicts if not v.insufficient]
    worse = [v for v in verdicts if v.worse]
    not_noninf = [v for v in assessed if not v.non_inferior]
    superior = [v for v in verdicts if v.superior]
    primary = [v for v in assessed if v.primary]
    reasons: list[str] = []
    if worse:
        reasons.append(
            f"{len(worse)} endpoint(s) significantly worse ({_names(worse)}; one-sided, {adj_name}, "
            f"α = {policy.alpha:g})."
        )
    else:
        reasons.append(f"No endpoint is significantly worse (one-sided, {adj_name}, α = {policy.alpha:g}).")
    ni = f"one-sided {(1 - policy.ni_level) * 100:g}% lower bound of ΔAUC ≥ −margin"
    if not_noninf:
        reasons.append(
            f"Non-inferiority not shown for {len(not_noninf)} endpoint(s) ({_names(not_noninf)}; {ni})."
        )
    elif assessed:
        reasons.append(f"All {len(assessed)} assessed endpoint(s) are non-inferior ({ni}).")
    sup_text = f" ({_names(superior)})" if superior else ""
    reasons.append(
        f"{len(superior)} of {len(primary)} primary endpoint(s) significantly better{sup_text} at this "
        f"look's α = {alpha_look:.4g} (look {look} at this split, {policy.alpha_spending} spending of "
        f"α = {policy.alpha:g}); {policy.min_superior} required "
        f"({'met' if len(superior) >= policy.min_superior else 'not met'})."
    )
    return reasons


def calibration_summary(verdicts: Sequence[EndpointVerdict], policy: GatePolicy) -> str:
    """Calibration over the assessed endpoints: not judged, fails on some, or holds."""
    bad_calib = [v for v in verdicts if not v.insufficient and not v.calibration_ok]
    if policy.calibration == "none":
        return "Calibration is not judged (calibration: none)."
    if bad_calib:
        what = (
            f"Brier score higher than the champion's by more than {policy.brier_margin:g}, or not available"
            if policy.calibration == "brier_margin"
            else "shown to be outside the tolerance, or not available"
        )
        return f"Calibration fails on {len(bad_calib)} endpoint(s) ({_names(bad_calib)}): {what}."
    return "Calibration holds on every assessed endpoint."


def subgroup_summary(verdicts: Sequence[SubgroupVerdict], policy: GatePolicy, adj_name: str) -> str:
    """The subgroup rule over every endpoint and declared level: worse somewhere, or not."""
    tested = [v for v in verdicts if v.tested]
    untested = len(verdicts) - len(tested)
    level = f"α = {policy.subgroup_level:g}"
    family = f"one-sided paired DeLong, {adj_name} over {len(tested)} tested level(s), {level}"
    small = (
        f"; {untested} level(s) with fewer than {policy.min_cases} cases or controls not tested"
        if untested
        else ""
    )
    worse = [v for v in verdicts if v.worse]
    if not worse:
        return f"No declared subgroup level is significantly worse ({family}{small})."
    listed = "; ".join(
        f"{v.endpoint} in {v.subgroup} = {v.level} "
        f"(ΔAUC {_fmt_signed(v.delta)}, {_fmt_p(v.p_worse_adjusted)})"
        for v in worse
    )
    effect = "so the gate fails" if policy.subgroups == "test" else "reported only (subgroups: none)"
    return f"Significantly worse in {len(worse)} subgroup level(s) ({family}{small}): {listed}; {effect}."
