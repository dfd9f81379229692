"""The promotion gate: a :class:`GatePolicy` and the :class:`Decision` it yields, with every number.

The candidate model is compared with the champion (the model now serving, or the
logistic regression of the same run) on the same patients, per endpoint, by the
paired DeLong test (:mod:`cohortlm.stats.delong`). With ``Δ = AUC_candidate −
AUC_champion`` the default policy (``cohortlm/policies/default.yaml``) promotes
only if all of these hold (DESIGN.md, Gates):

1. **no endpoint significantly worse**: the one-sided p-value for ``Δ < 0``,
   adjusted across endpoints (Holm), is ≥ α for every endpoint;
2. **every endpoint non-inferior**: the lower bound of the two-sided
   ``conf_level`` interval for Δ is ≥ −margin;
3. **at least ``min_superior`` endpoints significantly better**: the one-sided
   p-value for ``Δ > 0``, adjusted across endpoints, is < α;
4. **calibration not worse than allowed**: ``Brier_candidate − Brier_champion ≤
   brier_margin`` on every endpoint.

An endpoint whose test is undefined (one class, or fewer than two cases or
controls, in the split) cannot show non-inferiority, so it blocks promotion;
the reasons say which endpoint and why. The gate never guesses in favour of
the candidate.

The :class:`Decision` holds the policy, n, AUCs with CIs, Δ with CI, z, raw and
adjusted p-values, the verdict per endpoint and the reasons in words. It
serialises to JSON (:meth:`Decision.to_json`, NaN written as ``null``) and reads
back to an equal record (:meth:`Decision.from_json`).
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from cohortlm.errors import DataError, SpecError, UsageError
from cohortlm.evaluate import endpoint_arrays
from cohortlm.stats.delong import DeLongWarning, delong_test
from cohortlm.stats.multitest import ADJUSTMENTS, adjust_pvalues
from cohortlm.yamlsafe import load_yaml_file

__all__ = [
    "DECISION_SCHEMA_VERSION",
    "Decision",
    "EndpointVerdict",
    "GatePolicy",
    "decide",
    "default_policy_path",
    "load_policy",
]

DECISION_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class GatePolicy:
    """What a candidate must show to replace the champion.

    Attributes:
        alpha: Significance level for the one-sided tests (after adjustment), in (0, 1).
        margin: Non-inferiority margin on ΔAUC (≥ 0): the lower CI bound must be ≥ −margin.
        min_superior: Endpoints that must be significantly better (≥ 0).
        brier_margin: How much higher the candidate's Brier score may be (≥ 0).
        adjustment: Multiple-testing adjustment across endpoints: ``holm``, ``bh`` or ``none``.
        conf_level: Level of the two-sided intervals (AUC and ΔAUC), in (0, 1).
        split: The split the gate is decided on.
    """

    alpha: float = 0.05
    margin: float = 0.02
    min_superior: int = 1
    brier_margin: float = 0.01
    adjustment: str = "holm"
    conf_level: float = 0.95
    split: str = "test"

    def __post_init__(self) -> None:
        def number(name: str) -> float:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise SpecError(f"policy key '{name}' must be a finite number, got {value!r}")
            return float(value)

        if not 0.0 < number("alpha") < 1.0:
            raise SpecError(f"policy key 'alpha' must be in (0, 1), got {self.alpha!r}")
        if not 0.0 < number("conf_level") < 1.0:
            raise SpecError(f"policy key 'conf_level' must be in (0, 1), got {self.conf_level!r}")
        for name in ("margin", "brier_margin"):
            if number(name) < 0:
                raise SpecError(f"policy key '{name}' must be ≥ 0, got {getattr(self, name)!r}")
        if (
            isinstance(self.min_superior, bool)
            or not isinstance(self.min_superior, int)
            or self.min_superior < 0
        ):
            raise SpecError(
                f"policy key 'min_superior' must be a whole number ≥ 0, got {self.min_superior!r}"
            )
        if self.adjustment not in ADJUSTMENTS:
            raise SpecError(
                f"policy key 'adjustment' must be one of {', '.join(ADJUSTMENTS)}, got {self.adjustment!r}"
            )
        if not isinstance(self.split, str) or not self.split:
            raise SpecError(f"policy key 'split' must be a split name, got {self.split!r}")
        # Store plain floats so that a YAML int (margin: 0) and its JSON round trip compare equal.
        for name in ("alpha", "margin", "brier_margin", "conf_level"):
            object.__setattr__(self, name, float(getattr(self, name)))

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
        try:
            return cls(**dict(data))
        except SpecError as exc:
            raise SpecError(f"{source}: {exc}") from None

    @classmethod
    def from_yaml(cls, path: str | Path) -> GatePolicy:
        """Load a policy from a YAML file (a top-level ``policy:`` key is optional).

        Raises:
            SpecError: If the file is missing, is not YAML, or a key is unknown or invalid.
        """
        p = Path(path)
        try:
            raw = load_yaml_file(p, what="policy file")
        except FileNotFoundError:
            raise SpecError(f"policy file not found: {p}") from None
        except yaml.YAMLError as exc:
            raise SpecError(f"{p}: not valid YAML ({type(exc).__name__})") from None
        if raw is None:
            raw = {}
        if isinstance(raw, Mapping) and set(raw) == {"policy"}:
            raw = raw["policy"]
        return cls.from_dict(raw, source=str(p))

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python form."""
        return asdict(self)


