"""Feast objects for any study, built from its spec (entities, sources, views, services).

``feature_repo/ra_baseline.py`` declares the RA study's objects through
:func:`build_definitions`; the pipeline builds a per-run repository the same
way for whatever study it is given, so a user's own study needs no Feast code.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from cohortlm.cohort.features import ENTITY_NAME, OFFLINE_DATA_PATH, expected_views, feature_service_name
from cohortlm.cohort.study import StudySpec

#: Event-time column used for studies that name no ``timestamp_column`` (flat tables).
AS_OF_COLUMN = "cohortlm_as_of"


@dataclass(frozen=True)
class Definitions:
    """The Feast objects of one study, in dependency order."""

    entity: Any
    source: Any
    views: dict[str, Any]
    service: Any

    def objects(self) -> list[Any]:
        """Everything to apply, in dependency order."""
        return [self.entity, self.source, *self.views.values(), self.service]


def build_definitions(spec: StudySpec, *, path: str = OFFLINE_DATA_PATH) -> Definitions:
    """Entity ``patient``, a FileSource over ``path``, one view per feature group, one service.

    Args:
        spec: the study.
        path: the Parquet file the source reads (relative to the repository).
    """
    from feast import Entity, FeatureService, FeatureView, Field, FileSource, ValueType
    from feast.types import Float64, Int64, String

    types = {"float64": Float64, "int64": Int64, "string": String}
    entity = Entity(
        name=ENTITY_NAME,
        join_keys=[spec.id_column],
        value_type=ValueType.STRING,
        description="a patient of the cohort (pseudonymous registry id)",
    )
    # One row per patient at the baseline visit: the baseline date is the event
    # time, so a point-in-time join as of the baseline never sees a later visit.
    source = FileSource(
        name=f"{spec.name}_cohort",
        path=path,
        timestamp_field=spec.timestamp_column or AS_OF_COLUMN,
        description=f"featurised {spec.name} cohort, one row per patient at baseline",
    )
    views = {
        group: FeatureView(
            name=group,
            entities=[entity],
            # Baseline features do not expire: a model asks for the baseline state
            # as of the prediction time, however long ago the baseline visit was.
            ttl=timedelta(0),
            schema=[Field(name=name, dtype=types[kind]) for name, kind in fields],
            source=source,
            online=True,
            tags={"study": spec.name, "spec_hash": spec.spec_hash[:12]},
        )
        for group, fields in expected_views(spec).items()
    }
    # Versioned: training and serving ask for the same service by name; a spec
    # with other features bumps its version and so gets a new service.
    service = FeatureService(
        name=feature_service_name(spec),
        features=list(views.values()),
        description=f"all baseline inputs of study {spec.name}",
        tags={"study": spec.name, "spec_version": str(spec.version)},
    )
    return Definitions(entity=entity, source=source, views=views, service=service)
