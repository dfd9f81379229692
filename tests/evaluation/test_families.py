"""Seed 000's comparison families and Table 1's bold best values."""

from __future__ import annotations

import numpy as np
import pandas as pd

from cohortlm.evaluation.comparisons import comparison_families, llm_pairs, paired_comparison
from cohortlm.evaluation.report import table1_best


def _frames(n: int = 400, seed: int = 0) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    rng = np.random.default_rng(seed)
    ids = [f"p{i}" for i in range(n)]
    y = pd.DataFrame({"e1": rng.integers(0, 2, n), "e2": rng.integers(0, 2, n)}, index=ids).astype(float)
    noise = lambda s: pd.DataFrame(rng.random((n, 2)) * s, index=ids, columns=y.columns)  # noqa: E731
    scores = {
        "baseline": y * 0.5 + noise(1.0),
        "a": noise(1.0),
        "a+qlora": y * 0.8 + noise(1.0),
        "b": y * 0.2 + noise(1.0),
        "b+qlora": y * 0.3 + noise(1.0),
    }
    return y, scores


def test_pairs_are_read_from_the_names():
    assert llm_pairs(["baseline", "a", "a+qlora", "b", "b+qlora", "c+qlora"]) == [
        ("a", "a+qlora"),
        ("b", "b+qlora"),
    ]
    assert llm_pairs(["baseline", "zero_shot", "fine_tuned"]) == [("zero_shot", "fine_tuned")]


def test_three_families_each_adjusted_on_its_own():
    y, scores = _frames()
    fam = comparison_families(y, scores)
    assert list(fam) == ["base_vs_base", "fine_tuned_vs_base", "fine_tuned_vs_baseline"]
    assert len(fam["base_vs_base"]) == 2 and len(fam["fine_tuned_vs_base"]) == 4
    assert set(fam["fine_tuned_vs_base"]["alternative"]) == {"greater"}
    assert set(fam["base_vs_base"]["alternative"]) == {"two-sided"}
    # Holm over the family's 4 tests, not over each pair's 2.
    t = fam["fine_tuned_vs_base"]
    order = np.argsort(t["p"].to_numpy())
    p = t["p"].to_numpy()[order]
    holm = np.minimum(1, np.maximum.accumulate(p * (len(p) - np.arange(len(p)))))
    assert np.allclose(t["p_adjusted"].to_numpy()[order], holm)
    # The strong fine-tune beats its base on both endpoints; the unadjusted per-pair test agrees.
    strong = t[t["model_a"] == "a+qlora"]
    assert strong["significant"].all()
    single = paired_comparison(y, scores["a+qlora"], scores["a"], adjustment="none")
    assert np.allclose(single["p"], strong["p"])


def test_one_base_has_no_base_vs_base_family():
    y, scores = _frames()
    fam = comparison_families(y, {k: scores[k] for k in ("baseline", "a", "a+qlora")})
    assert list(fam) == ["fine_tuned_vs_base", "fine_tuned_vs_baseline"]


def test_table1_best_marks_ties_and_lower_brier():
    table = pd.DataFrame(
        {
            "endpoint": ["e", "e", "e", "f"],
            "model": ["x", "y", "z", "x"],
            "auc": [0.7001, 0.7004, 0.6, np.nan],
            "brier": [0.2, 0.1, 0.3, 0.2],
            "f1": [0.5, np.nan, 0.4, 0.1],
        }
    )
    best = table1_best(table)
    assert best[0].split(";") == ["auc", "f1"]  # 0.700 == 0.700 as printed: both bold
    assert best[1].split(";") == ["auc", "brier"]
    assert best[2] == ""
    assert sorted(best[3].split(";")) == ["brier", "f1"]  # no AUC: nothing bold for it
