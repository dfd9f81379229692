"""The study's data in counts: patients and cases per split and endpoint, and the study period.

What a run records about its cohort (the gate step writes it into ``outcome.json``,
the report and its TRIPOD+AI checklist state it): aggregates only. The study period
is given in whole calendar years, and only years holding at least
:data:`MIN_PERIOD_COUNT` baselines count, so no single patient's date can appear.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from cohortlm.cohort.study import StudySpec

__all__ = ["MIN_PERIOD_COUNT", "CohortSummary", "cohort_summary"]

#: a calendar year enters the study period only when at least this many baselines fall in it
MIN_PERIOD_COUNT = 10
_SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class CohortSummary:
    """The study's data in aggregate: patients and cases per split and endpoint, the study period.

    Attributes:
        n: Patients per split (``train``, ``validation``, ``test``).
        cases: Per split and endpoint, the patients with the outcome.
        labelled: Per split and endpoint, the patients with a label (case or not).
        period: First and last calendar year of the baselines (the spec's
            ``timestamp_column``) holding at least :data:`MIN_PERIOD_COUNT` of them,
            or None when the data has no dates.
        synthetic: Whether the data is the synthetic cohort, as the split table's provenance
            records it (:func:`cohortlm.cohort.io.read_provenance`); None when not recorded.
    """

    n: Mapping[str, int]
    cases: Mapping[str, Mapping[str, int]]
    labelled: Mapping[str, Mapping[str, int]]
    period: tuple[int, int] | None = None
    synthetic: bool | None = None

    def prevalence(self, endpoint: str, split: str | None = None) -> float | None:
        """Cases over labelled patients of one endpoint, in one split or all of them."""
        splits = [split] if split is not None else list(self.labelled)
        cases = sum(int(self.cases.get(s, {}).get(endpoint, 0)) for s in splits)
        labelled = sum(int(self.labelled.get(s, {}).get(endpoint, 0)) for s in splits)
        return cases / labelled if labelled else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "n": {k: int(v) for k, v in self.n.items()},
            "cases": {s: {e: int(v) for e, v in eps.items()} for s, eps in self.cases.items()},
            "labelled": {s: {e: int(v) for e, v in eps.items()} for s, eps in self.labelled.items()},
            "period": list(self.period) if self.period is not None else None,
            "synthetic": self.synthetic,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CohortSummary:
        """From :meth:`to_dict`'s form."""
        period = data.get("period")
        return cls(
            n=dict(data.get("n", {})),
            cases={s: dict(v) for s, v in data.get("cases", {}).items()},
            labelled={s: dict(v) for s, v in data.get("labelled", {}).items()},
            period=(int(period[0]), int(period[1])) if period else None,
            synthetic=data.get("synthetic"),
        )


def cohort_summary(
    table: pd.DataFrame, spec: StudySpec, *, split_column: str = "split", synthetic: bool | None = None
) -> CohortSummary:
    """Counts per split and endpoint of a split table (one row per patient), and the study period.

    Args:
        table: The split step's table: the spec's columns and a split column.
        spec: The study (endpoints and their definitions, the timestamp column).
        split_column: The column naming each patient's split.
        synthetic: Whether the data is the synthetic cohort, when the caller knows.
    """
    # Endpoint labels only: the counts need no feature column.
    labels = pd.DataFrame({e.name: e.label(table[e.column]) for e in spec.endpoints}, index=table.index)
    split = table[split_column].astype(str)
    names = [s for s in _SPLITS if (split == s).any()] + sorted(set(split) - set(_SPLITS))
    n = {s: int((split == s).sum()) for s in names}
    cases = {s: {e: int((labels.loc[split == s, e] == 1).sum()) for e in labels} for s in names}
    labelled = {s: {e: int(labels.loc[split == s, e].notna().sum()) for e in labels} for s in names}
    period = None
    column = spec.timestamp_column
    if column and column in table.columns:
        years = pd.to_datetime(table[column], errors="coerce").dt.year.dropna().astype(int)
        counts = years.value_counts()
        kept = sorted(int(y) for y, c in counts.items() if c >= MIN_PERIOD_COUNT)
        period = (kept[0], kept[-1]) if kept else None
    return CohortSummary(n=n, cases=cases, labelled=labelled, period=period, synthetic=synthetic)
