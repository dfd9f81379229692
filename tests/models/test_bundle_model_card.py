"""The model card in a promoted bundle: its content, its signature, and no patient value in it."""

from __future__ import annotations

import json
import shutil

import pytest
from card_testlib import PLANTED, PLANTED_ID, Promoted, promote_planted_study

from cohortlm.models.bundle import BundleIntegrityError, verify_bundle_signature
from cohortlm.models.model_card import (
    CARD_SCHEMA_VERSION,
    MODEL_CARD_JSON,
    MODEL_CARD_MD,
    build_model_card,
    decision_curve_summary,
    model_card_markdown,
    read_model_card,
)
from cohortlm.store.registry import MANIFEST_FILE, verify_manifest


@pytest.fixture(scope="module")
def promoted(tmp_path_factory) -> Promoted:
    """The planted study promoted and signed (tests/card_testlib.py)."""
    return promote_planted_study(tmp_path_factory.mktemp("card"))


def test_the_promoted_bundle_carries_the_card_under_its_manifest(promoted):
    card = read_model_card(promoted.bundle)
    assert card is not None and card["schema_version"] == CARD_SCHEMA_VERSION
    assert (promoted.bundle / MODEL_CARD_MD).is_file()
    manifest = json.loads((promoted.bundle / MANIFEST_FILE).read_text())
    assert {MODEL_CARD_JSON, MODEL_CARD_MD} <= set(manifest["files"])
    verify_manifest(promoted.bundle)
    verify_bundle_signature(promoted.bundle, promoted.keys[1])


def test_the_card_says_what_the_run_measured(promoted):
    card = read_model_card(promoted.bundle)
    outcome = promoted.outcome
    meta = json.loads((promoted.bundle / "bundle.json").read_text())
    assert card["model"]["version"] == meta["model_version"] == promoted.bundle.name
    assert card["model"]["name"] == outcome.promoted_model == "baseline"
    assert card["model"]["study_hash"] == meta["study_hash"]
    # No intended_use in the spec: the default names what the study predicts and calls it a decision aid.
    assert "decision aid" in card["intended_use"]["text"]
    assert "a readmission within one year" in card["intended_use"]["text"]
    assert card["intended_use"]["source"].startswith("default")
    sizes = card["training_data"]["patients"]
    assert sizes == dict(outcome.cohort.n) and sum(sizes.values()) == 300
    assert card["training_data"]["period"] == [2015, 2017]
    endpoints = {e["name"]: e for e in card["endpoints"]}
    assert endpoints["readmitted"]["definition"] == "readmissions_1y >= 1"
    test_cases = outcome.cohort.cases["test"]["readmitted"]
    assert endpoints["readmitted"]["prevalence"]["test"] == round(
        test_cases / outcome.cohort.labelled["test"]["readmitted"], 4
    )
    for ep in outcome.endpoints:
        point = outcome.points["baseline"][ep]
        got = card["performance"]["endpoints"][ep]
        assert got["auc"] == pytest.approx(point["auc"])
        # Threshold metrics travel with their intervals (Wilson or bootstrap, Table 1's).
        for metric in ("sensitivity", "specificity", "ppv", "npv"):
            assert got[metric] == pytest.approx(point[metric], nan_ok=True)
            assert f"{metric}_ci_low" in got and f"{metric}_ci_high" in got
        assert (got["auc_ci_low"], got["auc_ci_high"]) == pytest.approx(
            (point["auc_ci_low"], point["auc_ci_high"])
        )
        assert card["serving"]["thresholds"][ep]["threshold"] == pytest.approx(
            outcome.serving_thresholds[ep]["threshold"]
        )
    # The first champion: the baseline was the gate's champion side, so its calibration is the champion's.
    verdicts = {v.endpoint: v for v in outcome.decision.endpoints}
    for ep, cal in card["calibration"].items():
        assert cal["slope"] == pytest.approx(verdicts[ep].slope_champion, nan_ok=True)
    assert card["gate"]["winner"] == outcome.winner == "baseline"
    assert card["gate"]["reasons"] == list(outcome.decision.reasons)
    assert any("Internal validation only" in t for t in card["limitations"])
    text = (promoted.bundle / MODEL_CARD_MD).read_text()
    for heading in (
        "## Intended use",
        "## Training data",
        "## Endpoints",
        "## Performance",
        "## Limitations",
    ):
        assert heading in text
    assert "auc" in text and "sensitivity" in text and "readmissions_1y >= 1" in text


@pytest.mark.parametrize("name", [MODEL_CARD_JSON, MODEL_CARD_MD])
def test_a_tampered_card_is_refused_like_any_file(promoted, tmp_path, name):
    copy = tmp_path / "bundle"
    shutil.copytree(promoted.bundle, copy)
    path = copy / name
    path.write_text(path.read_text().replace("decision aid", "replacement for clinicians"))
    with pytest.raises(BundleIntegrityError):
        verify_manifest(copy)
    with pytest.raises(BundleIntegrityError, match="differ from what was signed"):
        verify_bundle_signature(copy, promoted.keys[1])


