"""The gate's decision record and its schema: every number per endpoint, the policy, and why.

A :class:`Decision` serialises to JSON (NaN as ``null``, infinities as strings) and
reads back equal; :data:`DECISION_SCHEMA_VERSION` is its layout's version.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np

from cohortlm.errors import SpecError
from cohortlm.evaluation.gate.policy import GatePolicy

__all__ = [
    "DECISION_SCHEMA_VERSION",
    "INSUFFICIENT_VERDICT",
    "Decision",
    "EndpointVerdict",
    "SubgroupVerdict",
]

DECISION_SCHEMA_VERSION = 2
INSUFFICIENT_VERDICT = "insufficient evidence"


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


@dataclass(frozen=True)
class SubgroupVerdict:
    """The candidate against the champion in one level of a declared subgroup, on one endpoint.

    ``verdict`` is ``worse`` (significantly worse: one-sided paired DeLong, adjusted
    over every level tested), ``not shown worse`` or ``not tested`` (fewer than the
    policy's ``min_cases`` cases or controls in the level).
    """

    endpoint: str
    subgroup: str
    level: str
    n: int
    n_cases: int
    auc_candidate: float
    auc_champion: float
    delta: float
    p_worse: float
    p_worse_adjusted: float
    tested: bool
    worse: bool
    verdict: str

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> SubgroupVerdict:
        """Rebuild from :func:`dataclasses.asdict` output (NaN written as None)."""
        kw: dict[str, Any] = {
            f.name: (_nan_if_none(raw[f.name]) if f.type == "float" else raw[f.name]) for f in fields(cls)
        }
        return cls(**kw)


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
        subgroups: One :class:`SubgroupVerdict` per endpoint and declared subgroup level
            (empty when the study declares none; an optional key of the layout).
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
    subgroups: tuple[SubgroupVerdict, ...] = ()

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
                subgroups=tuple(SubgroupVerdict.from_dict(g) for g in data.get("subgroups") or ()),
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
