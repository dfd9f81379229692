"""Operating characteristics of a gate policy: the standard cells, simulated, as a table.

One function, :func:`gate_power`, serves ``benchmarks/bench_gate.py`` (the RA study,
the default and the first default policy) and ``cohortlm gate-power --policy P --n N``
(a user's policy and test-split size). Each cell is a truth (:class:`Cell`), simulated
once (:mod:`cohortlm.evaluation.stats.simulate`) and judged by every policy given with the
gate's own rule (:func:`cohortlm.evaluation.gate.apply_policy`).

The cells, for endpoints with the study's prevalences (ΔAUC is the candidate's
true advantage; the champion's AUC is 0.75; models correlated ρ = 0.7):

- ``h0``: the candidate equals the champion (false promotion; also ρ 0.5 and 0.9);
- ``power``: +0.05 or +0.02 on every endpoint, +0.05 on 3 endpoints (the first 3
  in study order, the 3 most common, the 3 rarest), equal elsewhere;
- ``worse``: −0.05 on the least common endpoint with prevalence ≥ 25 %, or −0.10 on
  the rarest, equal or +0.05 elsewhere;
- ``miscalibrated``: +0.05 everywhere but predicting twice the true risk on one endpoint;
- ``looks``: 20 equal candidates gated in turn against one champion on one split;
- ``subgroup`` (:func:`subgroup_cells`, with the study's declared subgroups): how often
  the subgroup rule blocks an equal or better candidate (false block), how often it
  blocks one 0.10 worse among men on the 3 most common endpoints but 0.02 better
  overall (power), and the default's false promotion and power with the rule in place.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import norm

from cohortlm.evaluation.gate import GatePolicy, alpha_for_look, apply_policy, endpoint_margins
from cohortlm.evaluation.stats.simulate import (
    RA_PREVALENCES,
    RA_SUBGROUP_SHARES,
    GateStats,
    Scenario,
    simulate_gate_stats,
)

__all__ = ["Cell", "design_table", "gate_power", "markdown_table", "standard_cells", "subgroup_cells"]


@dataclass(frozen=True)
class Cell:
    """One truth to simulate and what a good gate does there.

    Attributes:
        key: Short name.
        description: The truth in words.
        kind: ``h0``, ``power``, ``worse``, ``miscalibrated``, ``looks`` or ``subgroup``.
        scenario: What to simulate.
        target: The rate a good gate stays at or below (``≤``) or reaches (``≥``).
        bound: ``"max"`` (rate ≤ target) or ``"min"`` (≥ target).
        curve: ``(series, ΔAUC)`` when the cell is a point of the power curve.
        measure: The rate the target is on: ``promoted`` (share of splits promoted) or
            ``subgroup_blocked`` (share in which the subgroup rule finds a level worse).
    """

    key: str
    description: str
    kind: str
    scenario: Scenario
    target: float
    bound: str
    curve: tuple[str, float] | None = None
    measure: str = "promoted"


def _vec(k: int, default: float, changes: Mapping[int, float]) -> tuple[float, ...]:
    return tuple(changes.get(i, default) for i in range(k))


def standard_cells(
    *,
    n: int = 2263,
    prevalences: Sequence[float] = RA_PREVALENCES,
    names: Sequence[str] | None = None,
    extra_n: Sequence[int] = (),
) -> list[Cell]:
    """The standard cells for a study with ``prevalences`` and a test split of ``n`` patients.

    Args:
        n: Patients in the gating split.
        prevalences: Share of cases per endpoint, in study order.
        names: Endpoint names (for the descriptions); default ``e1``, ``e2``, ….
        extra_n: More split sizes at which to measure false promotion.
    """
    prev = tuple(float(p) for p in prevalences)
    k = len(prev)
    nm = list(names) if names is not None else [f"e{i + 1}" for i in range(k)]
    base = Scenario(n=n, prevalences=prev)
    by_prev = sorted(range(k), key=lambda i: prev[i])
    rarest3, common3 = by_prev[:3], by_prev[-3:][::-1]
    first3 = list(range(min(3, k)))
    common = [i for i in by_prev if prev[i] >= 0.25]
    rare = by_prev[0]
    cells = [
        Cell("h0", "equal everywhere (false promotion)", "h0", base, 0.05, "max", ("all endpoints", 0.0)),
        Cell("h0_rho05", "equal everywhere, ρ = 0.5", "h0", base.with_(model_correlation=0.5), 0.05, "max"),
        Cell("h0_rho09", "equal everywhere, ρ = 0.9", "h0", base.with_(model_correlation=0.9), 0.05, "max"),
    ]
    cells += [
        Cell(f"h0_n{m}", f"equal everywhere, n = {m:,}", "h0", base.with_(n=m), 0.05, "max")
        for m in extra_n
        if m != n
    ]
    for d in (0.01, 0.02, 0.03, 0.05):
        target, bound = {0.05: (0.95, "min")}.get(d, (math.nan, "min"))
        cells.append(
            Cell(f"all_{d:g}", f"+{d:g} on all {k}", "power", base.with_(delta=d), target, bound, ("all", d))
        )
    for d in (0.02, 0.03, 0.05):
        target = 0.8 if d == 0.05 else math.nan
        desc = f"+{d:g} on {', '.join(nm[i] for i in first3)} (first 3), equal elsewhere"
        sc = base.with_(delta=_vec(k, 0.0, dict.fromkeys(first3, d)))
        cells.append(Cell(f"first3_{d:g}", desc, "power", sc, target, "min", ("first 3", d)))
    for key, idx, label in (("common3", common3, "3 most common"), ("rarest3", rarest3, "3 rarest")):
        desc = f"+0.05 on {', '.join(nm[i] for i in idx)} ({label}), equal elsewhere"
        sc = base.with_(delta=_vec(k, 0.0, dict.fromkeys(idx, 0.05)))
        cells.append(Cell(key, desc, "power", sc, 0.8, "min"))
    worse: list[tuple[str, int, float]] = []
    if common:
        worse.append(("common", common[0], -0.05))
    worse.append(("rare", rare, -0.10))
    for label, i, d in worse:
        for rest, rest_name in ((0.0, "equal"), (0.05, "+0.05")):
            desc = f"{d:+g} on {nm[i]} ({prev[i]:.1%}), {rest_name} elsewhere"
            sc = base.with_(delta=_vec(k, rest, {i: d}))
            cells.append(Cell(f"worse_{label}_{rest_name}", desc, "worse", sc, 0.05, "max"))
    cells.append(
        Cell(
            "miscalibrated",
            "+0.05 everywhere, 2× the true risk on one endpoint (worst endpoint shown)",
            "miscalibrated",
            base.with_(delta=0.05),
            0.05,
            "max",
        )
    )
    cells.append(
        Cell(
            "looks20",
            "20 equal candidates in turn on one split (any promoted)",
            "looks",
            base.with_(n_candidates=20),
            0.05,
            "max",
        )
    )
    return cells


def _judge(st: GateStats, policy: GatePolicy, names: Sequence[str]) -> dict[str, Any]:
    promoted = np.zeros(st.auc_candidate.shape[1], dtype=bool)
    blocked = np.zeros(st.auc_candidate.shape[1], dtype=bool)
    for c in range(st.auc_candidate.shape[0]):
        out = apply_policy(st.rule_inputs(c), policy, names, look=c + 1, subgroups=st.subgroup_inputs(c))
        promoted |= out.promote
        blocked |= out.subgroup_worse.any(axis=1)
    rates = {"promoted": float(promoted.mean()), "reps": int(promoted.size)}
    if st.levels is not None:
        rates["subgroup_blocked"] = float(blocked.mean())
    return rates


def _run_cell(args: tuple[Cell, dict[str, GatePolicy], int, int, list[str]]) -> dict[str, Any]:
    cell, policies, reps, seed, names = args
    alt = 2.0 if cell.kind == "miscalibrated" else None
    st = simulate_gate_stats(cell.scenario, reps=reps, seed=seed, alt_risk_multiplier=alt)
    rates: dict[str, Any] = {}
    for pname, policy in policies.items():
        if alt is None:
            rates[pname] = _judge(st, policy, names)
            continue
        per_ep = [_judge(st.with_alt_calibration(e), policy, names)["promoted"] for e in range(len(names))]
        worst = int(np.argmax(per_ep))
        rates[pname] = {
            "promoted": per_ep[worst],
            "reps": reps,
            "per_endpoint": per_ep,
            "worst": names[worst],
        }
    return {
        "key": cell.key,
        "description": cell.description,
        "kind": cell.kind,
        "n": cell.scenario.n,
        "rho": cell.scenario.model_correlation,
        "target": None if math.isnan(cell.target) else cell.target,
        "bound": cell.bound,
        "curve": list(cell.curve) if cell.curve else None,
        "measure": cell.measure,
        "rates": rates,
    }


def subgroup_cells(
    *,
    n: int = 2263,
    prevalences: Sequence[float] = RA_PREVALENCES,
    names: Sequence[str] | None = None,
    shares: tuple[tuple[float, ...], ...] = RA_SUBGROUP_SHARES,
    men: tuple[int, int] = (0, 1),
) -> list[Cell]:
    """The subgroup rule's cells: the study's declared subgroups with their shares of patients.

    Args:
        n: Patients in the gating split.
        prevalences: Share of cases per endpoint, in study order.
        names: Endpoint names (for the descriptions).
        shares: Per declared subgroup, the share of patients per level (the RA study's by default:
            sex, age band, anti-CCP).
        men: ``(subgroup, level)`` of the harmed level (the RA study's men, 15 %).
    """
    prev = tuple(float(p) for p in prevalences)
    k = len(prev)
    nm = list(names) if names is not None else [f"e{i + 1}" for i in range(k)]
    base = Scenario(n=n, prevalences=prev, subgroup_shares=shares)
    common3 = sorted(range(k), key=lambda i: prev[i])[-3:][::-1]
    share = shares[men[0]][men[1]]
    # 0.10 worse among men and 0.02 better overall: the rest get (0.02 + share × 0.10) / (1 − share).
    rest = (0.02 + share * 0.10) / (1 - share)
    harmed = base.with_(
        delta=_vec(k, 0.02, dict.fromkeys(common3, rest)),
        level_delta=(men[0], men[1], _vec(k, 0.02, dict.fromkeys(common3, -0.10))),
    )
    which = ", ".join(nm[i] for i in common3)
    return [
        Cell(
            "sub_h0", "equal everywhere: false block", "subgroup", base, 0.05, "max", None, "subgroup_blocked"
        ),
        Cell(
            "sub_better",
            "+0.02 on all 8 in every level: false block",
            "subgroup",
            base.with_(delta=0.02),
            0.05,
            "max",
            None,
            "subgroup_blocked",
        ),
        Cell(
            "sub_all_0.05", "+0.05 on all 8 in every level", "subgroup", base.with_(delta=0.05), 0.95, "min"
        ),
        Cell(
            "sub_common3",
            "+0.05 on the 3 most common endpoints, equal elsewhere",
            "subgroup",
            base.with_(delta=_vec(k, 0.0, dict.fromkeys(common3, 0.05))),
            0.8,
            "min",
        ),
        Cell(
            "sub_men",
            f"-0.10 among men ({share:.0%}) on {which} (3 most common), +0.02 overall on all 8: blocked",
            "subgroup",
            harmed,
            0.8,
            "min",
            None,
            "subgroup_blocked",
        ),
    ]


def gate_power(
    policies: Mapping[str, GatePolicy],
    cells: Sequence[Cell],
    *,
    reps: int = 2000,
    seed: int = 0,
    names: Sequence[str] | None = None,
    processes: int | None = None,
) -> list[dict[str, Any]]:
    """Simulate every cell once and judge it by every policy.

    Args:
        policies: ``{name: policy}``.
        cells: From :func:`standard_cells`.
        reps: Replicates per cell.
        seed: Base seed (cell ``i`` uses ``seed + i``).
        names: Endpoint names (the policies' ``primary`` and ``margins`` refer to them).
        processes: Worker processes; default ``min(2, cpu count)``; 1 runs in this process.

    Returns:
        One row per cell: ``key``, ``description``, ``kind``, ``n``, ``rho``, ``target``,
        ``bound``, ``curve`` and ``rates`` (``{policy: {"promoted": share, "reps": R}}``).
    """
    k = cells[0].scenario.n_endpoints if cells else 0
    nm = list(names) if names is not None else [f"e{i + 1}" for i in range(k)]
    jobs = [(cell, dict(policies), int(reps), int(seed) + i, nm) for i, cell in enumerate(cells)]
    workers = processes if processes is not None else min(2, os.cpu_count() or 1)
    if workers <= 1:
        return [_run_cell(job) for job in jobs]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(_run_cell, jobs))


def design_table(
    policy: GatePolicy,
    *,
    n: int,
    prevalences: Sequence[float] = RA_PREVALENCES,
    names: Sequence[str] | None = None,
    reps: int = 200,
    seed: int = 1,
) -> tuple[list[dict[str, Any]], list[str]]:
    """Per endpoint, what the policy can show at this split size, and warnings where it cannot.

    Returns:
        ``(rows, warnings)``. Each row: ``endpoint``, ``prevalence``, ``cases`` (expected),
        ``se_delta`` (simulated, equal models), ``margin``, ``p_ni_equal`` (chance an equal
        endpoint passes non-inferiority), ``mdd80`` (the ΔAUC detected as superior with
        80 % power at the first look, with every primary endpoint tested), ``insufficient``.
    """
    prev = tuple(float(p) for p in prevalences)
    nm = list(names) if names is not None else [f"e{i + 1}" for i in range(len(prev))]
    st = simulate_gate_stats(Scenario(n=n, prevalences=prev), reps=reps, seed=seed)
    se = np.sqrt(np.nanmean(st.var_delta[0], axis=0))
    cases = np.array([n * p for p in prev])
    controls = n - cases
    margins = endpoint_margins(policy, nm, cases[None, :], controls[None, :])[0]
    n_primary = len(policy.primary) if policy.primary else len(prev)
    z_sup = float(norm.isf(alpha_for_look(policy, 1) / n_primary))
    z_ni = float(norm.isf(policy.ni_level))
    rows, warnings = [], []
    for i, ep in enumerate(nm):
        insufficient = bool(min(cases[i], controls[i]) < policy.min_cases)
        p_ni = float(norm.cdf(margins[i] / se[i] - z_ni)) if se[i] > 0 else math.nan
        mdd = (z_sup + float(norm.ppf(0.8))) * float(se[i])
        rows.append(
            {
                "endpoint": ep,
                "prevalence": prev[i],
                "cases": float(cases[i]),
                "se_delta": float(se[i]),
                "margin": float(margins[i]),
                "p_ni_equal": p_ni,
                "mdd80": mdd,
                "insufficient": insufficient,
            }
        )
        if insufficient:
            warnings.append(
                f"{ep}: about {cases[i]:.0f} cases at n = {n:,}, fewer than min_cases = {policy.min_cases}: "
                "its verdict will be 'insufficient evidence' in most runs."
            )
            continue
        if p_ni < 0.9:
            warnings.append(
                f"{ep}: an equally good candidate passes non-inferiority (margin {margins[i]:.3f}) only "
                f"{p_ni:.0%} of the time (ΔAUC SE {se[i]:.3f}); widen the margin or use margin_rule: cases."
            )
        if mdd > 0.05 and (policy.primary is None or ep in policy.primary):
            warnings.append(
                f"{ep}: +0.05 AUC cannot be shown here with 80 % power (that needs +{mdd:.3f}: "
                f"(z {z_sup:.2f} + z 0.84) × SE {se[i]:.3f}); a gain on this endpoint alone "
                "will rarely promote."
            )
    return rows, warnings


def _rate(row: Mapping[str, Any], policy: str) -> str:
    r = row["rates"][policy]
    text = f"{r[row.get('measure', 'promoted')]:.3f}"
    if "worst" in r:
        text += f" ({r['worst']})"
    return text


def _meets(row: Mapping[str, Any], policy: str) -> str:
    if row["target"] is None:
        return ""
    p = row["rates"][policy][row.get("measure", "promoted")]
    ok = p <= row["target"] if row["bound"] == "max" else p >= row["target"]
    return "yes" if ok else "**no**"


def markdown_table(rows: Sequence[Mapping[str, Any]], policies: Sequence[str]) -> str:
    """The operating characteristics as a Markdown table, one column per policy."""
    head = "| truth | n | ρ | target | " + " | ".join(f"{p} | met" for p in policies) + " |"
    sep = "|---|---:|---:|---|" + "---:|---|" * len(policies)
    lines = [head, sep]
    for row in rows:
        target = "" if row["target"] is None else f"{'≤' if row['bound'] == 'max' else '≥'} {row['target']:g}"
        cells = " | ".join(f"{_rate(row, p)} | {_meets(row, p)}" for p in policies)
        lines.append(f"| {row['description']} | {row['n']:,} | {row['rho']:g} | {target} | {cells} |")
    return "\n".join(lines) + "\n"
