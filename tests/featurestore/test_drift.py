"""feature_repo/ and the study spec must agree: a test fails as soon as they drift apart."""

from __future__ import annotations

import dataclasses

import pytest

from cohortlm.cohort.features import drift_problems, expected_views, feature_service_name, storage_type
from cohortlm.cohort.variables import Feature


def test_feature_repo_matches_the_spec(ra_spec):
    from featurestore import definition_drift

    assert definition_drift(ra_spec) == []


def test_views_are_the_spec_groups(ra_spec):
    views = expected_views(ra_spec)
    assert sorted(views) == ["comorbidity", "demographics", "disease_activity", "treatment"]
    assert sum(len(v) for v in views.values()) == len(ra_spec.features)
    assert feature_service_name(ra_spec) == "ra_baseline_v1"
    assert dict(views["demographics"])["acpa_positive"] == "float64"  # binary that may be missing
    assert dict(views["disease_activity"])["tjc28"] == "int64"
    assert dict(views["demographics"])["sex"] == "string"


def _as_defined(spec):
    views = expected_views(spec)
    return views, {feature_service_name(spec): list(views)}


def test_drift_is_detected(ra_spec):
    views, services = _as_defined(ra_spec)
    assert drift_problems(ra_spec, views, services, entity_join_keys={"patient": ["patient_id"]}) == []

    grown = dataclasses.replace(
        ra_spec, features=(*ra_spec.features, Feature(name="ldl", type="numeric", group="comorbidity"))
    )
    (problem,) = drift_problems(grown, views, services)
    assert "comorbidity" in problem and "lacks ldl" in problem

    new_group = dataclasses.replace(
        ra_spec, features=(*ra_spec.features, Feature(name="ldl", type="numeric", group="labs"))
    )
    problems = drift_problems(new_group, views, services)
    assert any("'labs' is missing" in p for p in problems)
    assert any("serves" in p for p in problems)

    retyped = dataclasses.replace(
        ra_spec,
        features=tuple(
            dataclasses.replace(f, max_missing=0.2) if f.name == "tjc28" else f for f in ra_spec.features
        ),
    )
    (problem,) = drift_problems(retyped, views, services)
    assert "tjc28 is int64, not float64" in problem

    bumped = dataclasses.replace(ra_spec, version=2)
    assert any("ra_baseline_v2" in p for p in drift_problems(bumped, views, services))
    assert drift_problems(ra_spec, views, services, entity_join_keys={"patient": ["pid"]})


@pytest.mark.parametrize(
    ("ftype", "max_missing", "want"),
    [
        ("numeric", 0, "float64"),
        ("integer", 0, "int64"),
        ("integer", 0.1, "float64"),
        ("binary", 0, "int64"),
        ("categorical", 0, "string"),
    ],
)
def test_storage_types(ftype, max_missing, want):
    cats = ("a", "b") if ftype == "categorical" else None
    assert storage_type(Feature(name="x", type=ftype, categories=cats, max_missing=max_missing)) == want
