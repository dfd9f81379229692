"""The report's fine-tuned vs zero-shot comparison (seed 000's first finding), on constructed scores."""

from __future__ import annotations

import numpy as np
import pandas as pd

from cohortlm.evaluation.comparisons import paired_comparison
from cohortlm.evaluation.report import compute_report, fine_tuning_markdown


def _frames(n: int = 600, seed: int = 0):
    rng = np.random.default_rng(seed)
    ids = [f"p{i}" for i in range(n)]
    y = pd.DataFrame({"a": rng.random(n) < 0.4, "b": rng.random(n) < 0.3}, index=ids).astype(float)
    noise = rng.normal(size=(n, 2))
    good = pd.DataFrame(y.to_numpy() * 1.5 + noise, index=ids, columns=["a", "b"])
    chance = pd.DataFrame(rng.normal(size=(n, 2)), index=ids, columns=["a", "b"])
    return y, good, chance


def test_a_model_that_learnt_is_significantly_better_than_chance_on_every_endpoint():
    y, good, chance = _frames()
    table = paired_comparison(y, good, chance, alternative="greater", adjustment="holm")
    assert list(table["endpoint"]) == ["a", "b"]
    assert table["significant"].all()
    assert (table["p_adjusted"] >= table["p"]).all()
    assert (table["auc_a"] > 0.8).all() and (table["auc_b"] < 0.6).all()


def test_equal_models_are_not_significant_and_one_class_is_never_significant():
    y, _, chance = _frames()
    same = paired_comparison(y, chance, chance)
    assert not same["significant"].any()
    y1 = y.copy()
    y1["b"] = 1.0  # one class only: undefined, not "better"
    table = paired_comparison(y1, chance, chance)
    row = table.set_index("endpoint").loc["b"]
    assert np.isnan(row["p"]) and not row["significant"]


def test_report_holds_the_fine_tuning_table_on_the_test_split():
    y, good, chance = _frames()
    split = pd.Series(np.where(np.arange(len(y)) < 100, "validation", "test"), index=y.index)
    report = compute_report(
        y, {"baseline": good, "zero_shot": chance, "fine_tuned": good}, split, candidate="fine_tuned",
        champion="baseline",
    )  # fmt: skip
    assert report.fine_tuning is not None
    assert (report.fine_tuning["n"] == 500).all()  # the test split only
    text = fine_tuning_markdown(report.fine_tuning)
    assert "Significantly better on 2 of 2 endpoints" in text
