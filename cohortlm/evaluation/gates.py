"""The promotion gate: a :class:`GatePolicy`, the rule that applies it, and the :class:`Decision` it yields.

The candidate model is compared with the champion (the model now serving, or the
logistic regression of the same run) on the same patients of the gating split,
per endpoint. With ``Δ = AUC_candidate − AUC_champion`` (paired DeLong,
:mod:`cohortlm.evaluation.stats.delong`, equal to R's pROC) a policy pre-specifies three
families of one-sided tests, each with its level stated and tied to ``alpha``:

1. **superiority** on the *primary* endpoints (``primary``; all endpoints when
   unset): one-sided ``p(Δ > 0)`` adjusted across the primary endpoints
   (``adjustment``, Holm by default: family-wise error ≤ the look's level). The
   look's level is ``alpha`` spent across the looks at one test split
   (``alpha_spending``, below); at least ``min_superior`` must be significant;
2. **safety: not significantly worse** on every endpoint: one-sided ``p(Δ < 0)``
   adjusted across all assessed endpoints at ``alpha`` (Holm);
3. **safety: non-inferior** on every endpoint: the one-sided ``1 − ni_alpha``
   lower bound of Δ (``ni_alpha`` defaults to ``alpha``) is ≥ −margin. Requiring
   every endpoint to pass is an intersection–union test, so no adjustment is
   needed for the family's error to stay at ``ni_alpha``. The margin is either
   ``absolute`` (``margin`` in AUC units) or scaled to the endpoint's case count,
   ``cases``: ``margin × √(margin_cases / n_eff)`` with ``n_eff = cases·controls /
   (cases + controls)`` (:func:`endpoint_margins`), capped at ``margin_max``, so
   that a rare endpoint, whose ΔAUC cannot be measured to ±0.02, is held to a
   margin its data can show; ``margins`` overrides it per endpoint;
4. **calibration as a test** on every assessed endpoint (``calibration: test``):
   logistic recalibration of the candidate's probabilities
   (:mod:`cohortlm.evaluation.stats.calibration`); the gate fails when the data show that
   calibration-in-the-large lies beyond ±``citl_tolerance`` or the calibration
   slope outside ``slope_range`` (the two-sided interval at Bonferroni level
   ``calibration_alpha / (2 × endpoints)`` lies wholly outside the tolerance).
   ``calibration: brier_margin`` keeps the old point rule (Brier may exceed the
   champion's by ``brier_margin``); both models' calibration is recorded either way.

**Small samples.** An endpoint with fewer than ``min_cases`` cases or controls in
the gating split gets the verdict ``insufficient evidence``: it is never
significantly better or worse, and with ``insufficient: exclude`` (the default)
it is left out of every family and named in the reasons; ``insufficient: block``
makes it block promotion instead.

**Repeated looks at one test split.** Every decision is a look at the split; the
model store's ledger (:mod:`cohortlm.store.registry`) counts them by the split's hash.
Look ``k`` gets superiority level ``α_k``: ``inverse_square`` spends
``α·k⁻²/Σ_{j≤K} j⁻²`` (K = ``max_looks``; the levels of K looks sum to α, and the
first look gets 63 % of it), ``bonferroni`` spends ``α/K`` per look, ``none`` gives
every look the full α. After ``max_looks`` looks the gate refuses to promote on
that split and says how to get a fresh one. Since a false promotion needs a false
superiority claim at some look, the chance of any false promotion over the K
looks is at most ``Σ α_k ≤ α``.

The default policy (``cohortlm/policies/default.yaml``) and its measured
operating characteristics are in the README (section "The gate") and
``benchmarks/results/gate.md``; :func:`operating_characteristics` measures a
policy by simulation, with the same rule (:func:`apply_policy`) that decides a run.

The :class:`Decision` holds the policy, n, AUCs with (logit) CIs, Δ with CI and
its non-inferiority bound and margin, z, raw and adjusted p-values, both models'
calibration, the look and the level it spent, the verdict per endpoint and the
reasons in words. It serialises to JSON (NaN as ``null``) and reads back equal.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import yaml
from numpy.typing import NDArray
from scipy.stats import norm

from cohortlm.errors import DataError, SpecError, UsageError
from cohortlm.evaluation.evaluate import endpoint_arrays
from cohortlm.evaluation.stats.calibration import recalibration
from cohortlm.evaluation.stats.delong import DeLongWarning, auc_interval, delong_test
from cohortlm.evaluation.stats.multitest import ADJUSTMENTS, adjust_pvalues_rows
from cohortlm.yamlsafe import load_yaml_file

if TYPE_CHECKING:
    from cohortlm.evaluation.stats.simulate import GateStats, Scenario

__all__ = [
    "ALPHA_SPENDING",
    "CALIBRATION_RULES",
    "DECISION_SCHEMA_VERSION",
    "MARGIN_RULES",
    "Decision",
    "EndpointVerdict",
    "GateOutcome",
    "GatePolicy",
    "alpha_for_look",
    "apply_policy",
    "decide",
    "default_policy_path",
    "endpoint_margins",
    "legacy_policy_path",
    "load_policy",
    "operating_characteristics",
]

DECISION_SCHEMA_VERSION = 2
MARGIN_RULES: tuple[str, ...] = ("absolute", "cases")
CALIBRATION_RULES: tuple[str, ...] = ("test", "brier_margin", "none")
ALPHA_SPENDING: tuple[str, ...] = ("inverse_square", "bonferroni", "none")
INSUFFICIENT: tuple[str, ...] = ("exclude", "block")
INSUFFICIENT_VERDICT = "insufficient evidence"


@dataclass(frozen=True)
class GatePolicy:
    """What a candidate must show to replace the champion (see the module docstring).

    Attributes:
        alpha: One-sided level of the superiority family (per look, spent across
            looks) and of the "significantly worse" family, in (0, 1).
        primary: Endpoints tested for superiority; None = all. The others are safety checks only.
        min_superior: Primary endpoints that must be significantly better (≥ 0).
        margin: Non-inferiority margin on ΔAUC: in AUC units (``absolute``) or at
            ``margin_cases`` cases (``cases``), ≥ 0.
        margin_rule: ``absolute`` or ``cases`` (margin × √(margin_cases / n_eff), n_eff =
            cases·controls / (cases + controls)).
        margin_cases: Effective case count at which the ``cases`` rule's margin equals ``margin``.
        margin_max: Largest margin the ``cases`` rule gives.
        margins: Per-endpoint margins in AUC units, overriding the rule.
        ni_alpha: One-sided level of each non-inferiority test; None = ``alpha``.
        calibration: ``test`` (recalibration test), ``brier_margin`` (point rule) or ``none``.
        calibration_alpha: Family level of the calibration tests; None = ``alpha``.
        citl_tolerance: Calibration-in-the-large allowed either side of 0 (log-odds).
        slope_range: Calibration slopes allowed, ``(low, high)``.
        brier_margin: With ``calibration: brier_margin``, how much higher the
            candidate's Brier score may be (≥ 0).
        min_cases: Fewest cases, and controls, an endpoint needs in the gating split (≥ 2).
        insufficient: What an endpoint below ``min_cases`` does: ``exclude`` or ``block``.
        alpha_spending: ``inverse_square``, ``bonferroni`` or ``none`` (see the module docstring).
        max_looks: Looks allowed at one test split; None = no limit (only with ``none``).
        adjustment: Adjustment within a family: ``holm``, ``bh`` or ``none``.
        conf_level: Level of the two-sided intervals reported (AUC, ΔAUC, calibration).
        split: The split the gate is decided on.
    """

    alpha: float = 0.05
    primary: tuple[str, ...] | None = None
    min_superior: int = 1
    margin: float = 0.08
    margin_rule: str = "cases"
    margin_cases: int = 100
    margin_max: float = 0.085
    margins: Mapping[str, float] = field(default_factory=dict)
    ni_alpha: float | None = None
    calibration: str = "test"
    calibration_alpha: float | None = None
    citl_tolerance: float = 0.2
    slope_range: tuple[float, float] = (0.8, 1.25)
    brier_margin: float = 0.01
    min_cases: int = 30
    insufficient: str = "exclude"
    alpha_spending: str = "inverse_square"
    max_looks: int | None = 20
    adjustment: str = "holm"
    conf_level: float = 0.95
    split: str = "test"

    def __post_init__(self) -> None:
        def number(name: str, value: Any = None) -> float:
            value = getattr(self, name) if value is None else value
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise SpecError(f"policy key '{name}' must be a finite number, got {value!r}")
            return float(value)

        def whole(name: str, low: int) -> int:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise SpecError(f"policy key '{name}' must be a whole number ≥ {low}, got {value!r}")
            return value

        def choice(name: str, allowed: tuple[str, ...]) -> None:
            if getattr(self, name) not in allowed:
                raise SpecError(
                    f"policy key '{name}' must be one of {', '.join(allowed)}, got {getattr(self, name)!r}"
                )

        for name in ("alpha", "conf_level"):
            if not 0.0 < number(name) < 1.0:
                raise SpecError(f"policy key '{name}' must be in (0, 1), got {getattr(self, name)!r}")
        for name in ("ni_alpha", "calibration_alpha"):
            if getattr(self, name) is not None and not 0.0 < number(name) < 1.0:
                raise SpecError(f"policy key '{name}' must be in (0, 1) or null, got {getattr(self, name)!r}")
        for name in ("margin", "margin_max", "brier_margin", "citl_tolerance"):
            if number(name) < 0:
                raise SpecError(f"policy key '{name}' must be ≥ 0, got {getattr(self, name)!r}")
        whole("min_superior", 0)
        whole("margin_cases", 1)
        whole("min_cases", 2)
        if self.max_looks is not None:
            whole("max_looks", 1)
        elif self.alpha_spending != "none":
            raise SpecError("policy key 'max_looks' must be a whole number ≥ 1 unless alpha_spending is none")
        choice("margin_rule", MARGIN_RULES)
        choice("calibration", CALIBRATION_RULES)
        choice("alpha_spending", ALPHA_SPENDING)
        choice("insufficient", INSUFFICIENT)
        choice("adjustment", ADJUSTMENTS)
        if not isinstance(self.split, str) or not self.split:
            raise SpecError(f"policy key 'split' must be a split name, got {self.split!r}")
        if self.primary is not None:
            if isinstance(self.primary, str) or not all(isinstance(e, str) for e in self.primary):
                raise SpecError(
                    f"policy key 'primary' must be a list of endpoint names, got {self.primary!r}"
                )
            if not self.primary:
                raise SpecError("policy key 'primary' must name at least one endpoint (or be null for all)")
            object.__setattr__(self, "primary", tuple(self.primary))
        if not isinstance(self.margins, Mapping):
            raise SpecError(f"policy key 'margins' must map endpoint names to margins, got {self.margins!r}")
        clean = {}
        for ep, value in self.margins.items():
            if number(f"margins.{ep}", value) < 0:
                raise SpecError(f"policy key 'margins.{ep}' must be ≥ 0, got {value!r}")
            clean[str(ep)] = float(value)
        object.__setattr__(self, "margins", clean)
        try:
            low, high = (number("slope_range", v) for v in self.slope_range)
        except (TypeError, ValueError):
            raise SpecError(
                f"policy key 'slope_range' must be [low, high], got {self.slope_range!r}"
            ) from None
        if not 0 <= low < 1 < high:
            raise SpecError(
                f"policy key 'slope_range' must satisfy 0 ≤ low < 1 < high, got {self.slope_range!r}"
            )
        object.__setattr__(self, "slope_range", (low, high))
        # Plain floats, so that a YAML int (margin: 0) and its JSON round trip compare equal.
        for name in ("alpha", "margin", "margin_max", "brier_margin", "citl_tolerance", "conf_level"):
            object.__setattr__(self, name, float(getattr(self, name)))
        for name in ("ni_alpha", "calibration_alpha"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, float(getattr(self, name)))

    @property
    def ni_level(self) -> float:
        """One-sided level of each non-inferiority test."""
        return self.alpha if self.ni_alpha is None else self.ni_alpha

    @property
    def calibration_level(self) -> float:
        """Family level of the calibration tests."""
        return self.alpha if self.calibration_alpha is None else self.calibration_alpha

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "<policy>") -> GatePolicy:
        """Build a policy from a mapping; unknown keys are errors.

        Args:
            data: Keys as the attributes; missing keys take the defaults.
            source: Where the mapping came from, for error messages.

        Raises:
            SpecError: Naming the source and the key.
        """
        if not isinstance(data, Mapping):
            raise SpecError(f"{source}: a policy must be a mapping of keys to values")
        allowed = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise SpecError(
                f"{source}: unknown policy key(s) {', '.join(map(repr, unknown))}; "
                f"allowed: {', '.join(sorted(allowed))}"
            )
        values = dict(data)
        for key in ("primary", "slope_range"):
            if isinstance(values.get(key), list):
                values[key] = tuple(values[key])
        try:
            return cls(**values)
        except SpecError as exc:
            raise SpecError(f"{source}: {exc}") from None
        except TypeError as exc:
            raise SpecError(f"{source}: {exc}") from None

    @classmethod
    def from_yaml(cls, path: str | Path) -> GatePolicy:
        """Load a policy from a YAML file (a top-level ``policy:`` key is optional).

        A ``margin`` without a ``margin_rule``, or a ``brier_margin`` without
        ``calibration: brier_margin``, is an error: the meaning of those keys changed
        with the second default policy, and a policy file must say which it means.

        Raises:
            SpecError: If the file is missing, is not YAML, or a key is unknown or invalid.
        """
        p = Path(path)
        try:
            raw = load_yaml_file(p, what="policy file")  # cohortlm.yamlsafe: no aliases, 1 MB, no duplicates
        except FileNotFoundError:
            raise SpecError(f"policy file not found: {p}") from None
        except yaml.YAMLError as exc:
            raise SpecError(f"{p}: not valid YAML ({type(exc).__name__})") from None
        if raw is None:
            raw = {}
        if isinstance(raw, Mapping) and set(raw) == {"policy"}:
            raw = raw["policy"]
        if isinstance(raw, Mapping):
            if "margin" in raw and "margin_rule" not in raw:
                raise SpecError(
                    f"{p}: 'margin' needs 'margin_rule': absolute (the margin in AUC units on every "
                    "endpoint, the first default's meaning) or cases (scaled to each endpoint's case count)"
                )
            if "brier_margin" in raw and raw.get("calibration") != "brier_margin":
                raise SpecError(
                    f"{p}: 'brier_margin' applies only with 'calibration: brier_margin' "
                    "(the default, calibration: test, tests calibration instead)"
                )
        return cls.from_dict(raw, source=str(p))

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python form (lists for tuples), which :meth:`from_dict` reads back equal."""
        out = asdict(self)
        out["margins"] = dict(self.margins)
        out["slope_range"] = list(self.slope_range)
        out["primary"] = None if self.primary is None else list(self.primary)
        return out


