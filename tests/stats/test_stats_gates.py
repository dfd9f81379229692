"""GatePolicy validation and the gate's decisions, per DESIGN.md's Gates."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cohortlm.errors import SpecError
from cohortlm.gates import Decision, GatePolicy, decide, default_policy_path, load_policy
from cohortlm.stats import delong_test, holm


def test_default_policy_file_matches_the_design() -> None:
    p = load_policy()
    assert p == GatePolicy()
    assert (p.alpha, p.margin, p.min_superior, p.adjustment, p.conf_level) == (0.05, 0.02, 1, "holm", 0.95)
    assert default_policy_path().is_file()


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"alpha": 1.5}, "'alpha' must be in"),
        ({"margin": -0.1}, "'margin' must be ≥ 0"),
        ({"min_superior": 1.5}, "'min_superior' must be a whole number"),
        ({"adjustment": "bonferroni"}, "'adjustment' must be one of holm, bh, none"),
        ({"conf_level": "high"}, "'conf_level' must be a finite number"),
        ({"alfa": 0.05}, "unknown policy key"),
    ],
)
def test_policy_errors_name_the_key(data: dict, match: str) -> None:
    with pytest.raises(SpecError, match=match):
        GatePolicy.from_dict(data, source="p.yaml")


def test_policy_from_yaml(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("policy:\n  alpha: 0.01\n  min_superior: 2\n")
    p = GatePolicy.from_yaml(path)
    assert p.alpha == 0.01 and p.min_superior == 2 and p.margin == 0.02
    path.write_text("alpha: [\n")
    with pytest.raises(SpecError, match="not valid YAML"):
        GatePolicy.from_yaml(path)
    with pytest.raises(SpecError, match="not found"):
        GatePolicy.from_yaml(tmp_path / "missing.yaml")


def _data(
    gains: dict[str, float], n: int = 1500, seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Labels and two models' probabilities; gain > 0 makes the candidate better on that endpoint."""
    rng = np.random.default_rng(seed)
    ids = pd.Index(range(n), name="patient_id")
    labels, cand, champ = {}, {}, {}
    for ep, gain in gains.items():
        y = rng.integers(0, 2, n)
        shared = rng.normal(size=n)
        champ_logit = 1.0 * y + shared + rng.normal(scale=0.7, size=n)
        cand_logit = (1.0 + gain) * y + shared + rng.normal(scale=0.7, size=n)
        labels[ep] = y.astype(float)
        champ[ep] = 1 / (1 + np.exp(-(champ_logit - 0.5)))
        cand[ep] = 1 / (1 + np.exp(-(cand_logit - 0.5 - gain / 2)))
    return pd.DataFrame(labels, ids), pd.DataFrame(cand, ids), pd.DataFrame(champ, ids)


def test_better_everywhere_is_promoted_and_numbers_match_delong() -> None:
    labels, cand, champ = _data({"a": 0.8, "b": 0.8, "c": 0.4})
    d = decide(
        labels, cand, champ, policy=GatePolicy(brier_margin=1.0), candidate_name="llm", champion_name="lr"
    )
    assert d.promote, d.summary()
    assert d.n_superior == 3
    raw = [delong_test(labels[e], cand[e], champ[e], alternative="greater").p_value for e in "abc"]
    np.testing.assert_allclose([v.p_better for v in d.endpoints], raw)
    np.testing.assert_allclose([v.p_better_adjusted for v in d.endpoints], holm(raw))
    v = d.endpoints[0]
    r = delong_test(labels["a"], cand["a"], champ["a"])
    assert (v.auc_candidate, v.auc_champion, v.delta, v.z) == pytest.approx((r.auc_a, r.auc_b, r.delta, r.z))
    assert v.ci_delta == pytest.approx(r.ci_delta)
    assert d.reasons[0].startswith("Promote llm over lr")


def test_significantly_worse_endpoint_blocks() -> None:
    labels, cand, champ = _data({"a": 0.8, "b": -0.8})
    d = decide(labels, cand, champ, policy=GatePolicy(brier_margin=1.0))
    assert not d.promote
    b = d.endpoints[1]
    assert b.worse and b.verdict == "worse" and not b.non_inferior
    assert any("significantly worse (b;" in r for r in d.reasons)


def test_no_superior_endpoint_blocks_with_min_superior_one() -> None:
    labels, cand, champ = _data({"a": 0.0, "b": 0.0}, n=4000)
    d = decide(labels, cand, champ, policy=GatePolicy(brier_margin=1.0, margin=0.05))
    assert d.n_superior == 0 and not d.promote
    assert any("1 required (not met)" in r for r in d.reasons)
    # With min_superior 0 the same data is promoted when non-inferior everywhere.
    d0 = decide(labels, cand, champ, policy=GatePolicy(brier_margin=1.0, margin=0.05, min_superior=0))
    assert d0.promote == all(v.non_inferior for v in d0.endpoints) and not any(v.worse for v in d0.endpoints)


def test_non_inferiority_uses_the_margin_on_the_lower_bound() -> None:
    labels, cand, champ = _data({"a": 0.8, "b": 0.0}, n=300)
    lb = decide(labels, cand, champ).endpoints[1].ci_delta[0]
    wide = decide(labels, cand, champ, policy=GatePolicy(margin=abs(lb) + 0.01)).endpoints[1]
    narrow = decide(labels, cand, champ, policy=GatePolicy(margin=max(abs(lb) - 0.01, 0))).endpoints[1]
    assert wide.non_inferior and not narrow.non_inferior


def test_calibration_check_blocks_a_badly_calibrated_candidate() -> None:
    labels, cand, champ = _data({"a": 0.8})
    squashed = cand * 0.1  # same ranking, so the same AUC, but miscalibrated
    d = decide(labels, squashed, champ)
    assert d.endpoints[0].superior and not d.endpoints[0].calibration_ok and not d.promote
    assert any("Calibration fails" in r for r in d.reasons)


def test_undefined_endpoint_blocks_and_says_why() -> None:
    labels, cand, champ = _data({"a": 0.8, "b": 0.8})
    labels["b"] = 0.0
    d = decide(labels, cand, champ, policy=GatePolicy(brier_margin=1.0))
    assert d.endpoints[1].verdict == "undefined" and not d.promote
    assert any("cannot be done" in r for r in d.reasons)
    json.loads(d.to_json())  # NaNs are written as null


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
    data = json.loads(text)
    for key in ("policy", "endpoints", "promote", "reasons", "n_superior"):
        assert key in data
    for key in (
        "n",
        "auc_candidate",
        "ci_auc_candidate",
        "delta",
        "ci_delta",
        "z",
        "p_better",
        "p_better_adjusted",
        "p_worse_adjusted",
        "verdict",
        "reasons",
    ):
        assert key in data["endpoints"][0]


def test_decision_with_nan_round_trips() -> None:
    labels, cand, champ = _data({"a": 0.8, "b": 0.8})
    labels["b"] = 1.0
    d = decide(labels, cand, champ)
    back = Decision.from_json(d.to_json())
    assert back.to_json() == d.to_json()
    assert math.isnan(back.endpoints[1].auc_candidate)


def test_malformed_record_is_a_spec_error() -> None:
    with pytest.raises(SpecError, match="not valid JSON"):
        Decision.from_json("{")
    with pytest.raises(SpecError, match="malformed"):
        Decision.from_json('{"candidate": "x"}')
