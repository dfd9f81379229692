"""Simulated gating statistics: many replicate test splits of a study, vectorised.

The simulation answers "how often would the gate promote?" before a run. One
:class:`Scenario` describes a study and a truth (prevalences, correlated
endpoints, the champion's AUC, the candidate's ΔAUC and calibration per
endpoint, the correlation of the two models' scores); :func:`simulate_gate_stats`
draws ``reps`` test splits and returns, per replicate and endpoint, the numbers
the gate decides on (:class:`GateStats`). :mod:`cohortlm.evaluation.gate` applies a
policy to them with the same code that decides a real run.

The data model (binormal, the usual one for ROC power calculations):

- patient ``i`` has a latent disease factor ``F_i``; endpoint ``e`` is a case
  when ``s_e·(√r·F_i + √(1−r)·ε_ie)`` exceeds the quantile that gives its
  prevalence, so endpoints of one patient are correlated (``r`` =
  ``endpoint_correlation``; ``s_e = −1`` for remission/low endpoints, whose
  cases are the other end of disease activity);
- a model's score for endpoint ``e`` is ``μ·y + noise`` with standard normal
  noise; ``μ = √2·Φ⁻¹(AUC)`` gives the wanted AUC. The champion's and the
  candidate's noise are correlated ``ρ`` (``model_correlation``) within class;
- each score maps to its true probability ``σ(logit π + μ·x − μ²/2)``, so both
  models are perfectly calibrated unless ``risk_multiplier`` scales the
  candidate's risk (``min(k·p, 0.999)``);
- declared subgroups (``subgroup_shares``) split the patients into levels of fixed
  sizes (patients are exchangeable, so which ones does not matter; the cases per
  level vary). The candidate's ΔAUC inside one level (``level_delta``) may differ
  from ``delta``, which then holds for the patients outside that level; the gate
  gets the paired DeLong numbers per endpoint and level, as in a run
  (:func:`cohortlm.evaluation.subgroups.paired_subgroup_stats`).

The DeLong statistics are computed from placements (ranks) batched over
replicates; scores are continuous, so there are no ties and the numbers equal
:func:`cohortlm.evaluation.stats.delong.delong_test` (tests/evaluation check this).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field, replace

import numpy as np
from numpy.typing import NDArray
from scipy.stats import norm

from cohortlm.evaluation.gate.stats import RuleInputs
from cohortlm.evaluation.stats.calibration import recalibration_batch
from cohortlm.evaluation.subgroups import SubgroupCell, SubgroupInputs

__all__ = [
    "RA_PREVALENCES",
    "RA_SIGNS",
    "RA_SUBGROUP_SHARES",
    "GateStats",
    "Scenario",
    "cases_per_endpoint",
    "expected_se_delta",
    "simulate_gate_stats",
]

# The RA study's 8 endpoints (ra_iorra, study order): prevalence on the test split and
# whether a case is the high (+1) or the remission / low (−1) end of disease activity.
RA_PREVALENCES: tuple[float, ...] = (0.055, 0.384, 0.094, 0.469, 0.038, 0.269, 0.034, 0.436)
RA_SIGNS: tuple[int, ...] = (1, -1, 1, -1, 1, -1, 1, -1)
#: The RA study's declared subgroups (ra_iorra.yaml): the share of patients per level of sex
#: (female, male), age band (<50, 50-<65, >=65) and anti-CCP (negative, positive; 5 % unknown).
RA_SUBGROUP_SHARES: tuple[tuple[float, ...], ...] = ((0.85, 0.15), (0.26, 0.43, 0.31), (0.24, 0.71))


@dataclass(frozen=True)
class Scenario:
    """A study and a truth to simulate.

    Attributes:
        n: Patients in the gating (test) split.
        prevalences: Share of cases per endpoint.
        auc_champion: The champion's true AUC on every endpoint.
        delta: The candidate's true ΔAUC per endpoint (a number applies to all).
        risk_multiplier: The candidate's predicted risk is this many times the
            true risk, per endpoint (1 = calibrated).
        model_correlation: Correlation ρ of the two models' scores within class.
        endpoint_correlation: Correlation of the endpoints' latent variables.
        signs: +1 where a case is the high end of the latent factor, −1 the low end.
        n_candidates: Candidates gated in turn against the same champion on the same
            split (the repeated-look scenario); 1 otherwise.
        subgroup_shares: Per declared subgroup, the share of patients in each level (a
            subgroup's shares may sum to less than 1: the rest are in no level); empty: none.
        level_delta: ``(subgroup, level, ΔAUC per endpoint)``: the candidate's true ΔAUC
            inside that level; ``delta`` then applies to everyone else. None: ``delta``
            everywhere.
    """

    n: int = 2263
    prevalences: tuple[float, ...] = RA_PREVALENCES
    auc_champion: float = 0.75
    delta: float | tuple[float, ...] = 0.0
    risk_multiplier: float | tuple[float, ...] = 1.0
    model_correlation: float = 0.7
    endpoint_correlation: float = 0.5
    signs: tuple[int, ...] = field(default=RA_SIGNS)
    n_candidates: int = 1
    subgroup_shares: tuple[tuple[float, ...], ...] = ()
    level_delta: tuple[int, int, tuple[float, ...]] | None = None

    def __post_init__(self) -> None:
        k = len(self.prevalences)
        if k == 0 or not all(0.0 < p < 1.0 for p in self.prevalences):
            raise ValueError(f"prevalences must be in (0, 1), got {self.prevalences!r}")
        if int(self.n) < 4:
            raise ValueError(f"n must be at least 4, got {self.n!r}")
        if not 0.5 <= self.auc_champion < 1.0:
            raise ValueError(f"auc_champion must be in [0.5, 1), got {self.auc_champion!r}")
        if not -1.0 < self.model_correlation < 1.0:
            raise ValueError(f"model_correlation must be in (-1, 1), got {self.model_correlation!r}")
        if not 0.0 <= self.endpoint_correlation < 1.0:
            raise ValueError(f"endpoint_correlation must be in [0, 1), got {self.endpoint_correlation!r}")
        if len(self.signs) != k:
            object.__setattr__(self, "signs", tuple(RA_SIGNS[i % 2] if i < 8 else 1 for i in range(k)))
        for name in ("delta", "risk_multiplier"):
            value = getattr(self, name)
            vec = (float(value),) * k if isinstance(value, (int, float)) else tuple(map(float, value))
            if len(vec) != k:
                raise ValueError(f"{name} must be a number or one value per endpoint ({k}), got {value!r}")
            object.__setattr__(self, name, vec)
        for d in self.delta:  # type: ignore[union-attr]
            if not 0.0 < self.auc_champion + d < 1.0:
                raise ValueError(f"auc_champion + delta must be in (0, 1), got {self.auc_champion + d!r}")
        if int(self.n_candidates) < 1:
            raise ValueError(f"n_candidates must be at least 1, got {self.n_candidates!r}")
        for shares in self.subgroup_shares:
            if not shares or any(x <= 0 for x in shares) or sum(shares) > 1.0 + 1e-9:
                raise ValueError(f"subgroup_shares must be positive and sum to at most 1, got {shares!r}")
        if self.level_delta is not None:
            g, lv, deltas = self.level_delta
            if not (0 <= g < len(self.subgroup_shares) and 0 <= lv < len(self.subgroup_shares[g])):
                raise ValueError(f"level_delta names no declared level: subgroup {g}, level {lv}")
            if len(deltas) != k or not all(0.0 < self.auc_champion + d < 1.0 for d in deltas):
                raise ValueError(f"level_delta needs one ΔAUC per endpoint ({k}) within (0, 1) of the AUC")

    @property
    def n_levels(self) -> int:
        """Levels over all declared subgroups (per endpoint)."""
        return sum(len(shares) for shares in self.subgroup_shares)

    def level_members(self) -> list[NDArray[np.intp]]:
        """Each level's patients (indices into the split), subgroup by subgroup, level by level.

        Each subgroup splits a fixed random order of the patients (its own, from a
        generator seeded by the subgroup's position), so subgroups are independent.
        """
        out = []
        for g, shares in enumerate(self.subgroup_shares):
            order = np.random.default_rng(1000 + g).permutation(self.n)
            edges = np.round(np.cumsum((0.0, *shares)) * self.n).astype(int)
            out += [np.sort(order[a:b]) for a, b in itertools.pairwise(edges)]
        return out

    @property
    def n_endpoints(self) -> int:
        """Number of endpoints."""
        return len(self.prevalences)

    def with_(self, **changes: object) -> Scenario:
        """A copy with some attributes changed."""
        return replace(self, **changes)  # type: ignore[arg-type]


@dataclass(frozen=True)
class GateStats:
    """Per replicate and endpoint, what the gate decides on. Arrays of shape ``(C, R, E)``.

    ``C`` is the number of candidates gated in turn (1 unless the scenario says
    otherwise), ``R`` the replicates, ``E`` the endpoints.
    """

    n_cases: NDArray[np.int64]
    n_controls: NDArray[np.int64]
    auc_candidate: NDArray[np.float64]
    auc_champion: NDArray[np.float64]
    var_delta: NDArray[np.float64]
    brier_candidate: NDArray[np.float64]
    brier_champion: NDArray[np.float64]
    citl: NDArray[np.float64]
    se_citl: NDArray[np.float64]
    slope: NDArray[np.float64]
    se_slope: NDArray[np.float64]
    alt_calibration: dict[str, NDArray[np.float64]] | None = None
    #: per declared subgroup level, ``(C, R, E × levels)`` arrays (endpoint-major):
    #: n_cases, n_controls, auc_candidate, auc_champion, var_delta; None without subgroups
    levels: tuple[NDArray[np.float64], ...] | None = None

    def with_alt_calibration(self, endpoint: int) -> GateStats:
        """The same replicates with the candidate's calibration on one endpoint replaced by the
        ``alt_risk_multiplier`` version (its risk scaled, its ranking and so its AUC unchanged)."""
        if self.alt_calibration is None:
            raise ValueError("these statistics were simulated without alt_risk_multiplier")
        changed = {}
        for key, alt in self.alt_calibration.items():
            arr = getattr(self, key).copy()
            arr[..., endpoint] = alt[..., endpoint]
            changed[key] = arr
        return replace(self, alt_calibration=None, **changed)

    @property
    def delta(self) -> NDArray[np.float64]:
        """ΔAUC, candidate minus champion."""
        return self.auc_candidate - self.auc_champion

    def subgroup_inputs(self, candidate: int = 0) -> SubgroupInputs | None:
        """Candidate ``candidate``'s replicates per subgroup level as the rule reads them, or None."""
        if self.levels is None:
            return None
        n_cases, n_controls, auc_candidate, auc_champion, var_delta = (a[candidate] for a in self.levels)
        cells = tuple(SubgroupCell("", "", str(j)) for j in range(n_cases.shape[1]))
        return SubgroupInputs(cells, n_cases, n_controls, auc_candidate, auc_champion, var_delta)

    def rule_inputs(self, candidate: int = 0) -> RuleInputs:
        """Candidate ``candidate``'s replicates as the gate's rule reads them, arrays ``(R, E)``."""
        c = candidate
        return RuleInputs(
            n_cases=self.n_cases[c].astype(np.float64),
            n_controls=self.n_controls[c].astype(np.float64),
            auc_candidate=self.auc_candidate[c],
            auc_champion=self.auc_champion[c],
            var_delta=self.var_delta[c],
            brier_candidate=self.brier_candidate[c],
            brier_champion=self.brier_champion[c],
            citl=self.citl[c],
            se_citl=self.se_citl[c],
            slope=self.slope[c],
            se_slope=self.se_slope[c],
        )


def _placements_batch(y: NDArray[np.bool_], s: NDArray[np.float64]) -> NDArray[np.float64]:
    """DeLong placements for each row of ``s`` (no ties): a case's share of controls below it,
    a control's share of cases above it, in the input order."""
    n_total = y.shape[1]
    order = np.argsort(s, axis=1)
    ys = np.take_along_axis(y, order, axis=1)
    cum_cases = np.cumsum(ys, axis=1)
    m = cum_cases[:, -1:].astype(np.float64)
    n0 = n_total - m
    controls_upto = np.arange(1, n_total + 1)[None, :] - cum_cases
    with np.errstate(divide="ignore", invalid="ignore"):
        placed_sorted = np.where(ys, controls_upto / n0, (m - cum_cases) / m)
    placed = np.empty_like(placed_sorted)
    np.put_along_axis(placed, order, placed_sorted, axis=1)
    return placed


def _masked_mean_var(
    v: NDArray[np.float64], mask: NDArray[np.bool_], count: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = np.where(mask, v, 0.0).sum(axis=1) / count
        dev = np.where(mask, v - mean[:, None], 0.0)
        var = (dev * dev).sum(axis=1) / (count - 1)
    return mean, var


def _labels(rng: np.random.Generator, sc: Scenario, reps: int) -> NDArray[np.bool_]:
    r = sc.endpoint_correlation
    factor = rng.standard_normal((reps, sc.n, 1))
    latent = math.sqrt(r) * factor + math.sqrt(1 - r) * rng.standard_normal((reps, sc.n, sc.n_endpoints))
    latent *= np.asarray(sc.signs, dtype=np.float64)
    cut = norm.ppf(1.0 - np.asarray(sc.prevalences))
    return latent > cut


def _prob(x: NDArray[np.float64], mu: float | NDArray[np.float64], prevalence: float) -> NDArray[np.float64]:
    logit = math.log(prevalence / (1 - prevalence)) + mu * x - mu * mu / 2.0
    return 1.0 / (1.0 + np.exp(-logit))


_CAL_KEYS = ("citl", "se_citl", "slope", "se_slope")


def _chunk_stats(
    rng: np.random.Generator, sc: Scenario, reps: int, alt: float | None
) -> dict[str, NDArray[np.float64]]:
    c_count, e_count = int(sc.n_candidates), sc.n_endpoints
    y_all = _labels(rng, sc, reps)
    out = {
        k: np.empty((c_count, reps, e_count))
        for k in (
            "n_cases",
            "n_controls",
            "auc_candidate",
            "auc_champion",
            "var_delta",
            "brier_candidate",
            "brier_champion",
            "citl",
            "se_citl",
            "slope",
            "se_slope",
        )
    }
    if alt is not None:
        out.update({f"alt_{k}": np.empty((1, reps, e_count)) for k in _CAL_KEYS})
    members = sc.level_members()
    if members:
        out.update({f"level_{k}": np.empty((c_count, reps, e_count * len(members))) for k in _LEVEL_KEYS})
    mu_h = math.sqrt(2.0) * float(norm.ppf(sc.auc_champion))
    rho = sc.model_correlation
    for e in range(e_count):
        y = y_all[:, :, e]
        yf = y.astype(np.float64)
        prev = sc.prevalences[e]
        m = y.sum(axis=1).astype(np.float64)
        n0 = sc.n - m
        e_h = rng.standard_normal((reps, sc.n))
        x_h = mu_h * yf + e_h
        p_h = _prob(x_h, mu_h, prev)
        v_h = _placements_batch(y, x_h)
        brier_h = ((p_h - yf) ** 2).mean(axis=1)
        mu_c = _candidate_mu(sc, e)
        mult = sc.risk_multiplier[e]  # type: ignore[index]
        for c in range(c_count):
            x_c = mu_c * yf + rho * e_h + math.sqrt(1 - rho * rho) * rng.standard_normal((reps, sc.n))
            p_c = _prob(x_c, mu_c, prev)
            if alt is not None and c == 0:
                alt_cal = recalibration_batch(y, np.minimum(alt * p_c, 0.999), with_test=False)
                for key in _CAL_KEYS:
                    out[f"alt_{key}"][0, :, e] = alt_cal[key]
            if mult != 1.0:
                p_c = np.minimum(mult * p_c, 0.999)
            v_c = _placements_batch(y, x_c)
            d = v_c - v_h
            auc_c, _ = _masked_mean_var(v_c, y, m)
            auc_h, _ = _masked_mean_var(v_h, y, m)
            _, var10 = _masked_mean_var(d, y, m)
            _, var01 = _masked_mean_var(d, ~y, n0)
            cal = recalibration_batch(y, p_c, with_test=False)
            out["n_cases"][c, :, e] = m
            out["n_controls"][c, :, e] = n0
            out["auc_candidate"][c, :, e] = auc_c
            out["auc_champion"][c, :, e] = auc_h
            out["var_delta"][c, :, e] = var10 / m + var01 / n0
            out["brier_candidate"][c, :, e] = ((p_c - yf) ** 2).mean(axis=1)
            out["brier_champion"][c, :, e] = brier_h
            for key in ("citl", "se_citl", "slope", "se_slope"):
                out[key][c, :, e] = cal[key]
            for j, idx in enumerate(members):
                col = e * len(members) + j
                for key, value in zip(
                    _LEVEL_KEYS, _paired_numbers(y[:, idx], x_c[:, idx], x_h[:, idx]), strict=True
                ):
                    out[f"level_{key}"][c, :, col] = value
    return out


_LEVEL_KEYS = ("n_cases", "n_controls", "auc_candidate", "auc_champion", "var_delta")


def _candidate_mu(sc: Scenario, e: int) -> float | NDArray[np.float64]:
    """The candidate's binormal separation on endpoint ``e``: one number, or one per patient."""
    mu = math.sqrt(2.0) * float(norm.ppf(sc.auc_champion + sc.delta[e]))  # type: ignore[index]
    if sc.level_delta is None:
        return mu
    g, lv, deltas = sc.level_delta
    per_patient = np.full(sc.n, mu)
    start = sum(len(shares) for shares in sc.subgroup_shares[:g])
    per_patient[sc.level_members()[start + lv]] = math.sqrt(2.0) * float(
        norm.ppf(sc.auc_champion + deltas[e])
    )
    return per_patient


def _paired_numbers(
    y: NDArray[np.bool_], x_c: NDArray[np.float64], x_h: NDArray[np.float64]
) -> tuple[NDArray[np.float64], ...]:
    """Cases, controls, both AUCs and the DeLong variance of their difference, per replicate row."""
    m = y.sum(axis=1).astype(np.float64)
    n0 = y.shape[1] - m
    v_c, v_h = _placements_batch(y, x_c), _placements_batch(y, x_h)
    auc_c, _ = _masked_mean_var(v_c, y, m)
    auc_h, _ = _masked_mean_var(v_h, y, m)
    _, var10 = _masked_mean_var(v_c - v_h, y, m)
    _, var01 = _masked_mean_var(v_c - v_h, ~y, n0)
    with np.errstate(divide="ignore", invalid="ignore"):
        var = var10 / m + var01 / n0
    return m, n0, auc_c, auc_h, var


def simulate_gate_stats(
    scenario: Scenario,
    *,
    reps: int = 2000,
    seed: int = 0,
    chunk: int = 250,
    alt_risk_multiplier: float | None = None,
) -> GateStats:
    """Draw ``reps`` test splits of ``scenario`` and compute the gate's per-endpoint numbers.

    Args:
        scenario: What to simulate.
        reps: Replicates (independent test splits).
        seed: Seed of the random generator (results are reproducible).
        chunk: Replicates computed at once (bounds memory: about ``chunk × n × 8`` doubles).
        alt_risk_multiplier: Also compute the first candidate's calibration with its risk
            scaled by this factor, on every endpoint, from the same draws
            (:meth:`GateStats.with_alt_calibration`): one simulation then serves
            "miscalibrated on endpoint e" for every e.

    Returns:
        A :class:`GateStats` with arrays of shape ``(n_candidates, reps, n_endpoints)``.

    Raises:
        ValueError: If ``reps`` or ``chunk`` is below 1.
    """
    if int(reps) < 1 or int(chunk) < 1:
        raise ValueError(f"reps and chunk must be at least 1, got {reps!r} and {chunk!r}")
    rng = np.random.default_rng(seed)
    parts = []
    done = 0
    while done < reps:
        size = min(int(chunk), int(reps) - done)
        parts.append(_chunk_stats(rng, scenario, size, alt_risk_multiplier))
        done += size
    merged = {k: np.concatenate([p[k] for p in parts], axis=1) for k in parts[0]}
    alt_cal = {k: merged.pop(f"alt_{k}") for k in _CAL_KEYS} if alt_risk_multiplier is not None else None
    levels = tuple(merged.pop(f"level_{k}") for k in _LEVEL_KEYS) if scenario.subgroup_shares else None
    return GateStats(
        n_cases=merged.pop("n_cases").astype(np.int64),
        n_controls=merged.pop("n_controls").astype(np.int64),
        alt_calibration=alt_cal,
        levels=levels,
        **merged,
    )


def expected_se_delta(scenario: Scenario, *, reps: int = 200, seed: int = 1) -> NDArray[np.float64]:
    """The mean DeLong standard error of ΔAUC per endpoint under ``scenario`` (simulated)."""
    stats = simulate_gate_stats(scenario.with_(n_candidates=1), reps=reps, seed=seed)
    return np.sqrt(np.nanmean(stats.var_delta[0], axis=0))


def cases_per_endpoint(scenario: Scenario) -> list[float]:
    """Expected cases per endpoint in the gating split."""
    return [scenario.n * p for p in scenario.prevalences]
