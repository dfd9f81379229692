"""Subgroups a study declares: the patients whose performance the report shows and the gate checks.

A study's optional top-level ``subgroups:`` key lists them, each built from one
feature::

    subgroups:
      - {name: sex, feature: sex}                          # categorical: one level per category
      - {name: age_band, feature: age, cuts: [50, 65]}     # numeric: <50, 50-<65, >=65
      - {name: anti_ccp, feature: acpa_positive, labels: [negative, positive]}  # binary

A categorical feature gives one level per category, a binary one two levels
(``no``/``yes`` unless ``labels`` names them), a numeric or integer one a level
per interval between its ``cuts`` (``[low, high)``; required). A patient whose
feature is missing is in no level of that subgroup.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from cohortlm.errors import SpecError

__all__ = ["SUBGROUP_KEYS", "Subgroup", "parse_subgroups"]

SUBGROUP_KEYS = frozenset({"name", "feature", "cuts", "labels"})
_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")


class _FeatureLike(Protocol):
    """What a subgroup reads of a feature (:class:`cohortlm.cohort.variables.Feature`)."""

    @property
    def name(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def categories(self) -> tuple[str, ...] | None: ...
    @property
    def min(self) -> float | None: ...
    @property
    def max(self) -> float | None: ...


@dataclass(frozen=True)
class Subgroup:
    """One declared subgroup.

    Attributes:
        name: The subgroup's name (lower snake case), as in ``subgroups.csv``.
        feature: The feature whose value puts a patient in a level.
        levels: The level names, in order.
        cuts: For a numeric feature, the cut points (a level is ``[cut_i, cut_{i+1})``).
        labels: The names given in the spec (None: the default names).
    """

    name: str
    feature: str
    levels: tuple[str, ...]
    cuts: tuple[float, ...] | None = None
    labels: tuple[str, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The spec's layout (defaults left out)."""
        out: dict[str, Any] = {"name": self.name, "feature": self.feature}
        if self.cuts is not None:
            out["cuts"] = [int(c) if float(c).is_integer() else c for c in self.cuts]
        if self.labels is not None:
            out["labels"] = list(self.labels)
        return out


def _err(source: str, key: str, msg: str) -> SpecError:
    return SpecError(f"{source}: {key}: {msg}")


def _cut_names(cuts: Sequence[float]) -> tuple[str, ...]:
    shown = [f"{c:g}" for c in cuts]
    inner = [f"{a}-<{b}" for a, b in itertools.pairwise(shown)]
    return (f"<{shown[0]}", *inner, f">={shown[-1]}")


def _parse_cuts(source: str, key: str, raw: Any, feature: _FeatureLike) -> tuple[float, ...]:
    if raw is None:
        raise _err(
            source,
            key,
            f"feature '{feature.name}' is {feature.type}: give its bins as cut points, e.g. cuts: [50, 65]",
        )
    if not isinstance(raw, list) or not raw:
        raise _err(source, key, "must be a non-empty list of numbers in increasing order")
    cuts = []
    for value in raw:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise _err(source, key, "must be a non-empty list of numbers in increasing order")
        cuts.append(float(value))
    if any(b <= a for a, b in itertools.pairwise(cuts)):
        raise _err(source, key, "must be strictly increasing")
    low = -math.inf if feature.min is None else feature.min
    high = math.inf if feature.max is None else feature.max
    if not all(low < c <= high for c in cuts):
        raise _err(source, key, f"must lie within feature '{feature.name}''s range ({low:g} to {high:g})")
    return tuple(cuts)


def _parse_one(source: str, i: int, raw: Any, features: Mapping[str, _FeatureLike]) -> Subgroup:
    where = f"subgroups[{i}]"
    if not isinstance(raw, Mapping):
        raise _err(source, where, "must be a mapping with name and feature")
    extra = sorted(str(k) for k in raw if k not in SUBGROUP_KEYS)
    if extra:
        raise _err(
            source, f"{where}.{extra[0]}", f"unknown key; allowed keys are {', '.join(sorted(SUBGROUP_KEYS))}"
        )
    for req in ("name", "feature"):
        if req not in raw:
            raise _err(source, f"{where}.{req}", "is required")
    name = raw["name"]
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise _err(source, f"{where}.name", "must be a lower snake_case name such as 'age_band'")
    where = f"subgroups.{name}"
    fname = raw["feature"]
    if not isinstance(fname, str) or fname not in features:
        raise _err(source, f"{where}.feature", "must name one of the study's features")
    feature = features[fname]
    cuts: tuple[float, ...] | None = None
    if feature.type in ("numeric", "integer"):
        cuts = _parse_cuts(source, f"{where}.cuts", raw.get("cuts"), feature)
        levels = _cut_names(cuts)
    elif "cuts" in raw:
        raise _err(source, f"{where}.cuts", f"applies to numeric features only; '{fname}' is {feature.type}")
    elif feature.type == "categorical":
        levels = tuple(str(c) for c in feature.categories or ())
    else:
        levels = ("no", "yes")
    labels = raw.get("labels")
    if labels is not None:
        if (
            not isinstance(labels, list)
            or len(labels) != len(levels)
            or not all(isinstance(x, str) and x for x in labels)
            or len(set(labels)) != len(labels)
        ):
            raise _err(source, f"{where}.labels", f"must be {len(levels)} distinct names, one per level")
        labels = tuple(labels)
        levels = labels
    return Subgroup(name=name, feature=fname, levels=levels, cuts=cuts, labels=labels)


def parse_subgroups(source: str, raw: Any, features: Sequence[_FeatureLike]) -> tuple[Subgroup, ...]:
    """The study's ``subgroups:`` list, checked against its features.

    Raises:
        SpecError: Naming the key (``subgroups.<name>.cuts`` …) and what to write instead.
    """
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise _err(source, "subgroups", "must be a list of {name, feature} mappings")
    by_name = {f.name: f for f in features}
    out = tuple(_parse_one(source, i, item, by_name) for i, item in enumerate(raw))
    names = [s.name for s in out]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise _err(source, f"subgroups.{dup[0]}", "is declared twice")
    return out