def default_policy_path() -> Path:
    """The packaged default policy file, ``cohortlm/policies/default.yaml``."""
    return Path(str(resources.files("cohortlm") / "policies" / "default.yaml"))


def load_policy(path: str | Path | None = None) -> GatePolicy:
    """Load a policy file, or the packaged default when ``path`` is None."""
    return GatePolicy.from_yaml(default_policy_path() if path is None else path)


@dataclass(frozen=True)
class EndpointVerdict:
    """The gate's numbers and verdict for one endpoint.

    ``verdict`` is one of ``superior`` (significantly better), ``non-inferior``
    (within the margin, not significantly better), ``inferiority-not-excluded``
    (the ΔAUC lower bound is below −margin), ``worse`` (significantly worse) or
    ``undefined`` (the test cannot be done on this split). Calibration is judged
    separately (``calibration_ok``).
    """

    endpoint: str
    n: int
    n_cases: int
    n_controls: int
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
    brier_candidate: float
    brier_champion: float
    brier_delta: float
    superior: bool
    worse: bool
    non_inferior: bool
    calibration_ok: bool
    verdict: str
    reasons: tuple[str, ...]


_TUPLE_FIELDS = ("ci_auc_candidate", "ci_auc_champion", "ci_delta", "reasons")


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
        schema_version: Version of this record's layout.
    """

    candidate: str
    champion: str
    policy: GatePolicy
    endpoints: tuple[EndpointVerdict, ...]
    promote: bool
    n_superior: int
    reasons: tuple[str, ...]
    schema_version: int = DECISION_SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: NaN as None, tuples as lists."""
        return _jsonable(asdict(self))

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
                    f"decision schema_version {version} is not supported (want {DECISION_SCHEMA_VERSION})"
                )
            eps = []
            for raw in data["endpoints"]:
                kw: dict[str, Any] = {}
                for f in fields(EndpointVerdict):
                    value = raw[f.name]
                    if f.name in _TUPLE_FIELDS:
                        value = tuple(_nan_if_none(v) if f.name != "reasons" else str(v) for v in value)
                    elif f.type == "float":
                        value = _nan_if_none(value)
                    kw[f.name] = value
                eps.append(EndpointVerdict(**kw))
            return cls(
                candidate=str(data["candidate"]),
                champion=str(data["champion"]),
                policy=GatePolicy.from_dict(data["policy"], source="decision record"),
                endpoints=tuple(eps),
                promote=bool(data["promote"]),
                n_superior=int(data["n_superior"]),
                reasons=tuple(str(r) for r in data["reasons"]),
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
        lines = [head, *(f"- {r}" for r in self.reasons), "", "Per endpoint:"]
        lines += [f"- {r}" for ep in self.endpoints for r in ep.reasons]
        return "\n".join(lines)


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


def _fmt_p(p: float) -> str:
    """``p = 0.0123`` or ``p < 0.0001``."""
    if not math.isfinite(p):
        return "p n/a"
    return "p < 0.0001" if p < 1e-4 else f"p = {p:.4f}"


def _brier(y: np.ndarray, s: np.ndarray) -> float:
    if y.size == 0 or ((s < 0) | (s > 1)).any():
        return math.nan
    return float(np.mean((s - y) ** 2))


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
) -> Decision:
    """Decide whether the candidate replaces the champion, per DESIGN.md's Gates.

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

    Returns:
        The :class:`Decision`.

    Raises:
        UsageError: If there are no endpoints or the policy's split is absent.
        DataError: If an endpoint column or a labelled patient's score is missing.
    """
    policy = load_policy() if policy is None else policy
    eps = list(endpoints) if endpoints is not None else [str(c) for c in labels.columns]
    if not eps:
        raise UsageError("labels: no endpoints to judge")
    rows: pd.Index | None = None
    if split is not None:
        rows = split.index[split.astype(str) == policy.split]
        if rows.empty:
            raise UsageError(f"split has no rows in the policy's split '{policy.split}'")
    level_pct = f"{policy.conf_level * 100:g}%"

    raw: list[dict[str, Any]] = []
    for ep in eps:
        y_c, s_c = endpoint_arrays(labels, candidate_scores, ep, model=candidate_name, rows=rows)
        y_h, s_h = endpoint_arrays(labels, champion_scores, ep, model=champion_name, rows=rows)
        # Both score sets were aligned to the same labelled rows, so the labels are identical.
        if not np.array_equal(y_c, y_h):  # pragma: no cover - guarded by endpoint_arrays
            raise DataError(f"labels for endpoint '{ep}' differ between the two models")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", DeLongWarning)
            better = delong_test(y_c, s_c, s_h, alternative="greater", conf_level=policy.conf_level)
            worse = delong_test(y_c, s_c, s_h, alternative="less", conf_level=policy.conf_level)
        raw.append(
            {
                "endpoint": ep,
                "better": better,
                "p_worse": worse.p_value,
                "brier_c": _brier(y_c, s_c),
                "brier_h": _brier(y_h, s_h),
                "undefined": bool(caught) or math.isnan(better.z),
                "why_undefined": str(caught[0].message) if caught else "the test statistic is not finite",
            }
        )

    p_better_adj = adjust_pvalues([r["better"].p_value for r in raw], method=policy.adjustment)
    p_worse_adj = adjust_pvalues([r["p_worse"] for r in raw], method=policy.adjustment)
    adj_name = {"holm": "Holm-adjusted", "bh": "BH-adjusted", "none": "unadjusted"}[policy.adjustment]

    verdicts: list[EndpointVerdict] = []
    for r, pb_adj, pw_adj in zip(raw, p_better_adj, p_worse_adj, strict=True):
        t = r["better"]
        ep = r["endpoint"]
        undefined = r["undefined"]
        is_worse = bool(not undefined and pw_adj < policy.alpha)
        non_inf = bool(not undefined and t.ci_delta[0] >= -policy.margin)
        superior = bool(not undefined and pb_adj < policy.alpha)
        brier_delta = r["brier_c"] - r["brier_h"]
        calib_ok = bool(math.isfinite(brier_delta) and brier_delta <= policy.brier_margin)
        if undefined:
            verdict = "undefined"
        elif is_worse:
            verdict = "worse"
        elif superior and non_inf:
            verdict = "superior"
        elif non_inf:
            verdict = "non-inferior"
        else:
            verdict = "inferiority-not-excluded"
        reasons: list[str] = []
        if undefined:
            reasons.append(
                f"{ep}: the DeLong test cannot be done on the {policy.split} split ({r['why_undefined']})."
            )
        else:
            reasons.append(
                f"{ep}: AUC {candidate_name} {_fmt(t.auc_a)} ({level_pct} CI {_fmt(t.ci_auc_a[0])}–"
                f"{_fmt(t.ci_auc_a[1])}) vs {champion_name} {_fmt(t.auc_b)} ({_fmt(t.ci_auc_b[0])}–"
                f"{_fmt(t.ci_auc_b[1])}), n = {t.n_cases + t.n_controls} ({t.n_cases} cases); "
                f"ΔAUC {_fmt_signed(t.delta)} ({level_pct} CI {_fmt_signed(t.ci_delta[0])} to "
                f"{_fmt_signed(t.ci_delta[1])}), z = {_fmt(t.z, 2)}."
            )
            if is_worse:
                reasons.append(
                    f"{ep}: significantly worse (one-sided {_fmt_p(r['p_worse'])}; {adj_name} "
                    f"{_fmt_p(pw_adj)}, below α = {policy.alpha:g})."
                )
            elif superior:
                reasons.append(
                    f"{ep}: significantly better (one-sided {_fmt_p(t.p_value)}; {adj_name} "
                    f"{_fmt_p(pb_adj)}, below α = {policy.alpha:g})."
                )
            else:
                reasons.append(
                    f"{ep}: not significantly better (one-sided {_fmt_p(t.p_value)}; {adj_name} "
                    f"{_fmt_p(pb_adj)}, not below α = {policy.alpha:g})."
                )
            if non_inf:
                reasons.append(
                    f"{ep}: non-inferior (ΔAUC lower bound {_fmt_signed(t.ci_delta[0])} "
                    f"≥ −{policy.margin:g})."
                )
            else:
                reasons.append(
                    f"{ep}: non-inferiority not shown (ΔAUC lower bound {_fmt_signed(t.ci_delta[0])} "
                    f"< −{policy.margin:g})."
                )
        if math.isfinite(brier_delta):
            state = "within" if calib_ok else "exceeds"
            reasons.append(
                f"{ep}: Brier {_fmt(r['brier_c'], 4)} vs {_fmt(r['brier_h'], 4)} "
                f"(Δ {_fmt_signed(brier_delta, 4)}, "
                f"{state} the allowed +{policy.brier_margin:g})."
            )
        else:
            reasons.append(f"{ep}: Brier score not available (scores must be probabilities in [0, 1]).")
        verdicts.append(
            EndpointVerdict(
                endpoint=ep,
                n=t.n_cases + t.n_controls,
                n_cases=t.n_cases,
                n_controls=t.n_controls,
                auc_candidate=t.auc_a,
                ci_auc_candidate=t.ci_auc_a,
                auc_champion=t.auc_b,
                ci_auc_champion=t.ci_auc_b,
                delta=t.delta,
                ci_delta=t.ci_delta,
                se_delta=t.se_delta,
                z=t.z,
                p_better=t.p_value,
                p_worse=float(r["p_worse"]),
                p_better_adjusted=float(pb_adj),
                p_worse_adjusted=float(pw_adj),
                brier_candidate=r["brier_c"],
                brier_champion=r["brier_h"],
                brier_delta=brier_delta,
                superior=superior,
                worse=is_worse,
                non_inferior=non_inf,
                calibration_ok=calib_ok,
                verdict=verdict,
                reasons=tuple(reasons),
            )
        )

    return _overall(verdicts, policy, candidate_name, champion_name, adj_name)


