"""Named cross-column rules a study can switch on with ``rules: [...]``.

Each rule knows the columns it reads and returns a boolean mask of the rows
that break it (rows whose inputs are missing do not break it; null rates are
checked elsewhere). Validation (Great Expectations) turns each rule into an
expectation; reports show the rule's name and the number of rows, never the
rows themselves.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from cohortlm.cohort import indices

#: How far a recorded index may lie from the value recomputed from its
#: components: registries round components and indices to 1-2 decimals.
INDEX_TOLERANCE = {"das28_esr": 0.05, "das28_crp": 0.05, "cdai": 0.15}


@dataclass(frozen=True)
class Rule:
    """A cross-column check.

    Attributes:
        name: the name used in study specs and reports.
        description: what the rule demands, in words (shown in reports).
        columns: the columns it reads.
        broken: function from a table to a boolean mask of breaking rows.
    """

    name: str
    description: str
    columns: tuple[str, ...]
    broken: Callable[[pd.DataFrame], np.ndarray]


def _consistent(
    index: str, words: str, compute: Callable[..., np.ndarray], components: tuple[str, ...]
) -> Rule:
    """``<index>_consistent``: the recorded index equals ``compute(*components)`` within its tolerance.

    ``words`` names the index and its formula; the components are passed to
    ``compute`` in the order given, and they are the columns the rule reads.
    """
    tol = INDEX_TOLERANCE[index]

    def broken(df: pd.DataFrame) -> np.ndarray:
        recorded = df[index].to_numpy(dtype=float)
        expected = compute(*(df[c] for c in components))
        with np.errstate(invalid="ignore"):
            bad = np.abs(recorded - expected) > tol
        return np.asarray(bad & ~np.isnan(recorded) & ~np.isnan(expected))

    return Rule(f"{index}_consistent", f"recorded {words} within {tol}", (index, *components), broken)


def _jhaq_range(df: pd.DataFrame) -> np.ndarray:
    v = df["jhaq"].to_numpy(dtype=float)
    with np.errstate(invalid="ignore"):
        return np.asarray((v < 0) | (v > 3))


def _followup(df: pd.DataFrame) -> np.ndarray:
    v = df["followup_months"].to_numpy(dtype=float)
    with np.errstate(invalid="ignore"):
        return np.asarray(v < 21.0)


def _visit_order(df: pd.DataFrame) -> np.ndarray:
    end = df["endpoint_visit_months"].to_numpy(dtype=float)
    last = df["followup_months"].to_numpy(dtype=float)
    with np.errstate(invalid="ignore"):
        # The endpoint visit comes after baseline and no later than the last visit.
        # followup_months is rounded to 0.1 month, hence the tolerance.
        return np.asarray((end <= 0) | (end > last + 0.1))


RULES: dict[str, Rule] = {
    r.name: r
    for r in (
        _consistent(
            "das28_esr",
            "DAS28-ESR equals 0.56√TJC28 + 0.28√SJC28 + 0.70 ln(ESR) + 0.014·PtGA",
            indices.das28_esr,
            ("tjc28", "sjc28", "esr", "ptga_mm"),
        ),
        _consistent(
            "das28_crp",
            "DAS28-CRP equals 0.56√TJC28 + 0.28√SJC28 + 0.36 ln(CRP+1) + 0.014·PtGA + 0.96",
            indices.das28_crp,
            ("tjc28", "sjc28", "crp_mg_l", "ptga_mm"),
        ),
        _consistent(
            "cdai",
            "CDAI equals TJC28 + SJC28 + PtGA/10 + EvGA/10",
            indices.cdai,
            ("tjc28", "sjc28", "ptga_mm", "evga_mm"),
        ),
        Rule("jhaq_range", "J-HAQ lies between 0 and 3", ("jhaq",), _jhaq_range),
        Rule(
            "two_year_followup",
            "every included patient has a visit at least 21 months after baseline",
            ("followup_months",),
            _followup,
        ),
        Rule(
            "visit_dates_in_order",
            "visits are in date order: baseline, then the two-year visit, then the last visit",
            ("endpoint_visit_months", "followup_months"),
            _visit_order,
        ),
    )
}
