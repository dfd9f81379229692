"""Clinical evidence in the report (issue 25, items 1, 2, 3, 5, 7): Table 1's intervals and threshold
sources, calibration against an independent recalibration, decision curves against their formula,
the baseline's bootstrap optimism correction, and the two new figures' layout."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from stats_run_folder import make_run_folder
from statsmodels.stats.proportion import proportion_confint

from cohortlm.cohort.study import study_from_dict
from cohortlm.errors import SpecError
from cohortlm.evaluation.decision_curve import (
    TREAT_ALL,
    TREAT_NONE,
    decision_curve,
    net_benefit,
    threshold_grid,
)
from cohortlm.evaluation.evaluate import DECLARED_SOURCE, TABLE1_COLUMNS, ThresholdPool, evaluate
from cohortlm.evaluation.figures import layout_problems, plot_calibration, plot_decision_curve
from cohortlm.evaluation.intervals import (
    THRESHOLD_METRICS,
    f1_bootstrap_interval,
    threshold_metric_intervals,
    wilson_interval,
)
from cohortlm.evaluation.optimism import _refit_all, bootstrap_optimism, fit_logistic, weighted_auc
from cohortlm.evaluation.report import compute_report
from cohortlm.evaluation.run_folder import read_run_dir
from cohortlm.evaluation.stats.calibration import (
    CALIBRATION_COLUMNS,
    calibration_summary,
    integrated_calibration_index,
    recalibration,
)

# ----------------------------------------------------------------------------- decision curves


def test_net_benefit_is_tp_over_n_minus_fp_over_n_times_the_threshold_odds_at_every_threshold() -> None:
    rng = np.random.default_rng(3)
    y = (rng.random(400) < 0.2).astype(int)
    p = np.round(rng.random(400), 2)  # ties on purpose: score == threshold counts as treated
    grid = np.round(np.arange(0.01, 1.0, 0.01), 2)
    got = net_benefit(y, p, grid)
    for t, nb in zip(grid, got, strict=True):
        treated = p >= t
        tp, fp = int((treated & (y == 1)).sum()), int((treated & (y == 0)).sum())
        assert nb == pytest.approx(tp / 400 - fp / 400 * t / (1 - t), abs=1e-12)


def test_decision_curve_has_every_model_treat_all_and_treat_none() -> None:
    y = np.array([1, 0, 0, 1, 0, 0, 0, 0, 0, 0])
    grid = np.array([0.1, 0.2, 0.5])
    curve = decision_curve(y, {"a": np.linspace(0, 1, 10)}, grid, endpoint="e")
    assert list(curve.columns) == ["endpoint", "model", "threshold", "net_benefit"]
    assert set(curve["model"]) == {"a", TREAT_ALL, TREAT_NONE}
    treat_all = curve[curve["model"] == TREAT_ALL]["net_benefit"].to_numpy()
    np.testing.assert_allclose(treat_all, 0.2 - 0.8 * grid / (1 - grid))
    # treating everyone is the model with every score above every threshold
    np.testing.assert_allclose(treat_all, net_benefit(y, np.ones(10), grid))
    assert (curve[curve["model"] == TREAT_NONE]["net_benefit"] == 0).all()
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        net_benefit(y, np.ones(10), [0.0, 0.5])


def test_the_threshold_grid_fits_the_prevalence_and_holds_the_declared_threshold() -> None:
    rare = threshold_grid(0.034, decision_threshold=0.07)
    assert rare.max() == pytest.approx(0.15) and 0.07 in rare
    common = threshold_grid(0.45)
    assert common.max() == pytest.approx(0.95) and common.min() > 0
    assert threshold_grid(0.02, decision_threshold=0.5).max() > 0.5


# ----------------------------------------------------------------------------- calibration


def _breast_cancer_predictions() -> tuple[np.ndarray, np.ndarray]:
    """A real public cohort (Wisconsin breast cancer, in scikit-learn): fitted on half, scored on the rest."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression

    data = load_breast_cancer()
    X, y = data.data[:, :4], data.target  # radius, texture, perimeter, area: a deliberately rough model
    rng = np.random.default_rng(0)
    order = rng.permutation(len(y))
    fit, test = order[: len(y) // 2], order[len(y) // 2 :]
    X = (X - X[fit].mean(axis=0)) / X[fit].std(axis=0)
    model = LogisticRegression(C=0.05).fit(X[fit], y[fit])
    return y[test], model.predict_proba(X[test])[:, 1]


def test_calibration_intercept_and_slope_equal_statsmodels_glm_on_a_real_cohort() -> None:
    import statsmodels.api as sm

    y, p = _breast_cancer_predictions()
    assert ((p > 1e-6) & (p < 1 - 1e-6)).all()  # no clipping: both see the same logit
    logit = np.log(p / (1 - p))
    citl = sm.GLM(y, np.ones((len(y), 1)), family=sm.families.Binomial(), offset=logit).fit(tol=1e-12)
    slope = sm.GLM(y, sm.add_constant(logit), family=sm.families.Binomial()).fit(tol=1e-12)
    ours = recalibration(y, p)
    assert ours.citl == pytest.approx(float(citl.params[0]), abs=1e-6)
    assert ours.slope == pytest.approx(float(slope.params[1]), abs=1e-6)
    assert ours.se_citl == pytest.approx(float(citl.bse[0]), rel=1e-5)
    assert ours.se_slope == pytest.approx(float(slope.bse[1]), rel=1e-5)
    low, high = slope.conf_int(alpha=0.05)[1]
    assert ours.slope_ci == pytest.approx((low, high), abs=1e-5)
    row = calibration_summary(y, p, endpoint="malignant", model="lr")
    assert list(row) == list(CALIBRATION_COLUMNS)
    assert row["oe_ratio"] == pytest.approx(y.sum() / p.sum())
    assert row["brier"] == pytest.approx(np.mean((p - y) ** 2))


def test_ici_is_small_for_calibrated_risks_and_large_when_risks_are_halved() -> None:
    rng = np.random.default_rng(1)
    p = rng.beta(1.5, 6, 20000)
    y = rng.random(p.size) < p
    good = integrated_calibration_index(y, p)
    halved = integrated_calibration_index(y, p / 2)
    assert good < 0.01
    # the gap is p/2 at every risk: its mean is the ICI
    assert halved == pytest.approx(np.mean(p / 2), abs=0.01)
    assert calibration_summary(y, p / 2)["oe_ratio"] == pytest.approx(2.0, rel=0.05)


# ----------------------------------------------------------------------------- intervals


def test_wilson_interval_is_statsmodels_and_handles_the_edges() -> None:
    assert wilson_interval(7, 20) == pytest.approx(proportion_confint(7, 20, method="wilson"))
    low, high = wilson_interval(0, 30)
    assert low == pytest.approx(0.0, abs=1e-12) and 0 < high < 0.15
    assert all(math.isnan(v) for v in wilson_interval(0, 0))
    with pytest.raises(ValueError):
        wilson_interval(5, 3)


def test_wilson_coverage_of_sensitivity_and_specificity_at_5_percent_prevalence_and_n_500() -> None:
    """Issue 25's target: coverage 0.93-0.97 by simulation (20,000 test splits)."""
    rng = np.random.default_rng(25)
    reps, n, prevalence, sens, spec = 20000, 500, 0.05, 0.80, 0.90
    cases = rng.binomial(n, prevalence, reps)
    tp = rng.binomial(cases, sens)
    tn = rng.binomial(n - cases, spec)
    ok = cases > 0
    lo, hi = proportion_confint(tp[ok], cases[ok], alpha=0.05, method="wilson")
    cover_sens = float(np.mean((lo <= sens) & (sens <= hi)))
    lo, hi = proportion_confint(tn, n - cases, alpha=0.05, method="wilson")
    cover_spec = float(np.mean((lo <= spec) & (spec <= hi)))
    assert 0.93 <= cover_sens <= 0.97, cover_sens
    assert 0.93 <= cover_spec <= 0.97, cover_spec
    # and the table's function gives the same bounds
    assert threshold_metric_intervals({"tp": 20, "fn": 5, "tn": 430, "fp": 45})["sensitivity"] == (
        pytest.approx(proportion_confint(20, 25, method="wilson"))
    )


def test_f1_interval_matches_a_stratified_bootstrap_of_the_patients() -> None:
    tp, fp, tn, fn = 30, 40, 400, 12
    low, high = f1_bootstrap_interval(tp, fp, tn, fn, n_boot=4000)
    y = np.array([1] * (tp + fn) + [0] * (fp + tn))
    pred = np.array([1] * tp + [0] * fn + [1] * fp + [0] * tn)
    rng = np.random.default_rng(1)
    cases, controls = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    f1s = []
    for _ in range(4000):
        rows = np.concatenate([rng.choice(cases, cases.size), rng.choice(controls, controls.size)])
        t = int((pred[rows] & y[rows]).sum())
        f = int((pred[rows] & (1 - y[rows])).sum())
        f1s.append(2 * t / (2 * t + f + (cases.size - t)))
    ref = np.quantile(f1s, [0.025, 0.975])
    assert low == pytest.approx(ref[0], abs=0.015) and high == pytest.approx(ref[1], abs=0.015)
    assert low < 2 * tp / (2 * tp + fp + fn) < high


# ----------------------------------------------------------------------------- Table 1


def _frames(seed: int = 2):
    rng = np.random.default_rng(seed)
    n = 3000
    ids = pd.Index([f"P{i}" for i in range(n)])
    split = pd.Series(np.repeat(["train", "validation", "test"], [2000, 100, 900]), ids)
    y = (rng.random(n) < 0.06).astype(float)
    labels = pd.DataFrame({"rare": y}, ids)
    score = 1 / (1 + np.exp(-(rng.normal(size=n) + 2 * y - 3)))
    frame = pd.DataFrame({"rare": score}, ids)
    return labels, split, frame


def test_table1_has_an_interval_for_every_threshold_metric_and_a_declared_source() -> None:
    labels, split, frame = _frames()
    keep = split != "train"
    ev = evaluate(labels[keep], {"m": frame[keep]}, split[keep], decision_thresholds={"rare": 0.1})
    row = ev.table1.iloc[0]
    assert list(ev.table1.columns) == list(TABLE1_COLUMNS)
    assert row["threshold"] == 0.1 and row["threshold_source"] == DECLARED_SOURCE
    for metric in THRESHOLD_METRICS:
        assert row[f"{metric}_ci_low"] <= row[metric] <= row[f"{metric}_ci_high"], metric
    assert (row["sensitivity_ci_low"], row["sensitivity_ci_high"]) == pytest.approx(
        wilson_interval(int(row["tp"]), int(row["tp"] + row["fn"]))
    )
    assert 0.1 in set(ev.decision_curve["threshold"])
    assert ev.decision_thresholds == {"rare": 0.1}


def test_thresholds_pool_out_of_fold_training_scores_with_validation() -> None:
    labels, split, frame = _frames()
    keep = split != "train"
    train = split.index[split == "train"]
    pool = ThresholdPool(labels.loc[train], {"m": frame.loc[train]}, "train (out-of-fold)")
    ev = evaluate(labels[keep], {"m": frame[keep], "other": frame[keep]}, split[keep], threshold_pool=pool)
    src = {(t["endpoint"], t["model"]): t for t in ev.thresholds}
    assert src[("rare", "m")]["source"] == "validation+train (out-of-fold)"
    assert src[("rare", "m")]["n"] == 2100 and src[("rare", "m")]["n_cases"] >= 20
    # a model the pool does not hold chooses on validation, and says that 100 patients are too few
    assert src[("rare", "other")]["source"].startswith("validation (unstable")


def test_calibration_table_and_decision_curves_cover_every_model() -> None:
    labels, split, frame = _frames()
    keep = split != "train"
    ev = evaluate(labels[keep], {"a": frame[keep], "b": frame[keep] / 2}, split[keep])
    assert list(ev.calibration_table.columns) == list(CALIBRATION_COLUMNS)
    assert set(ev.calibration_table["model"]) == {"a", "b"}
    table = ev.calibration_table.set_index("model")
    assert table.loc["b", "oe_ratio"] == pytest.approx(2 * table.loc["a", "oe_ratio"])  # b predicts half
    assert table.loc["b", "citl"] > table.loc["a", "citl"] + 0.5
    assert set(ev.decision_curve["model"]) == {"a", "b", TREAT_ALL, TREAT_NONE}
    json_ready = ev.to_dict()
    assert json_ready["calibration"][0]["endpoint"] == "rare" and json_ready["decision_curve"]


# ----------------------------------------------------------------------------- internal validation


def test_newton_fit_equals_scikit_learns_penalised_logistic_regression() -> None:
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(4)
    X = rng.normal(size=(800, 6))
    y = rng.random(800) < 1 / (1 + np.exp(-(X[:, 0] - 2)))
    for class_weight, w in (
        (None, None),
        ("balanced", np.where(y, 800 / (2 * y.sum()), 800 / (2 * (~y).sum()))),
    ):
        ref = LogisticRegression(C=0.5, class_weight=class_weight, tol=1e-12, max_iter=10000).fit(X, y)
        beta = fit_logistic(X, y, C=0.5, sample_weight=w)
        np.testing.assert_allclose(beta[1:], ref.coef_[0], atol=1e-6)
        assert beta[0] == pytest.approx(ref.intercept_[0], abs=1e-6)
    # every resample's batched fit is that resample's own fit
    counts = rng.multinomial(800, np.full(800, 1 / 800), size=3).astype(float)
    start = fit_logistic(X, y, C=0.5)
    batched = _refit_all(X, y, counts, start, C=0.5, full_weight=None)
    for b in range(3):
        np.testing.assert_allclose(batched[b], fit_logistic(X, y, C=0.5, sample_weight=counts[b]), atol=1e-6)


def test_weighted_auc_is_the_auc_of_the_resample() -> None:
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(5)
    y = rng.random(300) < 0.3
    s = np.round(rng.random(300) + y * 0.3, 2)
    rows = rng.integers(0, 300, 300)
    counts = np.bincount(rows, minlength=300)
    assert weighted_auc(y, s, counts) == pytest.approx(roc_auc_score(y[rows], s[rows]))
    assert weighted_auc(y, s) == pytest.approx(roc_auc_score(y, s))


def test_optimism_correction_removes_what_noise_features_add() -> None:
    rng = np.random.default_rng(6)
    n = 400
    signal = rng.normal(size=n)
    X = np.column_stack([signal, rng.normal(size=(n, 30))])  # 30 pure-noise features
    y = rng.random(n) < 1 / (1 + np.exp(-(signal - 1)))
    result = bootstrap_optimism(X, y, C=100.0, n_boot=200, seed=0)
    assert result.n_boot == 200
    assert result.auc_optimism > 0.01  # the apparent AUC is optimistic
    assert result.auc_corrected < result.auc_apparent
    assert result.slope_corrected < 0.95  # a new population needs shrinkage
    # the truth: the signal's AUC on new patients, about what the correction estimates
    signal_new = rng.normal(size=20000)
    y_new = rng.random(20000) < 1 / (1 + np.exp(-(signal_new - 1)))
    assert result.auc_corrected <= weighted_auc(y_new, signal_new) + 0.02
    assert math.isnan(bootstrap_optimism(X, np.zeros(n, bool)).auc_corrected)


# ----------------------------------------------------------------------------- the study spec


def _spec(decision):
    ep = {"name": "died", "column": "death", **({} if decision is None else {"decision_threshold": decision})}
    return {
        "name": "s",
        "version": 1,
        "id_column": "pid",
        "features": [{"name": "age", "type": "numeric"}],
        "endpoints": [ep],
        "split": {"sizes": {"train": 0.6, "validation": 0.2, "test": 0.2}, "seed": 0},
    }


def test_the_spec_declares_a_decision_threshold_per_endpoint_as_a_risk() -> None:
    spec = study_from_dict(_spec(0.1), source="s.yaml")
    assert spec.endpoints[0].decision_threshold == 0.1
    assert spec.to_dict()["endpoints"][0]["decision_threshold"] == 0.1
    assert study_from_dict(_spec(None), source="s.yaml").endpoints[0].decision_threshold is None
    for bad in (1.5, 0, "ten percent"):
        with pytest.raises(SpecError, match=r"endpoints\[died\]\.decision_threshold"):
            study_from_dict(_spec(bad), source="s.yaml")


# ----------------------------------------------------------------------------- the figures


@pytest.mark.parametrize("plot", [plot_calibration, plot_decision_curve])
def test_calibration_and_decision_curve_figures_are_readable(tmp_path: Path, plot) -> None:
    run = read_run_dir(make_run_folder(tmp_path / "run", sizes=(300, 200, 1000)))
    report = compute_report(run.labels, run.scores, run.split, endpoints=run.endpoints, study=run.study)
    fig = plot(report)
    assert layout_problems(fig, dpi=150) == []
    drawn = {line.get_gid() for ax in fig.axes for line in ax.get_lines()}
    assert set(report.models) <= drawn
    fig.savefig(tmp_path / "figure.png", dpi=150)
    assert (tmp_path / "figure.png").read_bytes()[:4] == b"\x89PNG"


def test_a_re_rendered_report_pools_the_run_folders_threshold_pool_and_shows_the_internal_validation(
    tmp_path: Path,
) -> None:
    import json

    from cohortlm.evaluation.render import write_report

    root = make_run_folder(tmp_path / "run", sizes=(600, 200, 800))
    labels = pd.read_parquet(root / "labels.parquet")
    train = labels["split"] == "train"
    (root / "threshold_pool" / "scores").mkdir(parents=True)
    labels[train].drop(columns="split").to_parquet(root / "threshold_pool" / "labels.parquet", index=False)
    for name in ("logistic_regression", "smollm2_qlora"):
        scores = pd.read_parquet(root / "scores" / f"{name}.parquet")
        scores[~train].to_parquet(root / "scores" / f"{name}.parquet", index=False)
        if name == "logistic_regression":  # only the regression has out-of-fold training scores
            scores[train].to_parquet(root / "threshold_pool" / "scores" / f"{name}.parquet", index=False)
    labels[~train].to_parquet(root / "labels.parquet", index=False)
    figures = {"n": 600, "cases": 50, "n_boot": 200, "auc_apparent": 0.8, "auc_optimism": 0.01}
    figures.update({"auc_corrected": 0.79, "slope_apparent": 1.0, "slope_optimism": 0.05})
    figures.update({"slope_corrected": 0.95, "seconds": 1.0, "auc_test": 0.7, "slope_test": 0.9})
    (root / "outcome.json").write_text(json.dumps({"internal_validation": {"das28_esr_high": figures}}))
    paths = write_report(root)
    table = pd.read_csv(paths.table1_csv)
    declared = table["threshold_source"] == DECLARED_SOURCE
    pooled = table.loc[~declared & (table["model"] == "logistic_regression"), "threshold_source"]
    assert set(pooled) == {"validation+train (out-of-fold)"}
    assert declared.sum() == 8  # four endpoints declare one, two models each
    page = paths.index_html.read_text(encoding="utf-8")
    assert "id='internal-validation'" in page and "0.790" in page
    for name in ("calibration", "decision_curve"):
        assert (paths.index_html.parent / f"{name}.png").is_file()
        assert (paths.index_html.parent / f"{name}.csv").is_file()
    metrics = json.loads(paths.metrics_json.read_text())
    assert metrics["internal_validation"]["das28_esr_high"]["auc_corrected"] == 0.79
    assert {r["model"] for r in metrics["decision_curve"]} >= {"treat_all", "treat_none"}
    assert len(metrics["calibration"]) == 16
