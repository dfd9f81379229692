"""Input drift per feature from aggregated bin counts: merging, PSI and a chi-square test.

Served counts come from the server's fine bins (:mod:`cohortlm.monitoring.bins`); the
reference counts from the training cohort, binned the same way. Before anything is
computed, adjacent bins are merged until every group holds at least ``min_count``
served patients and ``min_count`` reference patients and a minimum share of the
reference (at most about 20 groups), so no reported aggregate rests on fewer than
``min_count`` patients and the PSI is not inflated by sparse bins.

``psi = Σ (q - p) · ln(q / p)`` over groups, with ``p`` the reference and ``q`` the
served shares (each floored at 1e-4). A feature has drifted when its PSI exceeds
the threshold (0.2 by default, "a significant shift" in credit scoring's rule of
thumb) *and* the chi-square test of homogeneity of the two count vectors rejects at
``alpha`` (Bonferroni over the features is the caller's choice): the PSI says the
shift is large, the test that it is not noise of a small window.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.stats import chi2

MIN_COUNT = 10
MIN_REFERENCE_SHARE = 0.05
PSI_THRESHOLD = 0.2
_FLOOR = 1e-4


@dataclass(frozen=True)
class FeatureDrift:
    """Drift of one feature between the reference and the served window."""

    feature: str
    psi: float
    p_value: float
    drifted: bool
    n_groups: int
    n_served: int
    n_reference: int

    def to_dict(self) -> dict[str, object]:
        return {
            "psi": _finite(self.psi),
            "p_value": _finite(self.p_value),
            "drifted": self.drifted,
            "n_groups": self.n_groups,
            "n_served": self.n_served,
            "n_reference": self.n_reference,
        }


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def group_bins(
    *counts: ArrayLike, min_count: int = MIN_COUNT, min_share_of_first: float = 0.0
) -> list[list[int]]:
    """Groups of adjacent bin indices in which every count vector reaches ``min_count``.

    Args:
        counts: count vectors of equal length (e.g. reference and served).
        min_count: the fewest patients any vector may have in a group.
        min_share_of_first: the smallest share of the first vector's total a group must hold.

    Returns:
        Lists of bin indices; a last group short of the minimum joins the one before it.
        Bins empty in every vector are left out. One group when the totals are too small.
    """
    arrays = [np.asarray(c, dtype=np.int64) for c in counts]
    if not arrays:
        return []
    size = len(arrays[0])
    if any(len(a) != size for a in arrays):
        raise ValueError("count vectors must have the same number of bins")
    need_first = min_share_of_first * float(arrays[0].sum())
    groups: list[list[int]] = []
    current: list[int] = []
    acc = np.zeros(len(arrays), dtype=np.int64)
    for i in range(size):
        column = np.array([a[i] for a in arrays])
        if not column.any():
            continue
        current.append(i)
        acc += column
        if (acc >= min_count).all() and acc[0] >= need_first:
            groups.append(current)
            current, acc = [], np.zeros(len(arrays), dtype=np.int64)
    if current:
        if groups:
            groups[-1].extend(current)
        else:
            groups.append(current)
    return groups


def merged(counts: ArrayLike, groups: list[list[int]]) -> NDArray[np.int64]:
    """The counts summed within each group."""
    c = np.asarray(counts, dtype=np.int64)
    return np.array([int(c[g].sum()) for g in groups], dtype=np.int64)


def privacy_merge(counts: ArrayLike, min_count: int = MIN_COUNT) -> list[int]:
    """Served counts with small bins merged into neighbours: no group under ``min_count``
    (a total under ``min_count`` is reported as one group). Returns the group totals."""
    groups = group_bins(counts, min_count=min_count)
    return [int(x) for x in merged(counts, groups)]


def psi(reference: ArrayLike, served: ArrayLike) -> float:
    """Population stability index of two count vectors over the same groups."""
    r = np.asarray(reference, dtype=float)
    s = np.asarray(served, dtype=float)
    if r.sum() <= 0 or s.sum() <= 0:
        return math.nan
    p = np.maximum(r / r.sum(), _FLOOR)
    q = np.maximum(s / s.sum(), _FLOOR)
    return float(np.sum((q - p) * np.log(q / p)))


def homogeneity_p(reference: ArrayLike, served: ArrayLike) -> float:
    """Chi-square test that both count vectors come from one distribution (p-value)."""
    table = np.vstack([np.asarray(reference, dtype=float), np.asarray(served, dtype=float)])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or (table.sum(axis=1) == 0).any():
        return math.nan
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
    stat = float(((table - expected) ** 2 / expected).sum())
    return float(chi2.sf(stat, table.shape[1] - 1))


def feature_drift(
    feature: str,
    reference: ArrayLike,
    served: ArrayLike,
    *,
    min_count: int = MIN_COUNT,
    psi_threshold: float = PSI_THRESHOLD,
    alpha: float = 0.05,
) -> FeatureDrift:
    """PSI and test of one feature, on bins merged so that each group has ``min_count`` of both."""
    ref = np.asarray(reference, dtype=np.int64)
    cur = np.asarray(served, dtype=np.int64)
    n_ref, n_cur = int(ref.sum()), int(cur.sum())
    if n_ref < min_count or n_cur < min_count:
        return FeatureDrift(feature, math.nan, math.nan, False, 0, n_cur, n_ref)
    groups = group_bins(ref, cur, min_count=min_count, min_share_of_first=MIN_REFERENCE_SHARE)
    r, s = merged(ref, groups), merged(cur, groups)
    value = psi(r, s)
    p = homogeneity_p(r, s)
    drifted = bool(math.isfinite(value) and value > psi_threshold and math.isfinite(p) and p < alpha)
    return FeatureDrift(feature, value, p, drifted, len(groups), n_cur, n_ref)
