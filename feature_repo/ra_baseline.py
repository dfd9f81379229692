"""Feast definitions for the RA study (cohortlm/studies/ra_iorra.yaml), in dependency order.

Entities, data sources, feature views, feature services. Every name, field and
type comes from the study spec through ``cohortlm.features``: the spec is the
only place that names features, and ``tests/features/test_drift.py`` fails if
these definitions and the spec drift apart.
"""

from datetime import timedelta

from feast import Entity, FeatureService, FeatureView, Field, FileSource, ValueType
from feast.types import Float64, Int64, String

from cohortlm.features import (
    ENTITY_NAME,
    OFFLINE_DATA_PATH,
    expected_views,
    feature_service_name,
)
from cohortlm.study import load_study

STUDY = load_study("ra_iorra")
_TYPES = {"float64": Float64, "int64": Int64, "string": String}
_VIEWS = expected_views(STUDY)

# ---------------------------------------------------------------------------- entities

patient = Entity(
    name=ENTITY_NAME,
    join_keys=[STUDY.id_column],
    value_type=ValueType.STRING,
    description="a patient of the cohort (pseudonymous registry id)",
)

# ---------------------------------------------------------------------------- data sources

# One row per patient at the baseline visit: the featurised table. The baseline
# date is the event time, so a point-in-time join as of the baseline never sees
# a later visit.
cohort_source = FileSource(
    name=f"{STUDY.name}_cohort",
    path=OFFLINE_DATA_PATH,
    timestamp_field=STUDY.timestamp_column,
    description=f"featurised {STUDY.name} cohort, one row per patient at baseline",
)

# ---------------------------------------------------------------------------- feature views


def _view(group: str) -> FeatureView:
    return FeatureView(
        name=group,
        entities=[patient],
        # Baseline features do not expire: a model asks for the baseline state
        # as of the prediction time, however long ago the baseline visit was.
        ttl=timedelta(0),
        schema=[Field(name=name, dtype=_TYPES[kind]) for name, kind in _VIEWS[group]],
        source=cohort_source,
        online=True,
        tags={"study": STUDY.name, "spec_hash": STUDY.spec_hash[:12]},
    )


demographics = _view("demographics")
disease_activity = _view("disease_activity")
treatment = _view("treatment")
comorbidity = _view("comorbidity")

# ---------------------------------------------------------------------------- feature services

# Versioned: training and serving ask for the same service by name; a spec with
# other features bumps its version and so gets a new service.
ra_baseline_v1 = FeatureService(
    name=feature_service_name(STUDY),
    features=[demographics, treatment, comorbidity, disease_activity],
    description="all baseline inputs of the RA study",
    tags={"study": STUDY.name, "spec_version": str(STUDY.version)},
)
