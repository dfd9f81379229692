"""The gate's policy: what a candidate must show, validated from one table of constraints.

Every key of :class:`GatePolicy` has one entry in :data:`CONSTRAINTS` (in the
spirit of scikit-learn's ``validate_params``): a check that returns the value in
its plain form or raises :class:`PolicyError` naming the key. The default numbers
live once, in ``cohortlm/policies/default.yaml``; the dataclass reads its
defaults from that file, so ``GatePolicy()`` is the default policy.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from cohortlm.errors import SpecError
from cohortlm.evaluation.stats.multitest import ADJUSTMENTS
from cohortlm.yamlsafe import load_yaml_file

__all__ = [
    "ALPHA_SPENDING",
    "CALIBRATION_RULES",
    "CONSTRAINTS",
    "INSUFFICIENT",
    "MARGIN_RULES",
    "SUBGROUP_RULES",
    "GatePolicy",
    "PolicyError",
    "default_policy_path",
    "legacy_policy_path",
    "load_policy",
]

MARGIN_RULES: tuple[str, ...] = ("absolute", "cases")
CALIBRATION_RULES: tuple[str, ...] = ("test", "brier_margin", "none")
ALPHA_SPENDING: tuple[str, ...] = ("inverse_square", "bonferroni", "none")
INSUFFICIENT: tuple[str, ...] = ("exclude", "block")
SUBGROUP_RULES: tuple[str, ...] = ("test", "none")


class PolicyError(SpecError):
    """A policy key is unknown or its value breaks the key's constraint (the message names the key)."""


def default_policy_path() -> Path:
    """The packaged default policy file, ``cohortlm/policies/default.yaml``."""
    return Path(str(resources.files("cohortlm") / "policies" / "default.yaml"))


def legacy_policy_path() -> Path:
    """The first default policy (margin 0.02 everywhere, Brier point rule), for comparison."""
    return Path(str(resources.files("cohortlm") / "policies" / "first_default.yaml"))


# ----------------------------------------------------------------------------- constraints

Check = Callable[[str, Any], Any]


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise PolicyError(f"policy key '{name}' must be a finite number, got {value!r}")
    return float(value)


def _open_unit(*, nullable: bool = False) -> Check:
    def check(name: str, value: Any) -> float | None:
        if value is None and nullable:
            return None
        if not 0.0 < _number(name, value) < 1.0:
            tail = " or null" if nullable else ""
            raise PolicyError(f"policy key '{name}' must be in (0, 1){tail}, got {value!r}")
        return float(value)

    return check


def _non_negative(name: str, value: Any) -> float:
    if _number(name, value) < 0:
        raise PolicyError(f"policy key '{name}' must be ≥ 0, got {value!r}")
    return float(value)


def _whole(low: int, *, nullable: bool = False) -> Check:
    def check(name: str, value: Any) -> int | None:
        if value is None and nullable:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise PolicyError(f"policy key '{name}' must be a whole number ≥ {low}, got {value!r}")
        return value

    return check


def _one_of(allowed: tuple[str, ...]) -> Check:
    def check(name: str, value: Any) -> str:
        if value not in allowed:
            raise PolicyError(f"policy key '{name}' must be one of {', '.join(allowed)}, got {value!r}")
        return str(value)

    return check


