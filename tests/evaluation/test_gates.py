"""GatePolicy validation, the gate's rule on constructed cases, and decide() on data (DESIGN.md, Gates)."""

from __future__ import annotations

import json
import math
from dataclasses import fields, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from cohortlm.errors import SpecError, UsageError
from cohortlm.evaluation.gate import (
    Decision,
    GatePolicy,
    RuleInputs,
    alpha_for_look,
    apply_policy,
    decide,
    default_policy_path,
    endpoint_margins,
    legacy_policy_path,
    load_policy,
)
from cohortlm.evaluation.gate.policy import CONSTRAINTS
from cohortlm.evaluation.stats import delong_test, holm
from cohortlm.evaluation.subgroups import SubgroupCell, SubgroupInputs

EPS = ["a", "b", "c"]


def test_default_policy_file_is_the_dataclass_default() -> None:
    """The default numbers are written once, in the YAML: the dataclass reads every key from it."""
    raw = yaml.safe_load(default_policy_path().read_text())
    assert set(raw) == set(CONSTRAINTS) == {f.name for f in fields(GatePolicy)}
    p = load_policy()
    assert p == GatePolicy()
    assert GatePolicy.from_dict(raw) == p
    assert p.to_dict() == {**raw, "slope_range": list(raw["slope_range"])}
    assert default_policy_path().is_file()
    old = load_policy(legacy_policy_path())
    assert (old.margin, old.margin_rule, old.ni_level, old.calibration, old.alpha_spending) == (
        0.02,
        "absolute",
        0.025,
        "brier_margin",
        "none",
    )


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"alpha": 1.5}, "'alpha' must be in"),
        ({"margin": -0.1, "margin_rule": "absolute"}, "'margin' must be ≥ 0"),
        ({"min_superior": 1.5}, "'min_superior' must be a whole number"),
        ({"min_cases": 1}, "'min_cases' must be a whole number ≥ 2"),
        ({"adjustment": "bonferroni"}, "'adjustment' must be one of holm, bh, none"),
        ({"alpha_spending": "pocock"}, "'alpha_spending' must be one of"),
        ({"max_looks": None}, "'max_looks' must be a whole number ≥ 1 unless"),
        ({"slope_range": [1.1, 1.2]}, "'slope_range' must satisfy"),
        ({"primary": "a"}, "'primary' must be a list"),
        ({"conf_level": "high"}, "'conf_level' must be a finite number"),
        ({"alfa": 0.05}, "unknown policy key"),
    ],
)
def test_policy_errors_name_the_key(data: dict, match: str) -> None:
    with pytest.raises(SpecError, match=match):
        GatePolicy.from_dict(data, source="p.yaml")


