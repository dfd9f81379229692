"""Logistic-regression baseline and the bundle contract."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from cohortlm.cohort.study import study_from_dict
from cohortlm.errors import DataError, SpecError, UsageError
from cohortlm.models.baseline import BaselinePredictor, build_pipeline, train_baseline
from cohortlm.models.bundle import (
    BUNDLE_FILE,
    BUNDLE_FORMAT_VERSION,
    Predictor,
    check_feature_rows,
    read_bundle_metadata,
)
from cohortlm.models.loaders import load_bundle


@pytest.fixture(scope="module")
def fitted(split_cohort, frac_spec):
    return train_baseline(split_cohort[split_cohort["split"] == "train"], frac_spec)


@pytest.fixture(scope="module")
def bundle_dir(fitted, tmp_path_factory):
    return fitted.save(tmp_path_factory.mktemp("bl") / "bundle")


def test_scores_are_probabilities_in_spec_order(fitted, split_cohort, frac_spec):
    test = split_cohort[split_cohort["split"] == "test"]
    scores = fitted.predict_proba(test)
    assert list(scores.columns) == frac_spec.endpoint_names
    assert scores.index.equals(test.index)
    assert ((scores.to_numpy() > 0) & (scores.to_numpy() < 1)).all()


def test_baseline_learns_something(fitted, split_cohort, frac_spec):
    test = split_cohort[split_cohort["split"] == "test"]
    y = frac_spec.labels(test)
    scores = fitted.predict_proba(test)
    aucs = [roc_auc_score(y[e], scores[e]) for e in frac_spec.endpoint_names if y[e].nunique() == 2]
    assert np.mean(aucs) > 0.6


def test_pipeline_handles_missing_and_unknown_values(fitted, split_cohort):
    rows = split_cohort.head(3).copy()
    rows.loc[rows.index[0], "bmi"] = np.nan
    rows.loc[rows.index[1], "smoking"] = None
    rows["sex"] = rows["sex"].astype(object)
    rows.loc[rows.index[2], "sex"] = "unknown"
    scores = fitted.predict_proba(rows)
    assert np.isfinite(scores.to_numpy()).all()


def test_extra_columns_ignored_and_missing_feature_named(fitted, split_cohort):
    rows = split_cohort.head(2).assign(unrelated="x")
    fitted.predict_proba(rows)
    with pytest.raises(DataError, match="tjc28"):
        fitted.predict_proba(rows.drop(columns=["tjc28"]))


def test_text_in_numeric_feature_is_data_error_without_value(split_cohort, frac_spec):
    rows = split_cohort.head(2).copy()
    rows["age"] = rows["age"].astype(object)
    rows.loc[rows.index[0], "age"] = "secret-value"
    with pytest.raises(DataError) as err:
        check_feature_rows(rows, frac_spec)
    assert "secret-value" not in str(err.value)
    assert "age" in str(err.value)


def test_bundle_roundtrip(bundle_dir, fitted, split_cohort, frac_spec):
    meta = read_bundle_metadata(bundle_dir)
    assert meta["format_version"] == BUNDLE_FORMAT_VERSION
    assert meta["kind"] == "baseline"
    assert meta["study_hash"] == frac_spec.spec_hash
    assert meta["features"] == frac_spec.feature_names
    assert meta["endpoints"] == frac_spec.endpoint_names
    assert len(meta["model_version"]) == 12
    assert meta["training"]["serializer"] == "skops"
    assert "scikit-learn" in meta["libraries"]
    assert (bundle_dir / "study.yaml").is_file()
    assert (bundle_dir / "model.skops").is_file()

    predictor = load_bundle(bundle_dir, spec=frac_spec)
    assert isinstance(predictor, Predictor)
    assert isinstance(predictor, BaselinePredictor)
    assert predictor.kind == "baseline" and predictor.version == meta["model_version"]
    assert predictor.path == bundle_dir
    rows = split_cohort.head(20)
    pd.testing.assert_frame_equal(predictor.predict_proba(rows), fitted.predict_proba(rows))
    # without a spec, the bundle's own copy of the study is used
    assert load_bundle(bundle_dir).spec.spec_hash == frac_spec.spec_hash


def test_bundle_refuses_other_spec(bundle_dir, ra_spec):
    with pytest.raises(SpecError, match="spec hash"):
        load_bundle(bundle_dir, spec=ra_spec)


def test_bundle_refuses_unknown_format(bundle_dir, tmp_path):
    import shutil

    copy = tmp_path / "b"
    shutil.copytree(bundle_dir, copy)
    meta = json.loads((copy / BUNDLE_FILE).read_text())
    meta["format_version"] = 99
    (copy / BUNDLE_FILE).write_text(json.dumps(meta))
    with pytest.raises(SpecError, match="format_version"):
        load_bundle(copy)


def test_not_a_bundle_is_usage_error(tmp_path):
    with pytest.raises(UsageError):
        load_bundle(tmp_path / "nope")
    with pytest.raises(UsageError, match=r"bundle\.json"):
        load_bundle(tmp_path)


def test_one_class_endpoint_predicts_constant(split_cohort, frac_spec):
    data = frac_spec.to_dict()
    data["endpoints"] = [
        {"name": "never", "column": "das28_esr_2y", "operator": ">", "threshold": 99.0},
        {"name": "high", "column": "das28_esr_2y", "operator": ">", "threshold": 5.1},
    ]
    spec = study_from_dict(data)
    model = train_baseline(split_cohort[split_cohort["split"] == "train"], spec)
    scores = model.predict_proba(split_cohort.head(5))
    assert (scores["never"] < 1e-3).all() and (scores["never"] > 0).all()
    assert model.training["endpoints"]["never"]["constant"]


def test_class_weight_validated(frac_spec):
    with pytest.raises(ValueError, match="class_weight"):
        build_pipeline(frac_spec, class_weight="heavy")