def _split_name(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise PolicyError(f"policy key '{name}' must be a split name, got {value!r}")
    return value


def _endpoint_list(name: str, value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str) or not all(isinstance(e, str) for e in value):
        raise PolicyError(f"policy key '{name}' must be a list of endpoint names, got {value!r}")
    if not value:
        raise PolicyError(f"policy key '{name}' must name at least one endpoint (or be null for all)")
    return tuple(value)


def _margin_map(name: str, value: Any) -> dict[str, float]:
    if not isinstance(value, Mapping):
        raise PolicyError(f"policy key '{name}' must map endpoint names to margins, got {value!r}")
    return {str(ep): _non_negative(f"{name}.{ep}", v) for ep, v in value.items()}


def _slope_range(name: str, value: Any) -> tuple[float, float]:
    try:
        low, high = (_number(name, v) for v in value)
    except (TypeError, ValueError):
        raise PolicyError(f"policy key '{name}' must be [low, high], got {value!r}") from None
    if not 0 <= low < 1 < high:
        raise PolicyError(f"policy key '{name}' must satisfy 0 ≤ low < 1 < high, got {value!r}")
    return (low, high)


#: One check per policy key, in the order they are validated.
CONSTRAINTS: dict[str, Check] = {
    "alpha": _open_unit(),
    "conf_level": _open_unit(),
    "ni_alpha": _open_unit(nullable=True),
    "calibration_alpha": _open_unit(nullable=True),
    "subgroup_alpha": _open_unit(nullable=True),
    "margin": _non_negative,
    "margin_max": _non_negative,
    "brier_margin": _non_negative,
    "citl_tolerance": _non_negative,
    "min_superior": _whole(0),
    "margin_cases": _whole(1),
    "min_cases": _whole(2),
    "max_looks": _whole(1, nullable=True),
    "margin_rule": _one_of(MARGIN_RULES),
    "calibration": _one_of(CALIBRATION_RULES),
    "alpha_spending": _one_of(ALPHA_SPENDING),
    "insufficient": _one_of(INSUFFICIENT),
    "adjustment": _one_of(ADJUSTMENTS),
    "subgroups": _one_of(SUBGROUP_RULES),
    "split": _split_name,
    "primary": _endpoint_list,
    "margins": _margin_map,
    "slope_range": _slope_range,
}


def _cross_checks(values: Mapping[str, Any]) -> None:
    """Constraints between keys."""
    if values["max_looks"] is None and values["alpha_spending"] != "none":
        raise PolicyError("policy key 'max_looks' must be a whole number ≥ 1 unless alpha_spending is none")


def _default_values() -> dict[str, Any]:
    """The default policy file's values, checked (the single source of the default numbers)."""
    raw = load_yaml_file(default_policy_path(), what="policy file")
    missing = sorted(set(CONSTRAINTS) - set(raw))
    if missing:  # pragma: no cover - guarded by the tests
        raise PolicyError(
            f"{default_policy_path()}: the default policy must set every key; missing {missing}"
        )
    return {name: check(name, raw[name]) for name, check in CONSTRAINTS.items()}


_DEFAULT = _default_values()


# ----------------------------------------------------------------------------- the policy


@dataclass(frozen=True)
class GatePolicy:
    """What a candidate must show to replace the champion (see :mod:`cohortlm.evaluation.gate`).

    Every default is read from ``cohortlm/policies/default.yaml``, which documents each key.

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
        alpha_spending: ``inverse_square``, ``bonferroni`` or ``none``.
        max_looks: Looks allowed at one test split; None = no limit (only with ``none``).
        adjustment: Adjustment within a family: ``holm``, ``bh`` or ``none``.
        conf_level: Level of the two-sided intervals reported (AUC, ΔAUC, calibration).
        split: The split the gate is decided on.
        subgroups: ``test``: a candidate shown worse than the champion in a level of a
            subgroup the study declares (one-sided paired DeLong, adjusted over every
            endpoint and level tested) is not promoted; ``none``: reported only.
        subgroup_alpha: Family level of the subgroup tests; None = ``alpha``.
    """

    alpha: float = _DEFAULT["alpha"]
    primary: tuple[str, ...] | None = _DEFAULT["primary"]
    min_superior: int = _DEFAULT["min_superior"]
    margin: float = _DEFAULT["margin"]
    margin_rule: str = _DEFAULT["margin_rule"]
    margin_cases: int = _DEFAULT["margin_cases"]
    margin_max: float = _DEFAULT["margin_max"]
    margins: Mapping[str, float] = field(default_factory=lambda: dict(_DEFAULT["margins"]))
    ni_alpha: float | None = _DEFAULT["ni_alpha"]
    calibration: str = _DEFAULT["calibration"]
    calibration_alpha: float | None = _DEFAULT["calibration_alpha"]
    citl_tolerance: float = _DEFAULT["citl_tolerance"]
    slope_range: tuple[float, float] = _DEFAULT["slope_range"]
    brier_margin: float = _DEFAULT["brier_margin"]
    min_cases: int = _DEFAULT["min_cases"]
    insufficient: str = _DEFAULT["insufficient"]
    alpha_spending: str = _DEFAULT["alpha_spending"]
    max_looks: int | None = _DEFAULT["max_looks"]
    adjustment: str = _DEFAULT["adjustment"]
    conf_level: float = _DEFAULT["conf_level"]
    split: str = _DEFAULT["split"]
    subgroups: str = _DEFAULT["subgroups"]
    subgroup_alpha: float | None = _DEFAULT["subgroup_alpha"]

    def __post_init__(self) -> None:
        # Plain values (floats, tuples, a dict), so that a YAML int (margin: 0) and its JSON
        # round trip compare equal.
        clean = {name: check(name, getattr(self, name)) for name, check in CONSTRAINTS.items()}
        _cross_checks(clean)
        for name, value in clean.items():
            object.__setattr__(self, name, value)

    @property
    def ni_level(self) -> float:
        """One-sided level of each non-inferiority test."""
        return self.alpha if self.ni_alpha is None else self.ni_alpha

    @property
    def calibration_level(self) -> float:
        """Family level of the calibration tests."""
        return self.alpha if self.calibration_alpha is None else self.calibration_alpha

    @property
    def subgroup_level(self) -> float:
        """Family level of the subgroup tests."""
        return self.alpha if self.subgroup_alpha is None else self.subgroup_alpha

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "<policy>") -> GatePolicy:
        """Build a policy from a mapping; unknown keys are errors.

        Args:
            data: Keys as the attributes; missing keys take the defaults.
            source: Where the mapping came from, for error messages.

        Raises:
            PolicyError: Naming the source and the key.
        """
        if not isinstance(data, Mapping):
            raise PolicyError(f"{source}: a policy must be a mapping of keys to values")
        allowed = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise PolicyError(
                f"{source}: unknown policy key(s) {', '.join(map(repr, unknown))}; "
                f"allowed: {', '.join(sorted(allowed))}"
            )
        try:
            return cls(**dict(data))
        except (SpecError, TypeError) as exc:
            raise PolicyError(f"{source}: {exc}") from None

    @classmethod
    def from_yaml(cls, path: str | Path) -> GatePolicy:
        """Load a policy from a YAML file (a top-level ``policy:`` key is optional).

        A ``margin`` without a ``margin_rule``, or a ``brier_margin`` without a
        ``calibration`` key, is an error: the meaning of those keys changed with the
        second default policy, and a policy file must say which it means.

        Raises:
            PolicyError: If the file is missing, is not YAML, or a key is unknown or invalid.
        """
        p = Path(path)
        try:
            raw = load_yaml_file(p, what="policy file")  # cohortlm.yamlsafe: no aliases, 1 MB, no duplicates
        except FileNotFoundError:
            raise PolicyError(f"policy file not found: {p}") from None
        except yaml.YAMLError as exc:
            raise PolicyError(f"{p}: not valid YAML ({type(exc).__name__})") from None
        if raw is None:
            raw = {}
        if isinstance(raw, Mapping) and set(raw) == {"policy"}:
            raw = raw["policy"]
        if isinstance(raw, Mapping):
            if "margin" in raw and "margin_rule" not in raw:
                raise PolicyError(
                    f"{p}: 'margin' needs 'margin_rule': absolute (the margin in AUC units on every "
                    "endpoint, the first default's meaning) or cases (scaled to each endpoint's case count)"
                )
            if "brier_margin" in raw and "calibration" not in raw:
                raise PolicyError(
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


def load_policy(path: str | Path | None = None) -> GatePolicy:
    """Load a policy file, or the packaged default when ``path`` is None."""
    return GatePolicy.from_yaml(default_policy_path() if path is None else path)