def test_policy_file_must_say_what_an_old_key_means(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("margin: 0.02\n")
    with pytest.raises(SpecError, match="'margin' needs 'margin_rule'"):
        GatePolicy.from_yaml(path)
    path.write_text("brier_margin: 0.01\n")
    with pytest.raises(SpecError, match="applies only with 'calibration: brier_margin'"):
        GatePolicy.from_yaml(path)
    path.write_text("calibration: test\nbrier_margin: 0.01\n")  # says which rule: accepted, unused
    assert GatePolicy.from_yaml(path).calibration == "test"


def test_policy_from_yaml_and_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("policy:\n  alpha: 0.01\n  primary: [a, b]\n  margins: {c: 0.1}\n")
    p = GatePolicy.from_yaml(path)
    assert p.alpha == 0.01 and p.primary == ("a", "b") and p.margins == {"c": 0.1}
    assert GatePolicy.from_dict(json.loads(json.dumps(p.to_dict()))) == p
    path.write_text("alpha: [\n")
    with pytest.raises(SpecError, match="not valid YAML"):
        GatePolicy.from_yaml(path)
    with pytest.raises(SpecError, match="not found"):
        GatePolicy.from_yaml(tmp_path / "missing.yaml")


# ----------------------------------------------------------------------------- the rule, constructed


def _stats(delta, se, cases=(500, 500, 500), controls=(1500, 1500, 1500), citl=0.0, slope=1.0, se_cal=0.05):
    k = len(delta)
    row = lambda v: np.array([v if np.ndim(v) else [v] * k], dtype=float).reshape(1, k)  # noqa: E731
    return RuleInputs(
        n_cases=row(list(cases)),
        n_controls=row(list(controls)),
        auc_candidate=0.75 + row(list(delta)),
        auc_champion=row(0.75),
        var_delta=row([s * s for s in se]),
        citl=row(citl),
        se_citl=row(se_cal),
        slope=row(slope),
        se_slope=row(se_cal),
        brier_candidate=row(0.1),
        brier_champion=row(0.1),
    )


def test_superiority_needs_the_spent_alpha_of_the_look() -> None:
    p = GatePolicy()
    # z = 2.5 on one endpoint: Holm's p = 3 × 0.0062 = 0.019, below α_1 = 0.0313, above α_2 = 0.0078.
    st = _stats([0.025, 0.0, 0.0], [0.01, 0.01, 0.01])
    assert apply_policy(st, p, EPS, look=1).promote[0]
    assert not apply_policy(st, p, EPS, look=2).promote[0]  # α_2 = α_1 / 4
    # With no spending every look gets the full α.
    assert apply_policy(st, GatePolicy(alpha_spending="none", max_looks=None), EPS, look=5).promote[0]


def test_alpha_spending_sums_to_alpha_over_the_budget() -> None:
    p = GatePolicy()
    levels = [alpha_for_look(p, k) for k in range(1, 21)]
    assert sum(levels) == pytest.approx(0.05)
    assert levels[0] == pytest.approx(0.05 / sum(1 / j**2 for j in range(1, 21)))
    assert alpha_for_look(p, 21) == 0.0
    assert alpha_for_look(GatePolicy(alpha_spending="bonferroni"), 3) == pytest.approx(0.0025)
    with pytest.raises(UsageError):
        alpha_for_look(p, 0)


def test_look_past_the_budget_refuses() -> None:
    st = _stats([0.1, 0.1, 0.1], [0.01, 0.01, 0.01])
    assert not apply_policy(st, GatePolicy(max_looks=3), EPS, look=4).promote[0]


def test_primary_endpoints_only_are_tested_for_superiority() -> None:
    st = _stats([0.0, 0.05, 0.0], [0.01, 0.01, 0.01])
    assert apply_policy(st, GatePolicy(), EPS).promote[0]
    out = apply_policy(st, GatePolicy(primary=("a",)), EPS)
    assert not out.superior[0, 1] and not out.promote[0] and math.isnan(out.p_better_adjusted[0, 1])


def test_non_inferiority_at_one_sided_alpha_with_the_margin() -> None:
    p = GatePolicy(margin=0.03, margin_rule="absolute")
    # Lower bound Δ − 1.645·SE: −0.01 − 0.0164 = −0.0264 ≥ −0.03 passes; SE 0.0125 gives −0.0306.
    ok = apply_policy(_stats([0.05, -0.01, 0.0], [0.01, 0.01, 0.01]), p, EPS)
    assert ok.non_inferior[0, 1] and ok.promote[0]
    assert ok.ni_lower[0, 1] == pytest.approx(-0.01 - 1.6448536 * 0.01)
    bad = apply_policy(_stats([0.05, -0.01, 0.0], [0.01, 0.0125, 0.01]), p, EPS)
    assert not bad.non_inferior[0, 1] and not bad.promote[0]


def test_case_scaled_margins() -> None:
    p = GatePolicy()
    m = endpoint_margins(
        p, ["x", "y", "z"], np.array([[77.0, 1061.0, 100.0]]), np.array([[2186.0, 1202.0, 1e9]])
    )
    n_eff = 1061 * 1202 / 2263
    assert m[0, 0] == pytest.approx(0.085)  # capped at margin_max
    assert m[0, 1] == pytest.approx(0.08 * math.sqrt(100 / n_eff))
    assert m[0, 2] == pytest.approx(0.08, rel=1e-6)
    over = endpoint_margins(
        GatePolicy(margins={"y": 0.01}), ["x", "y", "z"], [[77, 1061, 100]], [[2186, 1202, 9]]
    )
    assert over[0, 1] == 0.01


def test_significantly_worse_blocks_even_within_the_margin() -> None:
    st = _stats([0.05, -0.03, 0.0], [0.01, 0.008, 0.01])
    out = apply_policy(st, GatePolicy(margin=0.10, margin_rule="absolute"), EPS)
    assert out.non_inferior[0, 1] and out.worse[0, 1] and not out.promote[0]


def test_calibration_test_blocks_only_when_shown_outside_the_tolerance() -> None:
    p = GatePolicy()
    # 2x the risk of a rare outcome: CITL ≈ −0.69 with SE 0.12 — shown beyond −0.2.
    bad = apply_policy(_stats([0.05, 0.05, 0.05], [0.01] * 3, citl=[0.0, -0.69, 0.0], se_cal=0.12), p, EPS)
    assert not bad.calibration_ok[0, 1] and not bad.promote[0]
    # A small miscalibration measured precisely is within the tolerance: not blocked.
    mild = apply_policy(_stats([0.05, 0.05, 0.05], [0.01] * 3, citl=-0.1, slope=0.9, se_cal=0.01), p, EPS)
    assert mild.calibration_ok.all() and mild.promote[0]
    # A slope shown to be too low blocks.
    flat = apply_policy(_stats([0.05, 0.05, 0.05], [0.01] * 3, slope=[1.0, 1.0, 0.5], se_cal=0.05), p, EPS)
    assert not flat.calibration_ok[0, 2]


def test_brier_margin_rule_of_the_first_default() -> None:
    st = replace(_stats([0.05, 0.05, 0.05], [0.01] * 3), brier_candidate=np.array([[0.1, 0.125, 0.1]]))
    p = load_policy(legacy_policy_path())
    out = apply_policy(st, p, EPS)
    assert list(out.calibration_ok[0]) == [True, False, True] and not out.promote[0]


def test_small_sample_endpoint_is_insufficient_never_better_or_worse() -> None:
    st = _stats([0.05, -0.2, 0.3], [0.01, 0.01, 0.01], cases=(500, 12, 25))
    out = apply_policy(st, GatePolicy(), EPS)
    assert list(out.insufficient[0]) == [False, True, True]
    assert not out.superior[0, 1:].any() and not out.worse[0, 1:].any()
    assert out.promote[0]  # excluded, and the rest promotes
    assert not apply_policy(st, GatePolicy(insufficient="block"), EPS).promote[0]
    # Holm counts only the assessed endpoints.
    assert out.p_better_adjusted[0, 0] == pytest.approx(out.p_better[0, 0])


def test_vectorised_rule_matches_row_by_row() -> None:
    rng = np.random.default_rng(0)
    r, k = 50, 3
    st = RuleInputs(
        n_cases=rng.integers(10, 400, (r, k)).astype(float),
        n_controls=np.full((r, k), 1500.0),
        auc_candidate=0.75 + rng.normal(0, 0.02, (r, k)),
        auc_champion=np.full((r, k), 0.75),
        var_delta=rng.uniform(0.005, 0.02, (r, k)) ** 2,
        citl=rng.normal(0, 0.2, (r, k)),
        se_citl=np.full((r, k), 0.1),
        slope=rng.normal(1, 0.1, (r, k)),
        se_slope=np.full((r, k), 0.05),
    )
    whole = apply_policy(st, GatePolicy(), EPS).promote
    rows = [apply_policy(st.rows(i, i + 1), GatePolicy(), EPS).promote[0] for i in range(r)]
    assert list(whole) == rows


# ----------------------------------------------------------------------------- decide() on data


def _data(
    gains: dict[str, float], n: int = 1500, seed: int = 0, prevalence: float = 0.5
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Labels and two models' calibrated probabilities; gain > 0 makes the candidate better."""
    rng = np.random.default_rng(seed)
    ids = pd.Index(range(n), name="patient_id")
    labels, cand, champ = {}, {}, {}
    lo = math.log(prevalence / (1 - prevalence))
    for ep, gain in gains.items():
        y = (rng.random(n) < prevalence).astype(int)
        shared = rng.normal(size=n)
        mu_h, mu_c = 1.0, 1.0 + gain
        x_h = mu_h * y + 0.7 * shared + math.sqrt(1 - 0.49) * rng.normal(size=n)
        x_c = mu_c * y + 0.7 * shared + math.sqrt(1 - 0.49) * rng.normal(size=n)
        labels[ep] = y.astype(float)
        champ[ep] = 1 / (1 + np.exp(-(lo + mu_h * x_h - mu_h**2 / 2)))
        cand[ep] = 1 / (1 + np.exp(-(lo + mu_c * x_c - mu_c**2 / 2)))
    return pd.DataFrame(labels, ids), pd.DataFrame(cand, ids), pd.DataFrame(champ, ids)


def test_better_everywhere_is_promoted_and_numbers_match_delong() -> None:
    labels, cand, champ = _data({"a": 0.6, "b": 0.6, "c": 0.4})
    d = decide(labels, cand, champ, candidate_name="llm", champion_name="lr")
    assert d.promote, d.summary()
    assert d.n_superior == 3 and d.look == 1 and d.alpha_look == pytest.approx(alpha_for_look(d.policy, 1))
    raw = [delong_test(labels[e], cand[e], champ[e], alternative="greater").p_value for e in "abc"]
    np.testing.assert_allclose([v.p_better for v in d.endpoints], raw, rtol=1e-9)
    np.testing.assert_allclose([v.p_better_adjusted for v in d.endpoints], holm(raw), rtol=1e-9)
    v = d.endpoints[0]
    r = delong_test(labels["a"], cand["a"], champ["a"])
    assert (v.auc_candidate, v.auc_champion, v.delta, v.z) == pytest.approx((r.auc_a, r.auc_b, r.delta, r.z))
    assert v.ci_delta == pytest.approx(r.ci_delta)
    assert v.ci_auc_candidate[0] < v.auc_candidate < v.ci_auc_candidate[1]
    assert abs(v.citl_candidate) < 0.3 and abs(v.slope_champion - 1) < 0.3  # both models' calibration
    assert d.reasons[0].startswith("Promote llm over lr")


def test_significantly_worse_endpoint_blocks() -> None:
    labels, cand, champ = _data({"a": 0.8, "b": -0.8})
    d = decide(labels, cand, champ)
    assert not d.promote
    b = d.endpoints[1]
    assert b.worse and b.verdict == "worse" and not b.non_inferior
    assert any("significantly worse (b;" in r for r in d.reasons)


def test_miscalibrated_candidate_is_blocked() -> None:
    labels, cand, champ = _data({"a": 0.6, "b": 0.6}, n=3000, prevalence=0.08)
    doubled = (cand * 2).clip(upper=0.999)  # same ranking, twice the risk
    d = decide(labels, doubled, champ)
    assert d.endpoints[0].superior and not d.endpoints[0].calibration_ok and not d.promote
    assert d.endpoints[0].citl_candidate < -0.4
    assert any("Calibration fails" in r for r in d.reasons)


def test_small_endpoint_gets_insufficient_evidence_and_says_why() -> None:
    labels, cand, champ = _data({"a": 0.8, "b": 0.8})
    labels.loc[labels.index[200:], "b"] = 0.0  # ~100 cases at most in the first 200 rows ...
    labels.loc[labels.index[:200], "b"] = (np.arange(200) < 10).astype(float)  # ... then 10
    d = decide(labels, cand, champ)
    b = d.endpoints[1]
    assert b.verdict == "insufficient evidence" and b.insufficient and not b.superior and not b.worse
    assert d.promote  # excluded; a is better
    assert any("Insufficient evidence on 1 endpoint(s) (b)" in r for r in d.reasons)
    one_class = labels.copy()
    one_class["b"] = 0.0
    d1 = decide(one_class, cand, champ)
    assert d1.endpoints[1].verdict == "insufficient evidence"
    json.loads(d1.to_json())  # NaNs are written as null


def test_look_and_split_hash_are_recorded_and_a_spent_split_refuses() -> None:
    labels, cand, champ = _data({"a": 0.8})
    d = decide(labels, cand, champ, look=21, split_hash="abc")
    assert not d.promote and d.look == 21 and d.split_hash == "abc" and d.alpha_look == 0.0
    assert any("refuses to promote on a worn-out split" in r for r in d.reasons)


def test_policy_naming_unknown_endpoint_is_an_error() -> None:
    labels, cand, champ = _data({"a": 0.8})
    with pytest.raises(SpecError, match="not judged here: zz"):
        decide(labels, cand, champ, policy=GatePolicy(primary=("zz",)))


def test_design_notes_say_when_the_margin_cannot_be_shown() -> None:
    labels, cand, champ = _data({"a": 0.0}, n=300, prevalence=0.3)
    d = decide(labels, cand, champ, policy=GatePolicy(margin=0.01, margin_rule="absolute"))
    assert any("only about" in n for n in d.notes)


def test_split_restricts_rows() -> None:
    labels, cand, champ = _data({"a": 0.8})
    split = pd.Series(np.where(np.arange(len(labels)) < 500, "validation", "test"), labels.index)
    d = decide(labels, cand, champ, split=split)
    assert d.endpoints[0].n == 1000


def test_decision_round_trips_through_json() -> None:
    labels, cand, champ = _data({"a": 0.8, "b": 0.1, "c": -0.2})
    d = decide(labels, cand, champ, candidate_name="llm", champion_name="lr")
    text = d.to_json()
    back = Decision.from_json(text)
    assert back == d
    assert back.to_json() == text
    safety = decide(labels, cand, champ, policy=GatePolicy(primary=("a",)))  # NaN adjusted p for b, c
    assert Decision.from_json(safety.to_json()).to_json() == safety.to_json()
    data = json.loads(text)
    for key in ("policy", "endpoints", "promote", "reasons", "n_superior", "look", "alpha_look"):
        assert key in data
    for key in ("n", "auc_candidate", "ci_auc_candidate", "delta", "ci_delta", "z", "p_better_adjusted"):
        assert key in data["endpoints"][0]
    for key in ("margin", "ni_lower", "citl_candidate", "slope_champion", "verdict", "reasons"):
        assert key in data["endpoints"][0]


def test_decision_with_nan_round_trips() -> None:
    labels, cand, champ = _data({"a": 0.8, "b": 0.8})
    labels["b"] = 1.0
    d = decide(labels, cand, champ)
    back = Decision.from_json(d.to_json())
    assert back.to_json() == d.to_json()
    assert math.isnan(back.endpoints[1].auc_candidate)


def test_malformed_or_old_record_is_a_spec_error() -> None:
    with pytest.raises(SpecError, match="not valid JSON"):
        Decision.from_json("{")
    with pytest.raises(SpecError, match="malformed"):
        Decision.from_json('{"candidate": "x"}')
    with pytest.raises(SpecError, match="schema_version 1 is not supported"):
        Decision.from_json('{"schema_version": 1}')


def test_readme_default_policy_table_matches_the_yaml() -> None:
    """README's table of the default policy says what cohortlm/policies/default.yaml says, key by key."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    start = readme.index("<!-- default-policy table")
    table = readme[start : readme.index("<!-- end default-policy table -->")]
    shown = {}
    for line in table.splitlines()[3:]:
        key, value = (cell.strip().strip("`") for cell in line.strip("|").split("|")[:2])
        shown[key] = yaml.safe_load(value)
    assert shown == yaml.safe_load(default_policy_path().read_text())


# ----------------------------------------------------------------------------- the subgroup rule


def _levels(delta: list[float], se: float = 0.02, cases: int = 200) -> SubgroupInputs:
    k = len(delta)
    cells = tuple(SubgroupCell("a", "g", f"l{i}") for i in range(k))
    row = lambda v: np.array([v], dtype=float)  # noqa: E731
    return SubgroupInputs(
        cells=cells,
        n_cases=row([cases] * k),
        n_controls=row([800] * k),
        auc_candidate=0.75 + row(delta),
        auc_champion=row([0.75] * k),
        var_delta=row([se * se] * k),
    )


def test_a_candidate_shown_worse_in_a_subgroup_level_is_not_promoted() -> None:
    st = _stats([0.05, 0.05, 0.05], [0.01] * 3)
    assert apply_policy(st, GatePolicy(), EPS).promote[0]
    # z = −5 in one of 10 levels: Holm's p = 10 × 2.9e-7, well below α.
    worse = _levels([-0.10] + [0.0] * 9)
    out = apply_policy(st, GatePolicy(), EPS, subgroups=worse)
    assert out.subgroup_worse[0, 0] and not out.subgroup_worse[0, 1:].any() and not out.promote[0]
    # subgroups: none reports the finding and does not block.
    kept = apply_policy(st, GatePolicy(subgroups="none"), EPS, subgroups=worse)
    assert kept.subgroup_worse[0, 0] and kept.promote[0]


def test_subgroup_tests_are_adjusted_over_the_levels_and_guarded_for_small_samples() -> None:
    st = _stats([0.05, 0.05, 0.05], [0.01] * 3)
    # z = −2.5: p = 0.0062 alone, Holm over 10 levels 0.062: not shown worse.
    out = apply_policy(st, GatePolicy(), EPS, subgroups=_levels([-0.05] + [0.0] * 9))
    assert out.subgroup_p_worse[0, 0] == pytest.approx(0.00621, abs=1e-5)
    assert out.subgroup_p_worse_adjusted[0, 0] == pytest.approx(10 * out.subgroup_p_worse[0, 0])
    assert not out.subgroup_worse.any() and out.promote[0]
    # A level below min_cases is not tested, however large its deficit.
    small = apply_policy(st, GatePolicy(), EPS, subgroups=_levels([-0.30], cases=12))
    assert not small.subgroup_tested[0, 0] and np.isnan(small.subgroup_p_worse[0, 0]) and small.promote[0]
    # A policy level of its own.
    strict = apply_policy(st, GatePolicy(subgroup_alpha=0.1), EPS, subgroups=_levels([-0.05] + [0.0] * 9))
    assert strict.subgroup_worse[0, 0]


def test_decide_refuses_a_candidate_worse_among_men_and_records_each_level() -> None:
    labels, cand, champ = _data({"a": 0.6, "b": 0.6}, n=3000)
    men = labels.index[:600]
    cand.loc[men, "a"] = np.random.default_rng(1).random(len(men))  # noise among men on endpoint a
    groups = pd.DataFrame(
        {
            "sex": pd.Categorical(
                np.where(labels.index.isin(men), "male", "female"), categories=["female", "male"]
            )
        },
        index=labels.index,
    )
    plain = decide(labels, cand, champ)
    d = decide(labels, cand, champ, subgroups=groups)
    assert plain.subgroups == () and len(d.subgroups) == 4
    assert [(v.endpoint, v.level, v.verdict) for v in d.subgroups] == [
        ("a", "female", "not shown worse"),
        ("a", "male", "worse"),
        ("b", "female", "not shown worse"),
        ("b", "male", "not shown worse"),
    ]
    assert plain.promote and d.endpoints == plain.endpoints and d.promote is False
    assert (
        "Significantly worse in 1 subgroup level(s)" in d.reasons[-1] and "a in sex = male" in d.reasons[-1]
    )
    back = Decision.from_json(d.to_json())
    assert back.subgroups[1].level == "male" and back.subgroups[1].worse
    assert back.to_dict() == d.to_dict()
