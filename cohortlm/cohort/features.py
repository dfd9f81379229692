"""What the feature store holds, derived from the study spec (no Feast here).

The core never imports Feast; this module says, in plain data, what the Feast
repository in ``feature_repo/`` must define for a study: one entity keyed by
``spec.id_column``, one feature view per feature ``group`` with the group's
features in spec order and a storage type per feature, and one versioned
feature service with every view. ``feature_repo/`` builds its objects from
these functions, and :func:`drift_problems` compares what a registry holds
with what the spec says, so the two cannot drift apart unnoticed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import pandas as pd

from cohortlm.cohort.study import StudySpec
from cohortlm.cohort.variables import Feature
from cohortlm.errors import DataError, SpecError

#: The Feast entity every study's rows belong to.
ENTITY_NAME = "patient"
#: The column Feast reads the "as of" time from in an entity frame.
EVENT_TIMESTAMP = "event_timestamp"
#: Where the feature repository expects the featurised table (relative to the repo).
OFFLINE_DATA_PATH = "data/cohort.parquet"

StorageType = Literal["float64", "int64", "string"]


def feature_groups(spec: StudySpec) -> dict[str, list[Feature]]:
    """Features by group, groups in order of first appearance, features in spec order."""
    groups: dict[str, list[Feature]] = {}
    for f in spec.features:
        groups.setdefault(f.group, []).append(f)
    return groups


def feature_view_name(group: str) -> str:
    """The feature view for a feature group is named after the group."""
    return group


def feature_service_name(spec: StudySpec, purpose: str = "baseline") -> str:
    """The versioned feature service for a study, e.g. ``ra_baseline_v1``.

    The prefix is the study name up to its first underscore (``ra_iorra`` ->
    ``ra``) and the version is the spec's ``version``: a spec that changes its
    features must bump its version, which gives training and serving a new
    service name instead of silently new columns under the old one.
    """
    prefix = spec.name.split("_", 1)[0]
    return f"{prefix}_{purpose}_v{spec.version}"


def storage_type(feature: Feature) -> StorageType:
    """The feature store type of a feature.

    Integers and binaries that may be missing are stored as float64, as pandas
    holds them (NaN for missing); the rest keep their natural type.
    """
    if feature.type == "categorical":
        return "string"
    if feature.type in ("integer", "binary") and feature.max_missing == 0:
        return "int64"
    return "float64"


def expected_views(spec: StudySpec) -> dict[str, list[tuple[str, StorageType]]]:
    """What each feature view must hold: ``{view: [(feature, storage type), ...]}``."""
    return {
        feature_view_name(g): [(f.name, storage_type(f)) for f in feats]
        for g, feats in feature_groups(spec).items()
    }


def drift_problems(
    spec: StudySpec,
    views: Mapping[str, Sequence[tuple[str, str]]],
    services: Mapping[str, Sequence[str]],
    *,
    entity_join_keys: Mapping[str, Sequence[str]] | None = None,
) -> list[str]:
    """Differences between what a feature repository defines and what ``spec`` says.

    Args:
        spec: the study.
        views: feature view name -> [(feature name, storage type)], as defined.
        services: feature service name -> names of the views it serves.
        entity_join_keys: entity name -> join keys, as defined (checked if given).

    Returns:
        One sentence per problem; empty when the repository matches the spec.
    """
    problems: list[str] = []
    want = expected_views(spec)
    for name, fields in want.items():
        if name not in views:
            problems.append(f"feature view '{name}' is missing (spec group '{name}')")
            continue
        have = [(f, str(t).lower()) for f, t in views[name]]
        if have != list(fields):
            wanted = dict(fields)
            have_names = [f for f, _ in have]
            extra = sorted(set(have_names) - set(wanted))
            lacking = [f for f in wanted if f not in have_names]
            typed = [f"{f} is {t}, not {wanted[f]}" for f, t in have if f in wanted and t != wanted[f]]
            parts = []
            if lacking:
                parts.append(f"lacks {', '.join(lacking)}")
            if extra:
                parts.append(f"has features the spec does not name: {', '.join(extra)}")
            if typed:
                parts.append(f"has other types: {', '.join(typed)}")
            if not parts:
                parts.append("lists its features in another order than the spec")
            problems.append(f"feature view '{name}' " + "; ".join(parts))
    for name in sorted(set(views) - set(want)):
        problems.append(f"feature view '{name}' is not a feature group of study '{spec.name}'")
    service = feature_service_name(spec)
    if service not in services:
        problems.append(f"feature service '{service}' is missing")
    elif sorted(services[service]) != sorted(want):
        problems.append(
            f"feature service '{service}' serves {', '.join(sorted(services[service])) or 'nothing'}, "
            f"the spec's groups are {', '.join(sorted(want))}"
        )
    if entity_join_keys is not None and list(entity_join_keys.get(ENTITY_NAME, [])) != [spec.id_column]:
        problems.append(f"entity '{ENTITY_NAME}' must have the join key '{spec.id_column}'")
    return problems


def entity_frame(table: pd.DataFrame, spec: StudySpec, *, with_labels: bool = True) -> pd.DataFrame:
    """The entity frame for point-in-time retrieval from a featurised table.

    One row per patient: the id, ``event_timestamp`` = the spec's timestamp
    column (the moment a prediction is made, so no later value can leak in),
    and, with ``with_labels``, the endpoint source columns.

    Raises:
        SpecError: the spec has no ``timestamp_column``.
        DataError: the table lacks a column this needs.
    """
    if spec.timestamp_column is None:
        raise SpecError(f"study '{spec.name}' has no timestamp_column; the feature store needs one")
    columns = [spec.id_column, spec.timestamp_column, *(spec.endpoint_columns if with_labels else [])]
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise DataError(f"the table lacks column(s) {', '.join(missing)} needed for the entity frame")
    out = table[columns].rename(columns={spec.timestamp_column: EVENT_TIMESTAMP}).reset_index(drop=True)
    out[EVENT_TIMESTAMP] = pd.to_datetime(out[EVENT_TIMESTAMP])
    return out
