"""Multiple-testing adjustment across endpoints: Holm (family-wise error) and Benjamini–Hochberg (FDR).

Both return adjusted p-values in the input order, equal to R's
``p.adjust(p, method = "holm")`` and ``p.adjust(p, method = "BH")``: compare an
adjusted p-value with α directly. NaN p-values (an endpoint whose test is
undefined) stay NaN and do not count towards the number of tests, as in R.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["ADJUSTMENTS", "adjust_pvalues", "adjust_pvalues_rows", "benjamini_hochberg", "holm"]

Adjustment = Literal["holm", "bh", "none"]
ADJUSTMENTS: tuple[str, ...] = ("holm", "bh", "none")


def _as_pvalues(pvalues: ArrayLike) -> NDArray[np.float64]:
    try:
        p = np.asarray(pvalues, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError("pvalues must be numeric") from None
    if p.ndim != 1:
        raise ValueError(f"pvalues must be one-dimensional, got shape {p.shape}")
    finite = p[~np.isnan(p)]
    if ((finite < 0) | (finite > 1)).any():
        raise ValueError("pvalues must lie in [0, 1] (NaN allowed)")
    return p


def _ranked(pvalues: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.intp]]:
    """The checked p-values, an all-NaN result to fill, and the tested ones' indices, smallest p first."""
    p = _as_pvalues(pvalues)
    ok = np.flatnonzero(~np.isnan(p))
    return p, np.full_like(p, np.nan), ok[np.argsort(p[ok], kind="stable")]


def holm(pvalues: ArrayLike) -> NDArray[np.float64]:
    """Holm's step-down adjustment (controls the family-wise error rate).

    Args:
        pvalues: Raw p-values, one per test; NaN for a test that could not be done.

    Returns:
        Adjusted p-values in the input order: ``p_(i) · (m − i + 1)``, made
        monotone from the smallest up and capped at 1.

    Raises:
        ValueError: If ``pvalues`` is not a 1-D array of numbers in [0, 1] or NaN.
    """
    p, out, order = _ranked(pvalues)
    m = order.size
    scaled = p[order] * (m - np.arange(m))
    out[order] = np.minimum(np.maximum.accumulate(scaled), 1.0)
    return out


def benjamini_hochberg(pvalues: ArrayLike) -> NDArray[np.float64]:
    """Benjamini–Hochberg step-up adjustment (controls the false discovery rate).

    Args:
        pvalues: Raw p-values, one per test; NaN for a test that could not be done.

    Returns:
        Adjusted p-values (q-values) in the input order: ``p_(i) · m / i``, made
        monotone from the largest down and capped at 1.

    Raises:
        ValueError: If ``pvalues`` is not a 1-D array of numbers in [0, 1] or NaN.
    """
    p, out, order = _ranked(pvalues)
    m = order.size
    scaled = p[order] * m / np.arange(1, m + 1)
    out[order] = np.minimum(np.minimum.accumulate(scaled[::-1])[::-1], 1.0)
    return out


def adjust_pvalues(pvalues: ArrayLike, *, method: Adjustment | str = "holm") -> NDArray[np.float64]:
    """Adjust p-values by name: ``"holm"``, ``"bh"`` (Benjamini–Hochberg) or ``"none"``.

    Args:
        pvalues: Raw p-values; NaN allowed.
        method: The adjustment.

    Returns:
        Adjusted p-values in the input order.

    Raises:
        ValueError: If ``method`` is unknown or ``pvalues`` is malformed.
    """
    if method == "holm":
        return holm(pvalues)
    if method == "bh":
        return benjamini_hochberg(pvalues)
    if method == "none":
        return _as_pvalues(pvalues).copy()
    raise ValueError(f"method must be 'holm', 'bh' or 'none', got {method!r}")


def adjust_pvalues_rows(pvalues: ArrayLike, *, method: Adjustment | str = "holm") -> NDArray[np.float64]:
    """Adjust each row of a ``(R, k)`` array separately, as :func:`adjust_pvalues` adjusts one.

    NaN marks a hypothesis outside the row's family (not counted, adjusted value
    NaN), so rows may hold families of different sizes. The simulation of the gate
    adjusts thousands of replicates at once with this; the gate on one data set
    uses the same function with one row.

    Raises:
        ValueError: If ``method`` is unknown or ``pvalues`` is not two-dimensional.
    """
    if method not in ADJUSTMENTS:
        raise ValueError(f"method must be 'holm', 'bh' or 'none', got {method!r}")
    p = np.asarray(pvalues, dtype=np.float64)
    if p.ndim != 2:
        raise ValueError(f"pvalues must be two-dimensional (replicates, hypotheses), got shape {p.shape}")
    if method == "none":
        return p.copy()
    present = ~np.isnan(p)
    k = present.sum(axis=1, keepdims=True).astype(np.float64)
    order = np.argsort(np.where(present, p, np.inf), axis=1, kind="stable")
    ps = np.take_along_axis(p, order, axis=1)
    rank = np.arange(1, p.shape[1] + 1, dtype=np.float64)[None, :]
    if method == "holm":
        scaled = np.where(np.isnan(ps), -np.inf, (k - rank + 1) * ps)
        adj = np.minimum(np.maximum.accumulate(scaled, axis=1), 1.0)
    else:
        scaled = np.where(np.isnan(ps), np.inf, ps * k / rank)
        adj = np.minimum(np.minimum.accumulate(scaled[:, ::-1], axis=1)[:, ::-1], 1.0)
    adj = np.where(np.isnan(ps), np.nan, adj)
    out = np.empty_like(adj)
    np.put_along_axis(out, order, adj, axis=1)
    return out
