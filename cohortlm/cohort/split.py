"""Patient-level, seeded train/validation/test split.

Each patient's place in the order is the SHA-256 of ``"<seed>:<patient id>"``,
so the assignment depends only on the seed and the set of ids: shuffling the
rows changes nothing, and no patient can land in two splits. The first
``train`` patients in that order are the training split, the next
``validation`` the validation split, the rest the test split.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from cohortlm.cohort.study import SPLIT_NAMES, SplitSpec, StudySpec
from cohortlm.errors import DataError


def split_counts(n: int, split: SplitSpec) -> dict[str, int]:
    """Counts per split for ``n`` patients: exact counts, or fractions rounded by largest remainder."""
    if split.is_fraction:
        raw = {k: split.sizes[k] * n for k in SPLIT_NAMES}
        counts = {k: int(np.floor(v)) for k, v in raw.items()}
        rest = n - sum(counts.values())
        for k in sorted(SPLIT_NAMES, key=lambda k: raw[k] - counts[k], reverse=True)[:rest]:
            counts[k] += 1
        return counts
    counts = {k: int(split.sizes[k]) for k in SPLIT_NAMES}
    if sum(counts.values()) != n:
        raise DataError(
            f"the split sizes add up to {sum(counts.values())} patients "
            f"({', '.join(f'{k} {v}' for k, v in counts.items())}) but the cohort has {n}; "
            "change split.sizes in the study spec, or give fractions"
        )
    return counts


def _order_key(seed: int, ids: pd.Series) -> np.ndarray:
    prefix = f"{seed}:".encode()
    return np.array([hashlib.sha256(prefix + str(i).encode()).hexdigest() for i in ids.to_numpy()])


def assign_splits(ids: pd.Series, split: SplitSpec) -> pd.Series:
    """The split name ("train", "validation" or "test") for each id, aligned with ``ids``.

    Raises:
        DataError: ids are missing or duplicated, or counts do not add up.
    """
    if ids.isna().any():
        raise DataError(f"{int(ids.isna().sum())} row(s) have no patient id; every row needs one")
    if ids.duplicated().any():
        raise DataError(
            f"{int(ids.duplicated().sum())} patient id(s) appear more than once; "
            "the split is by patient, so each patient must have one row"
        )
    counts = split_counts(len(ids), split)
    order = np.argsort(_order_key(split.seed, ids), kind="stable")
    names = np.empty(len(ids), dtype=object)
    start = 0
    for name in SPLIT_NAMES:
        names[order[start : start + counts[name]]] = name
        start += counts[name]
    return pd.Series(names, index=ids.index, name="split")


def split_table(table: pd.DataFrame, spec: StudySpec) -> pd.DataFrame:
    """``table`` with a ``split`` column added (a copy)."""
    out = table.copy()
    out["split"] = assign_splits(out[spec.id_column], spec.split)
    return out