def default_policy_path() -> Path:
    """The packaged default policy file, ``cohortlm/policies/default.yaml``."""
    return Path(str(resources.files("cohortlm") / "policies" / "default.yaml"))


def legacy_policy_path() -> Path:
    """The first default policy (margin 0.02 everywhere, Brier point rule), for comparison."""
    return Path(str(resources.files("cohortlm") / "policies" / "first_default.yaml"))


def load_policy(path: str | Path | None = None) -> GatePolicy:
    """Load a policy file, or the packaged default when ``path`` is None."""
    return GatePolicy.from_yaml(default_policy_path() if path is None else path)


# ----------------------------------------------------------------------------- the rule


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
class GateOutcome:
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


def apply_policy(
    stats: Mapping[str, NDArray[Any]],
    policy: GatePolicy,
    endpoints: Sequence[str],
    *,
    look: int | NDArray[np.int64] = 1,
) -> GateOutcome:
    """The gate's rule on arrays: one row per data set (a run, or a simulated replicate).

    Args:
        stats: Arrays of shape ``(R, E)``: ``n_cases``, ``n_controls``, ``auc_candidate``,
            ``auc_champion``, ``var_delta``; for ``calibration: test`` also ``citl``,
            ``se_citl``, ``slope``, ``se_slope`` (the candidate's); for
            ``calibration: brier_margin`` ``brier_candidate`` and ``brier_champion``.
        policy: The policy.
        endpoints: Endpoint names, in column order.
        look: The look at this split, 1 for the first (a number, or one per row).

    Returns:
        A :class:`GateOutcome`.
    """
    m = np.asarray(stats["n_cases"], dtype=np.float64)
    n0 = np.asarray(stats["n_controls"], dtype=np.float64)
    delta = np.asarray(stats["auc_candidate"], dtype=np.float64) - np.asarray(stats["auc_champion"])
    var = np.asarray(stats["var_delta"], dtype=np.float64)
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
    promote = (
        looks_ok
        & ~blocked_by_small
        & (superior.sum(axis=1) >= policy.min_superior)
        & assessed.any(axis=1)
        & ~worse.any(axis=1)
        & (non_inferior | insufficient).all(axis=1)
        & (calibration_ok | insufficient).all(axis=1)
    )
    return GateOutcome(
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
    )


