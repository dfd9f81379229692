"""Feast definitions for the RA study (cohortlm/studies/ra_iorra.yaml), in dependency order.

Entities, data sources, feature views, feature services. Every name, field and
type comes from the study spec through ``featurestore.definitions`` (which the
pipeline also uses for any other study): the spec is the only place that names
features, and ``tests/featurestore/test_drift.py`` fails if these definitions and
the spec drift apart.
"""

from cohortlm.cohort.study import load_study
from featurestore.definitions import build_definitions

STUDY = load_study("ra_iorra")
_DEFS = build_definitions(STUDY)

# ---------------------------------------------------------------------------- entities
patient = _DEFS.entity

# ---------------------------------------------------------------------------- data sources
# One row per patient at the baseline visit (baseline_date is the event time).
cohort_source = _DEFS.source

# ---------------------------------------------------------------------------- feature views
demographics = _DEFS.views["demographics"]
disease_activity = _DEFS.views["disease_activity"]
treatment = _DEFS.views["treatment"]
comorbidity = _DEFS.views["comorbidity"]

# ---------------------------------------------------------------------------- feature services
# Versioned: training and serving ask for the same service by name.
ra_baseline_v1 = _DEFS.service