def _names(vs: Sequence[EndpointVerdict]) -> str:
    return ", ".join(v.endpoint for v in vs)


def _overall(
    verdicts: list[EndpointVerdict], policy: GatePolicy, candidate: str, champion: str, adj_name: str
) -> Decision:
    n_total = len(verdicts)
    undefined = [v for v in verdicts if v.verdict == "undefined"]
    worse = [v for v in verdicts if v.worse]
    not_noninf = [v for v in verdicts if not v.non_inferior and v.verdict != "undefined"]
    superior = [v for v in verdicts if v.superior]
    bad_calib = [v for v in verdicts if not v.calibration_ok]
    reasons: list[str] = []
    ok_defined = not undefined
    ok_worse = not worse
    ok_noninf = not not_noninf and ok_defined
    ok_sup = len(superior) >= policy.min_superior
    ok_calib = not bad_calib
    if undefined:
        reasons.append(
            f"The test cannot be done on {len(undefined)} endpoint(s) ({_names(undefined)}), "
            "so the gate fails."
        )
    if worse:
        reasons.append(
            f"{len(worse)} endpoint(s) significantly worse ({_names(worse)}; one-sided, {adj_name}, "
            f"α = {policy.alpha:g})."
        )
    else:
        reasons.append(f"No endpoint is significantly worse (one-sided, {adj_name}, α = {policy.alpha:g}).")
    if not_noninf:
        reasons.append(
            f"Non-inferiority not shown for {len(not_noninf)} endpoint(s) ({_names(not_noninf)}): "
            f"ΔAUC lower bound below −{policy.margin:g}."
        )
    elif ok_defined:
        reasons.append(f"All {n_total} endpoint(s) are non-inferior (ΔAUC lower bound ≥ −{policy.margin:g}).")
    sup_text = f" ({_names(superior)})" if superior else ""
    reasons.append(
        f"{len(superior)} of {n_total} endpoint(s) significantly better{sup_text}; "
        f"{policy.min_superior} required ({'met' if ok_sup else 'not met'})."
    )
    if bad_calib:
        reasons.append(
            f"Calibration fails on {len(bad_calib)} endpoint(s) ({_names(bad_calib)}): Brier score higher "
            f"than the champion's by more than {policy.brier_margin:g}, or not available."
        )
    else:
        reasons.append(
            f"Calibration holds: Brier score within +{policy.brier_margin:g} of the champion's everywhere."
        )
    promote = ok_defined and ok_worse and ok_noninf and ok_sup and ok_calib
    reasons.insert(
        0,
        f"{'Promote' if promote else 'Do not promote'} {candidate} over {champion} "
        f"(paired DeLong on the {policy.split} split, {n_total} endpoint(s)).",
    )
    return Decision(
        candidate=candidate,
        champion=champion,
        policy=policy,
        endpoints=tuple(verdicts),
        promote=promote,
        n_superior=len(superior),
        reasons=tuple(reasons),
    )