def test_no_planted_patient_value_reaches_the_card_or_the_checklist(promoted):
    # The planted patient is in the data the run used (the test would prove nothing otherwise).
    split = (promoted.run.parent / "split.parquet").read_bytes()
    assert PLANTED_ID.encode() in split
    outputs = {
        "model_card.json": (promoted.bundle / MODEL_CARD_JSON).read_text(),
        "model_card.md": (promoted.bundle / MODEL_CARD_MD).read_text(),
        "tripod_ai.md": (promoted.run / "report" / "tripod_ai.md").read_text(),
        "index.html": (promoted.run / "report" / "index.html").read_text(),
        "outcome.json": (promoted.run / "outcome.json").read_text(),
    }
    for name, text in outputs.items():
        for value in PLANTED:
            assert value not in text, f"{name} holds the planted value {value}"


def test_the_card_takes_the_specs_intended_use_and_the_outcomes_extra_evidence(promoted):
    meta = json.loads((promoted.bundle / "bundle.json").read_text())
    meta["study"]["intended_use"] = "Triage of heart-failure follow-up visits by the cardiology nurse team."
    outcome = promoted.outcome.to_dict()
    outcome["calibration"] = [
        {"endpoint": "readmitted", "model": "baseline", "oe_ratio": 1.02, "ici": 0.01},
        {"endpoint": "readmitted", "model": "tiny", "oe_ratio": 3.0, "ici": 0.2},
    ]
    outcome["internal_validation"] = {
        "readmitted": {"n_boot": 200, "auc_apparent": 0.71, "auc_corrected": 0.69}
    }
    point = outcome["points"]["baseline"]["readmitted"]
    point.update({"sensitivity": 0.5, "sensitivity_ci_low": 0.3, "sensitivity_ci_high": 0.7})
    card = build_model_card(meta, outcome)
    assert card["intended_use"]["text"].startswith("Triage of heart-failure")
    assert card["intended_use"]["source"] == "study spec (intended_use)"
    assert card["evidence"]["calibration"] == [outcome["calibration"][0]]  # the promoted model's rows only
    assert card["evidence"]["internal_validation"] == outcome["internal_validation"]
    text = model_card_markdown(card)
    assert "0.500 (0.300 to 0.700)" in text  # an interval column appears in the performance table
    assert "## Calibration on the evaluation split" in text and "1.020" in text
    assert "## Internal validation" in text and "0.690" in text
    # Another model's card does not borrow the regression's internal validation.
    other = {**outcome, "promoted_model": "tiny+qlora"}
    assert "internal_validation" not in build_model_card(meta, other)["evidence"]


def test_the_decision_curve_is_summarised_where_the_model_beats_treating_all_and_none():
    rows = []
    for t in (0.1, 0.2, 0.3, 0.4):
        treat_all = 0.3 - t  # falls with the threshold
        model = {0.1: 0.15, 0.2: 0.12, 0.3: 0.05, 0.4: -0.01}[t]
        rows += [
            {"endpoint": "e", "model": "m", "threshold": t, "net_benefit": model},
            {"endpoint": "e", "model": "other", "threshold": t, "net_benefit": 0.9},
            {"endpoint": "e", "model": "treat_all", "threshold": t, "net_benefit": treat_all},
            {"endpoint": "e", "model": "treat_none", "threshold": t, "net_benefit": 0.0},
        ]
    summary = decision_curve_summary(rows, "m")["e"]
    # gains over max(treat_all, 0): 0.1: -0.05, 0.2: 0.02, 0.3: 0.05, 0.4: -0.01
    assert summary["thresholds"] == [0.1, 0.4]
    assert summary["useful"] == [0.2, 0.3]
    assert summary["max_gain_at"] == 0.3 and summary["max_gain"] == pytest.approx(0.05)


def test_a_spec_may_declare_its_intended_use_without_changing_its_hash():
    from cohortlm.cohort.study import load_study, study_from_dict
    from cohortlm.errors import SpecError

    ra = load_study("ra_iorra")
    assert ra.intended_use is not None and "decision aid" in ra.intended_use
    data = ra.to_dict()
    assert data["intended_use"] == ra.intended_use
    without = {k: v for k, v in data.items() if k != "intended_use"}
    assert study_from_dict(without).spec_hash == ra.spec_hash
    assert study_from_dict(data) == ra
    for bad in (["a", "list"], "  "):
        with pytest.raises(SpecError, match="intended_use"):
            study_from_dict({**data, "intended_use": bad})
