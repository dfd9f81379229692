"""Performance inside the subgroups a study declares, per endpoint and model, and the gate's paired numbers.

:func:`subgroup_levels` puts each patient in one level of every declared
subgroup (:mod:`cohortlm.cohort.subgroups`); :func:`subgroup_table` gives, per
endpoint, model, subgroup and level, the patients, cases, AUC with its DeLong
interval (logit, as Table 1) and the calibration slope: the rows of
``report/subgroups.csv`` (:data:`SUBGROUP_COLUMNS`). :func:`paired_subgroup_stats`
gives the gate the candidate-against-champion numbers per level
(:class:`SubgroupInputs`), the same arrays the simulation draws.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from cohortlm.cohort.study import StudySpec
from cohortlm.evaluation.evaluate import endpoint_arrays
from cohortlm.evaluation.stats.calibration import recalibration
from cohortlm.evaluation.stats.delong import DeLongWarning, auc_ci, delong_test

__all__ = [
    "SUBGROUP_COLUMNS",
    "SubgroupCell",
    "SubgroupInputs",
    "paired_subgroup_stats",
    "subgroup_levels",
    "subgroup_table",
]

#: The columns of ``report/subgroups.csv``, in order.
SUBGROUP_COLUMNS: tuple[str, ...] = (
    "endpoint",
    "model",
    "subgroup",
    "level",
    "n",
    "cases",
    "auc",
    "auc_ci_low",
    "auc_ci_high",
    "slope",
)


@dataclass(frozen=True)
class SubgroupCell:
    """One level of one subgroup on one endpoint."""

    endpoint: str
    subgroup: str
    level: str


@dataclass(frozen=True)
class SubgroupInputs:
    """The candidate against the champion per subgroup level: arrays of shape ``(R, L)``.

    One row per data set (a run, or a simulated replicate), one column per
    :class:`SubgroupCell` in ``cells`` (endpoint-major, then subgroup, then level).
    """

    cells: tuple[SubgroupCell, ...]
    n_cases: NDArray[np.float64]
    n_controls: NDArray[np.float64]
    auc_candidate: NDArray[np.float64]
    auc_champion: NDArray[np.float64]
    var_delta: NDArray[np.float64]


def subgroup_levels(table: pd.DataFrame, spec: StudySpec) -> pd.DataFrame:
    """Each patient's level in every declared subgroup (None where the feature is missing).

    Args:
        table: One row per patient with the study's feature columns (as conformed).
        spec: The study; its ``subgroups`` say which feature and levels.

    Returns:
        A frame on ``table``'s index, one categorical column per subgroup whose
        categories are the levels in the spec's order.
    """
    out = pd.DataFrame(index=table.index)
    for group in spec.subgroups:
        feature = spec.feature(group.feature)
        values = (
            table[group.feature] if group.feature in table.columns else pd.Series(np.nan, index=table.index)
        )
        if group.cuts is not None:
            bins = [-math.inf, *group.cuts, math.inf]
            level = pd.cut(
                pd.to_numeric(values, errors="coerce"), bins=bins, right=False, labels=list(group.levels)
            )
        elif feature.type == "categorical":
            names = dict(zip(feature.categories or (), group.levels, strict=True))
            level = values.map(lambda v, names=names: names.get(str(v)) if pd.notna(v) else None)
        else:
            numeric = pd.to_numeric(values, errors="coerce")
            level = numeric.map(lambda v, g=group: g.levels[int(v)] if pd.notna(v) and v in (0, 1) else None)
        out[group.name] = pd.Categorical(
            level.astype(object).where(pd.notna(level), None), categories=group.levels
        )
    return out


def _members(levels: pd.DataFrame, subgroup: str, level: str) -> pd.Index:
    return levels.index[levels[subgroup] == level]


def _level_pairs(levels: pd.DataFrame) -> list[tuple[str, str]]:
    """(subgroup, level) in the order of :func:`subgroup_levels`'s columns and categories."""
    return [(str(col), str(lv)) for col in levels.columns for lv in levels[col].cat.categories]


