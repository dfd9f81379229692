"""Table 1 metrics, thresholds, Brier, calibration and ROC points."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import brier_score_loss, confusion_matrix, f1_score, roc_auc_score

from cohortlm.errors import DataError, UsageError
from cohortlm.evaluation.endpoint_metrics import (
    brier_score,
    calibration_data,
    choose_threshold,
    roc_points,
    threshold_metrics,
)
from cohortlm.evaluation.evaluate import TABLE1_COLUMNS, evaluate
from cohortlm.evaluation.stats import DeLongWarning


def test_threshold_metrics_match_sklearn() -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 500)
    s = rng.random(500) * 0.6 + 0.3 * y
    m = threshold_metrics(y, s, 0.45)
    pred = (s >= 0.45).astype(int)
    tn, fp, fn, tp = confusion_matrix(y, pred).ravel()
    assert (m.tp, m.fp, m.tn, m.fn) == (tp, fp, tn, fn)
    assert m.sensitivity == pytest.approx(tp / (tp + fn))
    assert m.specificity == pytest.approx(tn / (tn + fp))
    assert m.ppv == pytest.approx(tp / (tp + fp)) and m.precision == m.ppv
    assert m.npv == pytest.approx(tn / (tn + fn))
    assert m.recall == m.sensitivity
    assert m.f1 == pytest.approx(f1_score(y, pred))
    assert m.accuracy == pytest.approx((tp + tn) / 500)


def test_threshold_metrics_nan_when_no_positive_prediction() -> None:
    m = threshold_metrics([0, 1, 0], [0.1, 0.2, 0.3], 0.9)
    assert math.isnan(m.ppv) and m.sensitivity == 0 and m.specificity == 1


def test_youden_threshold_maximises_j() -> None:
    rng = np.random.default_rng(4)
    y = rng.integers(0, 2, 300)
    s = np.round(rng.normal(size=300) + y, 2)
    thr = choose_threshold(y, s)
    j = threshold_metrics(y, s, thr)
    best = max(
        threshold_metrics(y, s, t).sensitivity + threshold_metrics(y, s, t).specificity for t in np.unique(s)
    )
    assert j.sensitivity + j.specificity == pytest.approx(best)


def test_other_threshold_methods() -> None:
    y = [0, 0, 1, 1, 0, 1, 1, 0]
    s = [0.1, 0.3, 0.35, 0.8, 0.4, 0.9, 0.6, 0.2]
    assert choose_threshold(y, s, method="closest_topleft") in s
    assert choose_threshold(y, s, method="max_f1") in s
    assert choose_threshold(y, s, method=0.5) == 0.5
    with pytest.raises(ValueError, match="method must be one of"):
        choose_threshold(y, s, method="best")
    with pytest.warns(DeLongWarning):
        assert math.isnan(choose_threshold([1, 1], [0.2, 0.3]))


def test_brier_and_calibration() -> None:
    rng = np.random.default_rng(5)
    p = rng.random(1000)
    y = (rng.random(1000) < p).astype(int)
    assert brier_score(y, p) == pytest.approx(brier_score_loss(y, p))
    cal = calibration_data(y, p, n_bins=10)
    assert list(cal.columns) == ["bin", "mean_predicted", "observed_rate", "n", "cases", "ci_low", "ci_high"]
    assert ((cal["ci_low"] <= cal["observed_rate"]) & (cal["observed_rate"] <= cal["ci_high"])).all()
    assert cal["n"].sum() == 1000 and len(cal) == 10
    # Well calibrated by construction: observed rates follow the predictions.
    assert np.corrcoef(cal["mean_predicted"], cal["observed_rate"])[0, 1] > 0.95
    assert calibration_data(y, p, strategy="uniform", n_bins=5)["n"].sum() == 1000
    with pytest.raises(ValueError, match="y_score must hold probabilities"):
        brier_score([0, 1], [0.5, 1.5])


def test_roc_points_span_the_square() -> None:
    pts = roc_points([0, 1, 0, 1], [0.1, 0.9, 0.4, 0.3])
    assert pts.iloc[0][["fpr", "tpr"]].tolist() == [0, 0]
    assert pts.iloc[-1][["fpr", "tpr"]].tolist() == [1, 1]


def _frames(seed: int = 0, n: int = 600) -> tuple[pd.DataFrame, dict[str, pd.DataFrame], pd.Series]:
    rng = np.random.default_rng(seed)
    ids = pd.Index([f"P{i}" for i in range(n)], name="patient_id")
    labels = pd.DataFrame(
        {"e1": rng.integers(0, 2, n).astype(float), "e2": rng.integers(0, 2, n).astype(float)}, ids
    )
    labels.iloc[:20, 0] = np.nan  # unlabelled for e1 only
    good = pd.DataFrame(
        {c: 1 / (1 + np.exp(-(labels[c].fillna(0) + rng.normal(size=n)))) for c in labels}, ids
    )
    weak = pd.DataFrame({c: rng.random(n) for c in labels}, ids)
    split = pd.Series(np.where(np.arange(n) < 200, "validation", "test"), ids, name="split")
    # Scores come in another row order: alignment is by patient id.
    return labels, {"good": good.sample(frac=1, random_state=1), "weak": weak}, split


def test_evaluate_builds_table1() -> None:
    labels, scores, split = _frames()
    ev = evaluate(labels, scores, split)
    t = ev.table1
    assert list(t.columns) == list(TABLE1_COLUMNS)
    assert len(t) == 4 and set(t["model"]) == {"good", "weak"}
    test_ids = split.index[split == "test"]
    row = t[(t.endpoint == "e1") & (t.model == "good")].iloc[0]
    y = labels.loc[test_ids, "e1"].dropna()
    s = scores["good"].loc[y.index, "e1"]
    assert row["n"] == len(y) == 400  # the 20 unlabelled rows are all in validation
    assert row["auc"] == pytest.approx(roc_auc_score(y, s))
    val_ids = split.index[split == "validation"]
    yv = labels.loc[val_ids, "e1"].dropna()
    assert row["threshold"] == pytest.approx(choose_threshold(yv, scores["good"].loc[yv.index, "e1"]))
    assert row["auc_ci_low"] < row["auc"] < row["auc_ci_high"]
    assert (ev.threshold_split, ev.eval_split) == ("validation", "test")
    assert ("e2", "weak") in ev.roc and ("e2", "weak") in ev.calibration
    d = ev.to_dict()
    assert d["table1"][0]["endpoint"] == "e1"


def test_evaluate_errors_are_counts_not_values() -> None:
    labels, scores, split = _frames()
    short = {"good": scores["good"].iloc[:-5]}
    with pytest.raises(
        DataError, match=r"scores of model 'good' for endpoint 'e1' are missing for \d+ labelled"
    ):
        evaluate(labels, short, split)
    with pytest.raises(DataError, match="no column for endpoint 'e2'"):
        evaluate(labels, {"good": scores["good"][["e1"]]}, split)
    with pytest.raises(UsageError, match="eval_split 'holdout' is not a split"):
        evaluate(labels, scores, split, eval_split="holdout")
    bad = labels.copy()
    bad.iloc[30, 1] = 2
    with pytest.raises(DataError, match="must be 0, 1 or empty; 1 row"):
        evaluate(bad, scores, split)


def test_evaluate_one_class_endpoint_gives_nan_and_a_note() -> None:
    labels, scores, split = _frames()
    labels["e2"] = 0.0
    ev = evaluate(labels, scores, split)
    row = ev.table1[ev.table1.endpoint == "e2"].iloc[0]
    assert math.isnan(row["auc"]) and math.isnan(row["threshold"])
    assert any("e2/good" in n for n in ev.notes)


def test_thresholds_pool_the_training_split_when_validation_has_few_cases() -> None:
    from cohortlm.evaluation.evaluate import serving_thresholds

    rng = np.random.default_rng(1)
    n = 1200
    ids = pd.Index([f"P{i}" for i in range(n)])
    split = pd.Series(np.repeat(["train", "validation", "test"], [900, 100, 200]), ids)
    y = (rng.random(n) < 0.04).astype(float)
    labels = pd.DataFrame({"rare": y, "empty": 0.0}, ids)
    labels.loc[split.index[split == "test"][:5], "empty"] = 1.0  # cases in test only
    score = 1 / (1 + np.exp(-(rng.normal(size=n) + 2 * y - 3)))
    baseline = pd.DataFrame({"rare": score, "empty": score}, ids)  # scores every split
    llm = baseline[split != "train"]  # scores validation and test only
    ev = evaluate(labels, {"baseline": baseline, "llm": llm}, split)
    src = {(t["endpoint"], t["model"]): t["source"] for t in ev.thresholds}
    assert src[("rare", "baseline")] == "validation+train"
    # too few cases on validation and no pool or declared threshold: chosen anyway, said to be unstable
    assert src[("rare", "llm")].startswith("validation (unstable: ")
    assert src[("empty", "baseline")] == "none"
    assert any("no threshold could be chosen" in note for note in ev.notes)
    assert any("unstable" in note for note in ev.notes)
    assert list(ev.table1["threshold_source"])[:2] == ["validation+train", src[("rare", "llm")]]
    thresholds, record = serving_thresholds(ev.table1, "baseline", ["rare", "empty"])
    assert set(thresholds) == {"rare", "empty"}  # nothing dropped
    assert thresholds["empty"] == 0.5 and record["empty"]["source"] == "default"
    assert "no threshold could be chosen" in record["empty"]["reason"]