def _calibration_ok(
    stats: Mapping[str, NDArray[Any]], policy: GatePolicy, assessed: NDArray[np.bool_]
) -> NDArray[np.bool_]:
    if policy.calibration == "none":
        return np.ones(assessed.shape, dtype=bool)
    if policy.calibration == "brier_margin":
        diff = np.asarray(stats["brier_candidate"]) - np.asarray(stats["brier_champion"])
        return np.isfinite(diff) & (diff <= policy.brier_margin)
    # Bonferroni over the two parameters of every assessed endpoint; the interval must lie
    # wholly outside the tolerance for the gate to call calibration off.
    tests = np.maximum(2 * assessed.sum(axis=1, keepdims=True), 1)
    zc = norm.isf(policy.calibration_level / tests / 2.0)
    citl, se_citl = np.asarray(stats["citl"]), np.asarray(stats["se_citl"])
    slope, se_slope = np.asarray(stats["slope"]), np.asarray(stats["se_slope"])
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


def operating_characteristics(
    policy: GatePolicy,
    scenario: Scenario,
    *,
    reps: int = 2000,
    seed: int = 0,
    endpoints: Sequence[str] | None = None,
    stats: GateStats | None = None,
) -> dict[str, Any]:
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

    Returns:
        ``promoted`` (share of replicates), ``mc_se`` (its Monte Carlo standard
        error), ``reps``, ``per_look`` (share promoted at each look) and
        ``insufficient`` (share of replicates in which each endpoint was insufficient).
    """
    from cohortlm.evaluation.stats.simulate import simulate_gate_stats

    st = stats if stats is not None else simulate_gate_stats(scenario, reps=reps, seed=seed)
    names = list(endpoints) if endpoints is not None else [f"e{i + 1}" for i in range(scenario.n_endpoints)]
    any_promoted = np.zeros(st.auc_candidate.shape[1], dtype=bool)
    per_look = []
    insufficient = np.zeros(st.auc_candidate.shape[2])
    for c in range(st.auc_candidate.shape[0]):
        arrays = {f.name: getattr(st, f.name)[c] for f in fields(st) if f.name != "alt_calibration"}
        out = apply_policy(arrays, policy, names, look=c + 1)
        any_promoted |= out.promote
        per_look.append(float(out.promote.mean()))
        if c == 0:
            insufficient = out.insufficient.mean(axis=0)
    rate = float(any_promoted.mean())
    n = any_promoted.size
    return {
        "promoted": rate,
        "mc_se": math.sqrt(rate * (1 - rate) / n) if n else math.nan,
        "reps": n,
        "per_look": per_look,
        "insufficient": [float(x) for x in insufficient],
    }


# ----------------------------------------------------------------------------- the record


@dataclass(frozen=True)
class EndpointVerdict:
    """The gate's numbers and verdict for one endpoint.

    ``verdict`` is one of ``superior`` (a primary endpoint significantly better),
    ``non-inferior`` (within the margin, not significantly better),
    ``inferiority-not-excluded`` (the non-inferiority bound is below −margin),
    ``worse`` (significantly worse) or ``insufficient evidence`` (fewer than the
    policy's ``min_cases`` cases or controls, or no test possible). Calibration is
    judged separately (``calibration_ok``). AUC intervals are logit-transformed
    DeLong intervals; ``ci_delta`` is pROC's two-sided Wald interval at the
    policy's ``conf_level``; ``ni_lower`` is the one-sided bound at ``1 − ni_alpha``.
    Calibration numbers: ``citl_*`` calibration-in-the-large, ``slope_*`` the
    calibration slope, ``calibration_p_*`` Cox's test of perfect calibration.
    """

    endpoint: str
    n: int
    n_cases: int
    n_controls: int
    primary: bool
    insufficient: bool
    auc_candidate: float
    ci_auc_candidate: tuple[float, float]
    auc_champion: float
    ci_auc_champion: tuple[float, float]
    delta: float
    ci_delta: tuple[float, float]
    se_delta: float
    z: float
    p_better: float
    p_worse: float
    p_better_adjusted: float
    p_worse_adjusted: float
    margin: float
    ni_lower: float
    brier_candidate: float
    brier_champion: float
    brier_delta: float
    citl_candidate: float
    ci_citl_candidate: tuple[float, float]
    slope_candidate: float
    ci_slope_candidate: tuple[float, float]
    calibration_p_candidate: float
    citl_champion: float
    ci_citl_champion: tuple[float, float]
    slope_champion: float
    ci_slope_champion: tuple[float, float]
    calibration_p_champion: float
    superior: bool
    worse: bool
    non_inferior: bool
    calibration_ok: bool
    verdict: str
    reasons: tuple[str, ...]


_TUPLE_FIELDS = tuple(f.name for f in fields(EndpointVerdict) if f.type.startswith("tuple"))


@dataclass(frozen=True)
class Decision:
    """The gate's decision record: what was compared, under which policy, every number, and why.

    Attributes:
        candidate: Name of the candidate model.
        champion: Name of the champion model.
        policy: The policy applied.
        endpoints: One :class:`EndpointVerdict` per endpoint, in study order.
        promote: Whether the candidate replaces the champion.
        n_superior: Endpoints significantly better.
        reasons: The decision in words, one sentence per condition.
        look: Which look at this test split the decision was (1 = the first).
        alpha_look: The superiority level this look spent.
        split_hash: SHA-256 of the gating split's patient ids ("" when not known).
        notes: Warnings about the design (e.g. a margin the data cannot show).
        selection: How the candidate was chosen when several models competed: the
            rule, the split it looked at (never the gating split) and each
            contender's figure (:func:`cohortlm.run.steps.choose_candidate`); empty
            when there was one candidate.
        comparisons: Seed 000's comparison families on the gating split
            (:func:`cohortlm.evaluation.comparisons.family_records`): family -> one record
            per pair and endpoint.
        schema_version: Version of this record's layout.
    """

    candidate: str
    champion: str
    policy: GatePolicy
    endpoints: tuple[EndpointVerdict, ...]
    promote: bool
    n_superior: int
    reasons: tuple[str, ...]
    look: int = 1
    alpha_look: float = math.nan
    split_hash: str = ""
    notes: tuple[str, ...] = ()
    selection: Mapping[str, Any] = field(default_factory=dict)
    comparisons: Mapping[str, Any] = field(default_factory=dict)
    schema_version: int = DECISION_SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: NaN as None, tuples as lists."""
        out = _jsonable(asdict(self))
        out["policy"] = _jsonable(self.policy.to_dict())
        return out

    def to_json(self, *, indent: int | None = 2) -> str:
        """The record as standard JSON (no NaN literals)."""
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False, allow_nan=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Decision:
        """Rebuild a record from :meth:`to_dict` output.

        Raises:
            SpecError: If the record is malformed or of an unknown schema version.
        """
        try:
            version = int(data.get("schema_version", DECISION_SCHEMA_VERSION))
            if version != DECISION_SCHEMA_VERSION:
                raise SpecError(
                    f"decision schema_version {version} is not supported (want {DECISION_SCHEMA_VERSION}); "
                    "re-run the gate to get a current record"
                )
            eps = []
            for raw in data["endpoints"]:
                kw: dict[str, Any] = {}
                for f in fields(EndpointVerdict):
                    value = raw[f.name]
                    if f.name == "reasons":
                        value = tuple(str(v) for v in value)
                    elif f.name in _TUPLE_FIELDS:
                        value = tuple(_nan_if_none(v) for v in value)
                    elif f.type == "float":
                        value = _nan_if_none(value)
                    kw[f.name] = value
                eps.append(EndpointVerdict(**kw))
            return cls(
                candidate=str(data["candidate"]),
                champion=str(data["champion"]),
                policy=GatePolicy(**_policy_kwargs(data["policy"])),
                endpoints=tuple(eps),
                promote=bool(data["promote"]),
                n_superior=int(data["n_superior"]),
                reasons=tuple(str(r) for r in data["reasons"]),
                look=int(data.get("look", 1)),
                alpha_look=_nan_if_none(data.get("alpha_look")),
                split_hash=str(data.get("split_hash", "")),
                notes=tuple(str(r) for r in data.get("notes", ())),
                selection=dict(data.get("selection") or {}),
                comparisons=dict(data.get("comparisons") or {}),
                schema_version=version,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise SpecError(f"decision record is malformed ({type(exc).__name__}: {exc})") from None

    @classmethod
    def from_json(cls, text: str) -> Decision:
        """Rebuild a record from :meth:`to_json` output."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SpecError(f"decision record is not valid JSON ({exc.msg})") from None
        return cls.from_dict(data)

    def summary(self) -> str:
        """The decision in words, one line per reason, then one line per endpoint."""
        head = f"{'PROMOTE' if self.promote else 'KEEP CHAMPION'}: {self.candidate} vs {self.champion}"
        lines = [head, *(f"- {r}" for r in self.reasons)]
        if self.notes:
            lines += ["", "Notes:", *(f"- {n}" for n in self.notes)]
        lines += ["", "Per endpoint:"]
        lines += [f"- {r}" for ep in self.endpoints for r in ep.reasons]
        return "\n".join(lines)


def _policy_kwargs(raw: Mapping[str, Any]) -> dict[str, Any]:
    """A recorded policy (every key present) back to constructor arguments."""
    if not isinstance(raw, Mapping):
        raise TypeError("policy must be a mapping")
    out = dict(raw)
    for key in ("primary", "slope_range"):
        if isinstance(out.get(key), list):
            out[key] = tuple(out[key])
    try:
        return {f.name: out[f.name] for f in fields(GatePolicy) if f.name in out}
    except SpecError as exc:  # pragma: no cover - validated by the constructor
        raise ValueError(str(exc)) from None


def _nan_if_none(value: Any) -> float:
    return math.nan if value is None else float(value)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        v = float(value)
        if math.isnan(v):
            return None
        # Standard JSON has no infinity; a string that float() reads back keeps z = ±inf exact.
        return v if math.isfinite(v) else ("inf" if v > 0 else "-inf")
    return value


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


def _brier(y: np.ndarray, s: np.ndarray) -> float:
    if y.size == 0 or ((s < 0) | (s > 1)).any():
        return math.nan
    return float(np.mean((s - y) ** 2))


_NAN_CAL: dict[str, Any] = {
    "citl": math.nan,
    "citl_ci": (math.nan, math.nan),
    "se_citl": math.nan,
    "slope": math.nan,
    "slope_ci": (math.nan, math.nan),
    "se_slope": math.nan,
    "p_value": math.nan,
}


def _calibration(y: np.ndarray, s: np.ndarray, conf_level: float) -> dict[str, Any]:
    if y.size == 0 or ((s < 0) | (s > 1)).any() or y.min() == y.max():
        return dict(_NAN_CAL)
    return recalibration(y, s, conf_level=conf_level).to_dict()


def _endpoint_stats(
    labels: pd.DataFrame,
    candidate_scores: pd.DataFrame,
    champion_scores: pd.DataFrame,
    ep: str,
    *,
    rows: pd.Index | None,
    conf_level: float,
    names: tuple[str, str],
) -> dict[str, Any]:
    y_c, s_c = endpoint_arrays(labels, candidate_scores, ep, model=names[0], rows=rows)
    y_h, s_h = endpoint_arrays(labels, champion_scores, ep, model=names[1], rows=rows)
    # Both score sets were aligned to the same labelled rows, so the labels are identical.
    if not np.array_equal(y_c, y_h):  # pragma: no cover - guarded by endpoint_arrays
        raise DataError(f"labels for endpoint '{ep}' differ between the two models")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DeLongWarning)
        t = delong_test(y_c, s_c, s_h, alternative="greater", conf_level=conf_level)
    m, n = t.n_cases, t.n_controls
    return {
        "test": t,
        "why_undefined": str(caught[0].message) if caught else "",
        "ci_auc_c": auc_interval(t.auc_a, t.var_auc_a, conf_level=conf_level, m=m, n=n),
        "ci_auc_h": auc_interval(t.auc_b, t.var_auc_b, conf_level=conf_level, m=m, n=n),
        "brier_c": _brier(y_c, s_c),
        "brier_h": _brier(y_h, s_h),
        "cal_c": _calibration(y_c, s_c, conf_level),
        "cal_h": _calibration(y_h, s_h, conf_level),
    }


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
) -> Decision:
    """Decide whether the candidate replaces the champion (rules in the module docstring).

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
    raw = [
        _endpoint_stats(
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
    out = apply_policy(_policy_arrays(raw), policy, eps, look=look)
    adj_name = {"holm": "Holm-adjusted", "bh": "BH-adjusted", "none": "unadjusted"}[policy.adjustment]
    verdicts = [
        _verdict(ep, r, out, i, policy, candidate_name, champion_name, adj_name, alpha_look)
        for i, (ep, r) in enumerate(zip(eps, raw, strict=True))
    ]
    return _overall(
        verdicts,
        policy,
        candidate_name,
        champion_name,
        adj_name,
        look=look,
        alpha_look=alpha_look,
        split_hash=split_hash,
        promote=bool(out.promote[0]),
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


def _policy_arrays(raw: Sequence[Mapping[str, Any]]) -> dict[str, NDArray[np.float64]]:
    """The per-endpoint numbers as :func:`apply_policy` takes them: one row, one column per endpoint."""

    def column(get: Any) -> NDArray[np.float64]:
        return np.array([[float(get(r)) for r in raw]])

    return {
        "n_cases": column(lambda r: r["test"].n_cases),
        "n_controls": column(lambda r: r["test"].n_controls),
        "auc_candidate": column(lambda r: r["test"].auc_a),
        "auc_champion": column(lambda r: r["test"].auc_b),
        "var_delta": column(lambda r: r["test"].var_delta),
        "brier_candidate": column(lambda r: r["brier_c"]),
        "brier_champion": column(lambda r: r["brier_h"]),
        "citl": column(lambda r: r["cal_c"]["citl"]),
        "se_citl": column(lambda r: r["cal_c"]["se_citl"]),
        "slope": column(lambda r: r["cal_c"]["slope"]),
        "se_slope": column(lambda r: r["cal_c"]["se_slope"]),
    }


def _verdict(
    ep: str,
    r: Mapping[str, Any],
    out: GateOutcome,
    i: int,
    policy: GatePolicy,
    candidate: str,
    champion: str,
    adj_name: str,
    alpha_look: float,
) -> EndpointVerdict:
    """One endpoint's verdict: its numbers (column ``i`` of ``out``), the verdict word and the reasons."""
    v = _endpoint_numbers(ep, r, out, i)
    reasons = [*_test_reasons(v, r, policy, candidate, champion, adj_name, alpha_look)]
    reasons.append(_calibration_reason(ep, r, policy, candidate, champion, v.calibration_ok, v.insufficient))
    return replace(v, verdict=_verdict_word(v), reasons=tuple(reasons))


def _endpoint_numbers(ep: str, r: Mapping[str, Any], out: GateOutcome, i: int) -> EndpointVerdict:
    """The endpoint's numbers and flags, its verdict and reasons left empty."""
    t = r["test"]
    cal_c, cal_h = r["cal_c"], r["cal_h"]
    return EndpointVerdict(
        endpoint=ep,
        n=t.n_cases + t.n_controls,
        n_cases=t.n_cases,
        n_controls=t.n_controls,
        primary=bool(out.primary[0, i]),
        insufficient=bool(out.insufficient[0, i]),
        auc_candidate=t.auc_a,
        ci_auc_candidate=r["ci_auc_c"],
        auc_champion=t.auc_b,
        ci_auc_champion=r["ci_auc_h"],
        delta=t.delta,
        ci_delta=t.ci_delta,
        se_delta=t.se_delta,
        z=t.z,
        p_better=float(out.p_better[0, i]),
        p_worse=float(out.p_worse[0, i]),
        p_better_adjusted=float(out.p_better_adjusted[0, i]),
        p_worse_adjusted=float(out.p_worse_adjusted[0, i]),
        margin=float(out.margin[0, i]),
        ni_lower=float(out.ni_lower[0, i]),
        brier_candidate=r["brier_c"],
        brier_champion=r["brier_h"],
        brier_delta=r["brier_c"] - r["brier_h"],
        citl_candidate=cal_c["citl"],
        ci_citl_candidate=tuple(cal_c["citl_ci"]),
        slope_candidate=cal_c["slope"],
        ci_slope_candidate=tuple(cal_c["slope_ci"]),
        calibration_p_candidate=cal_c["p_value"],
        citl_champion=cal_h["citl"],
        ci_citl_champion=tuple(cal_h["citl_ci"]),
        slope_champion=cal_h["slope"],
        ci_slope_champion=tuple(cal_h["slope_ci"]),
        calibration_p_champion=cal_h["p_value"],
        superior=bool(out.superior[0, i]),
        worse=bool(out.worse[0, i]),
        non_inferior=bool(out.non_inferior[0, i]),
        calibration_ok=bool(out.calibration_ok[0, i]),
        verdict="",
        reasons=(),
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


def _test_reasons(
    v: EndpointVerdict,
    r: Mapping[str, Any],
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
        why = r["why_undefined"] or (
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


def _calibration_reason(
    ep: str,
    r: Mapping[str, Any],
    policy: GatePolicy,
    candidate: str,
    champion: str,
    ok: bool,
    insufficient: bool,
) -> str:
    def one(cal: Mapping[str, Any]) -> str:
        return (
            f"CITL {_fmt_signed(cal['citl'], 2)} ({_fmt_ci(cal['citl_ci'], 2, signed=True)}), "
            f"slope {_fmt(cal['slope'], 2)} ({_fmt_ci(cal['slope_ci'], 2)})"
        )

    both = f"calibration of {candidate}: {one(r['cal_c'])}; of {champion}: {one(r['cal_h'])}"
    brier = f"Brier {_fmt(r['brier_c'], 4)} vs {_fmt(r['brier_h'], 4)}"
    if not math.isfinite(r["brier_c"]):
        return f"{ep}: calibration not available (scores must be probabilities in [0, 1])."
    if policy.calibration == "none" or insufficient:
        return f"{ep}: {both}; {brier} (not judged)."
    if policy.calibration == "brier_margin":
        state = "within" if ok else "exceeds"
        return (
            f"{ep}: {both}; {brier} (Δ {_fmt_signed(r['brier_c'] - r['brier_h'], 4)}, {state} the allowed "
            f"+{policy.brier_margin:g})."
        )
    low, high = policy.slope_range
    tol = f"CITL within ±{policy.citl_tolerance:g}, slope within {low:g}–{high:g}"
    state = "not shown to be outside" if ok else "shown to be outside"
    return f"{ep}: {both}; {brier}. The candidate's calibration is {state} the tolerance ({tol})."


def _names(vs: Sequence[EndpointVerdict]) -> str:
    return ", ".join(v.endpoint for v in vs)


def _design_notes(verdicts: Sequence[EndpointVerdict], policy: GatePolicy) -> list[str]:
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


def _overall(
    verdicts: list[EndpointVerdict],
    policy: GatePolicy,
    candidate: str,
    champion: str,
    adj_name: str,
    *,
    look: int,
    alpha_look: float,
    split_hash: str,
    promote: bool,
) -> Decision:
    """The decision record: the headline, the reasons over all endpoints, the design notes."""
    superior = [v for v in verdicts if v.superior]
    reasons = [
        f"{'Promote' if promote else 'Do not promote'} {candidate} over {champion} "
        f"(paired DeLong on the {policy.split} split, {len(verdicts)} endpoint(s)).",
        *_evidence_reasons(verdicts, policy, look),
        *_test_summary(verdicts, policy, adj_name, look=look, alpha_look=alpha_look),
        _calibration_summary(verdicts, policy),
    ]
    return Decision(
        candidate=candidate,
        champion=champion,
        policy=policy,
        endpoints=tuple(verdicts),
        promote=promote,
        n_superior=len(superior),
        reasons=tuple(reasons),
        look=int(look),
        alpha_look=float(alpha_look),
        split_hash=split_hash,
        notes=tuple(_design_notes(verdicts, policy)),
    )


def _evidence_reasons(verdicts: Sequence[EndpointVerdict], policy: GatePolicy, look: int) -> list[str]:
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


def _test_summary(
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


def _calibration_summary(verdicts: Sequence[EndpointVerdict], policy: GatePolicy) -> str:
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
