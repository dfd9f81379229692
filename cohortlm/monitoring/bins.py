"""Fixed per-feature bins derived from the study spec, so server and reference count alike.

The edges come from the spec (bounds and categories), never from data, so an edge
never holds a patient's value. A bin is an integer index:

* numeric/integer with bounds: an integer feature spanning at most 100 values gets
  one bin per value; otherwise 50 equal-width bins over ``[min, max]``;
* numeric without bounds: 50 bins over ``sign(x)·log1p(|x|)`` in ``[-20, 20]``;
* binary: 0 and 1; categorical: one bin per category in spec order;
* every feature has a last bin for a missing value.

Counts per bin are what the server keeps and what the drift test reads; fine bins
with few patients are merged at read time (:func:`cohortlm.monitoring.drift.group_bins`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from cohortlm.cohort.study import StudySpec
from cohortlm.cohort.variables import Feature

FINE_BINS = 50
MAX_INTEGER_BINS = 100
_UNBOUNDED = 20.0


@dataclass(frozen=True)
class FeatureBins:
    """The bins of one feature: ``n_bins`` value bins plus one for missing (index ``n_bins``)."""

    name: str
    type: str
    n_bins: int
    lo: float
    hi: float
    integer_step: bool
    categories: tuple[str, ...] | None

    @property
    def missing_bin(self) -> int:
        return self.n_bins

    @property
    def size(self) -> int:
        """Bins including the missing one."""
        return self.n_bins + 1

    def index(self, values: np.ndarray) -> np.ndarray:
        """Bin index of each value (an int64 array of the same length); missing -> the last bin."""
        n = len(values)
        if self.type == "categorical":
            lookup = {c: i for i, c in enumerate(self.categories or ())}
            return np.fromiter(
                (lookup.get(v, self.missing_bin) if isinstance(v, str) else self.missing_bin for v in values),
                dtype=np.int64,
                count=n,
            )
        x = np.asarray(values, dtype=float)
        missing = ~np.isfinite(x)
        out = np.full(n, self.missing_bin, dtype=np.int64)
        ok = x[~missing]
        if self.type == "binary":
            out[~missing] = (ok >= 0.5).astype(np.int64)
            return out
        if self.lo == -_UNBOUNDED and self.hi == _UNBOUNDED and not self.integer_step:
            ok = np.sign(ok) * np.log1p(np.abs(ok))
        if self.integer_step:
            idx = np.rint(ok - self.lo)
        else:
            idx = np.floor((ok - self.lo) / (self.hi - self.lo) * self.n_bins)
        out[~missing] = np.clip(idx, 0, self.n_bins - 1).astype(np.int64)
        return out

    def counts(self, values: np.ndarray) -> np.ndarray:
        """Patients per bin (length :attr:`size`)."""
        return np.bincount(self.index(values), minlength=self.size)


def feature_bins(feature: Feature) -> FeatureBins:
    """The bins of one feature of the spec."""
    if feature.type == "categorical":
        cats = tuple(feature.categories or ())
        return FeatureBins(feature.name, "categorical", len(cats), 0.0, 0.0, False, cats)
    if feature.type == "binary":
        return FeatureBins(feature.name, "binary", 2, 0.0, 1.0, True, None)
    lo, hi = feature.min, feature.max
    if lo is None or hi is None or not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return FeatureBins(feature.name, feature.type, FINE_BINS, -_UNBOUNDED, _UNBOUNDED, False, None)
    if feature.type == "integer" and hi - lo + 1 <= MAX_INTEGER_BINS:
        return FeatureBins(feature.name, "integer", int(hi - lo) + 1, float(lo), float(hi), True, None)
    return FeatureBins(feature.name, feature.type, FINE_BINS, float(lo), float(hi), False, None)


def spec_bins(spec: StudySpec) -> dict[str, FeatureBins]:
    """Feature name -> its bins, in spec order."""
    return {f.name: feature_bins(f) for f in spec.features}


def count_columns(
    bins: Mapping[str, FeatureBins], columns: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Counts per bin of each feature present in ``columns`` (checked feature arrays)."""
    return {name: b.counts(columns[name]) for name, b in bins.items() if name in columns}