def _rows(rows: pd.Index | None, members: pd.Index) -> pd.Index:
    return members if rows is None else members.intersection(rows)


def subgroup_table(
    labels: pd.DataFrame,
    scores: Mapping[str, pd.DataFrame],
    levels: pd.DataFrame,
    *,
    endpoints: Sequence[str],
    rows: pd.Index | None = None,
    conf_level: float = 0.95,
) -> pd.DataFrame:
    """Per endpoint, model, subgroup and level: n, cases, AUC with interval, calibration slope.

    Args:
        labels: One column per endpoint (0/1/NaN), indexed by patient id.
        scores: Each model's probabilities, same columns and ids.
        levels: :func:`subgroup_levels` of the same patients.
        endpoints: Endpoints, in order.
        rows: The patients to use (the evaluation split); all when None.
        conf_level: Level of the AUC interval.

    Returns:
        A frame with :data:`SUBGROUP_COLUMNS`; AUC and slope NaN where a level lacks
        cases or controls (the slope also where the scores are no probabilities).
    """
    records = []
    for ep in endpoints:
        for subgroup, level in _level_pairs(levels):
            keep = _rows(rows, _members(levels, subgroup, level))
            for model, frame in scores.items():
                y, s = endpoint_arrays(labels, frame, ep, model=model, rows=keep)
                records.append(
                    {
                        "endpoint": ep,
                        "model": model,
                        "subgroup": subgroup,
                        "level": level,
                        "n": int(y.size),
                        "cases": int(y.sum()),
                        **_auc_and_slope(y, s, conf_level),
                    }
                )
    return pd.DataFrame.from_records(records, columns=list(SUBGROUP_COLUMNS))


def _auc_and_slope(y: NDArray[np.int8], s: NDArray[np.float64], conf_level: float) -> dict[str, float]:
    out = {"auc": math.nan, "auc_ci_low": math.nan, "auc_ci_high": math.nan, "slope": math.nan}
    if y.size == 0 or y.min() == y.max():
        return out
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeLongWarning)
        a = auc_ci(y, s, conf_level=conf_level)
    out.update(auc=a.auc, auc_ci_low=a.ci[0], auc_ci_high=a.ci[1])
    if ((s >= 0) & (s <= 1)).all():
        out["slope"] = float(recalibration(y, s, conf_level=conf_level).slope)
    return out


def paired_subgroup_stats(
    labels: pd.DataFrame,
    candidate_scores: pd.DataFrame,
    champion_scores: pd.DataFrame,
    levels: pd.DataFrame,
    *,
    rows: pd.Index | None,
    endpoints: Sequence[str],
    names: tuple[str, str],
) -> SubgroupInputs:
    """The gate's paired numbers per endpoint and subgroup level (one row).

    A level without cases or controls gets NaN AUCs and variance (the rule then
    counts it as too small to test).
    """
    cells, columns = [], []
    for ep in endpoints:
        for subgroup, level in _level_pairs(levels):
            keep = _rows(rows, _members(levels, subgroup, level))
            y, s_candidate = endpoint_arrays(labels, candidate_scores, ep, model=names[0], rows=keep)
            _, s_champion = endpoint_arrays(labels, champion_scores, ep, model=names[1], rows=keep)
            cells.append(SubgroupCell(endpoint=ep, subgroup=subgroup, level=level))
            m = float(y.sum())
            numbers = (m, float(y.size) - m, math.nan, math.nan, math.nan)
            if y.size and 0 < m < y.size:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", DeLongWarning)
                    t = delong_test(y, s_candidate, s_champion, alternative="less")
                numbers = (m, float(y.size) - m, t.auc_a, t.auc_b, t.var_delta)
            columns.append(numbers)
    arr = np.array(columns, dtype=np.float64).reshape(len(cells), 5).T[:, None, :]
    return SubgroupInputs(
        cells=tuple(cells),
        n_cases=arr[0],
        n_controls=arr[1],
        auc_candidate=arr[2],
        auc_champion=arr[3],
        var_delta=arr[4],
    )
