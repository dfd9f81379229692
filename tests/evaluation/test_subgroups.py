"""Declared subgroups: the spec's checks, each patient's level, and the per-level table against sklearn."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from cohortlm.cohort.study import load_study, study_from_dict
from cohortlm.errors import SpecError
from cohortlm.evaluation.stats.calibration import recalibration
from cohortlm.evaluation.subgroups import (
    SUBGROUP_COLUMNS,
    paired_subgroup_stats,
    subgroup_levels,
    subgroup_table,
)


def _spec(subgroups: Any) -> Any:
    return study_from_dict(
        {
            "name": "toy",
            "id_column": "pid",
            "features": [
                {"name": "age", "type": "numeric", "min": 16, "max": 100},
                {"name": "sex", "type": "categorical", "categories": ["female", "male"]},
                {"name": "acpa", "type": "binary"},
            ],
            "endpoints": [{"name": "flare", "column": "flare_2y", "operator": ">", "threshold": 0.5}],
            "split": {"sizes": {"train": 0.6, "validation": 0.2, "test": 0.2}},
            "subgroups": subgroups,
        },
        source="toy.yaml",
    )


SUBGROUPS = [
    {"name": "sex", "feature": "sex"},
    {"name": "age_band", "feature": "age", "cuts": [50, 65]},
    {"name": "anti_ccp", "feature": "acpa", "labels": ["negative", "positive"]},
]


def test_the_ra_study_declares_sex_age_bands_and_seropositivity() -> None:
    spec = load_study("ra_iorra")
    assert [(g.name, g.levels) for g in spec.subgroups] == [
        ("sex", ("female", "male")),
        ("age_band", ("<50", "50-<65", ">=65")),
        ("anti_ccp", ("negative", "positive")),
    ]
    assert study_from_dict(spec.to_dict()) == spec


def test_subgroups_are_optional_and_round_trip() -> None:
    assert _spec(None).subgroups == ()
    spec = _spec(SUBGROUPS)
    assert spec.to_dict()["subgroups"] == SUBGROUPS
    assert study_from_dict(spec.to_dict()) == spec
    # What a model reads is unchanged, so bundles keep their spec hash.
    assert spec.spec_hash == _spec(None).spec_hash


@pytest.mark.parametrize(
    ("subgroups", "match"),
    [
        ("sex", "subgroups: must be a list"),
        ([{"name": "age_band", "feature": "age"}], r"subgroups\.age_band\.cuts: feature 'age' is numeric"),
        (
            [{"name": "s", "feature": "sex", "cuts": [1]}],
            r"subgroups\.s\.cuts: applies to numeric features only",
        ),
        (
            [{"name": "g", "feature": "height"}],
            r"subgroups\.g\.feature: must name one of the study's features",
        ),
        (
            [{"name": "a", "feature": "age", "cuts": [65, 50]}],
            r"subgroups\.a\.cuts: must be strictly increasing",
        ),
        ([{"name": "a", "feature": "age", "cuts": [150]}], r"subgroups\.a\.cuts: must lie within"),
        (
            [{"name": "c", "feature": "acpa", "labels": ["x"]}],
            r"subgroups\.c\.labels: must be 2 distinct names",
        ),
        ([{"name": "Sex", "feature": "sex"}], r"subgroups\[0\]\.name: must be a lower snake_case"),
        ([{"name": "s", "feature": "sex", "bins": 3}], r"subgroups\[0\]\.bins: unknown key"),
        (
            [{"name": "s", "feature": "sex"}, {"name": "s", "feature": "acpa"}],
            r"subgroups\.s: is declared twice",
        ),
    ],
)
def test_subgroup_errors_name_the_key(subgroups: Any, match: str) -> None:
    with pytest.raises(SpecError, match=f"toy.yaml: {match}"):
        _spec(subgroups)


def _cohort(n: int = 1200, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, pd.DataFrame]]:
    rng = np.random.default_rng(seed)
    ids = pd.Index([f"p{i}" for i in range(n)])
    table = pd.DataFrame(
        {
            "age": rng.uniform(20, 90, n),
            "sex": rng.choice(["female", "male"], n, p=[0.8, 0.2]),
            "acpa": rng.choice([0.0, 1.0, np.nan], n, p=[0.3, 0.6, 0.1]),
        },
        index=ids,
    )
    y = (rng.random(n) < 0.3).astype(float)
    labels = pd.DataFrame({"flare": y}, index=ids)
    men = (table["sex"] == "male").to_numpy()
    good = 1 / (1 + np.exp(-(rng.normal(size=n) + 1.5 * y - 1.5)))
    # Among men the candidate's score is noise: worse there, as good elsewhere.
    cand = np.where(men, 1 / (1 + np.exp(-(rng.normal(size=n) - 1))), good)
    scores = {
        "champion": pd.DataFrame({"flare": good}, index=ids),
        "candidate": pd.DataFrame({"flare": cand}, index=ids),
    }
    return table, labels, scores


def test_levels_follow_the_feature_and_missing_is_no_level() -> None:
    spec = _spec(SUBGROUPS)
    table = pd.DataFrame(
        {
            "age": [30.0, 50.0, 64.9, 65.0, np.nan],
            "sex": ["male", "female", None, "male", "female"],
            "acpa": [1.0, 0.0, np.nan, 1.0, 0.0],
        },
        index=list("abcde"),
    )
    levels = subgroup_levels(table, spec)
    assert levels["age_band"].tolist() == ["<50", "50-<65", "50-<65", ">=65", np.nan]
    assert levels["sex"].tolist() == ["male", "female", np.nan, "male", "female"]
    assert levels["anti_ccp"].tolist() == ["positive", "negative", np.nan, "positive", "negative"]
    assert list(levels["age_band"].cat.categories) == ["<50", "50-<65", ">=65"]


def test_subgroup_table_matches_sklearn_and_the_recalibration() -> None:
    spec = _spec(SUBGROUPS)
    table, labels, scores = _cohort()
    levels = subgroup_levels(table, spec)
    out = subgroup_table(labels, scores, levels, endpoints=["flare"])
    assert tuple(out.columns) == SUBGROUP_COLUMNS
    assert len(out) == 1 * 2 * (2 + 3 + 2)  # endpoints × models × levels
    row = out[(out.model == "champion") & (out.subgroup == "age_band") & (out.level == ">=65")].iloc[0]
    keep = (table["age"] >= 65).to_numpy()
    y, s = labels["flare"].to_numpy()[keep], scores["champion"]["flare"].to_numpy()[keep]
    assert (row.n, row.cases) == (keep.sum(), y.sum())
    assert row.auc == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert row.auc_ci_low < row.auc < row.auc_ci_high
    assert row.slope == pytest.approx(recalibration(y, s).slope, abs=1e-9)
    # Missing seropositivity puts a patient in neither level.
    sero = out[(out.model == "champion") & (out.subgroup == "anti_ccp")]
    assert sero.n.sum() == table["acpa"].notna().sum()


def test_paired_stats_show_the_candidate_worse_among_men_only() -> None:
    spec = _spec(SUBGROUPS)
    table, labels, scores = _cohort()
    levels = subgroup_levels(table, spec)
    st = paired_subgroup_stats(
        labels,
        scores["candidate"],
        scores["champion"],
        levels,
        rows=None,
        endpoints=["flare"],
        names=("candidate", "champion"),
    )
    cells = [(c.subgroup, c.level) for c in st.cells]
    delta = dict(zip(cells, (st.auc_candidate - st.auc_champion)[0], strict=True))
    assert delta[("sex", "male")] < -0.2
    assert abs(delta[("sex", "female")]) < 1e-12
    assert st.var_delta.shape == (1, len(cells)) and math.isfinite(st.var_delta[0, 0])
