"""Whether the data is synthetic, from the raw data through the steps to the outcome and model card.

The generator's provenance record rides in the cohort and split tables' Parquet metadata;
the gate step reads it, so ``outcome.json``, the TRIPOD+AI checklist and a promoted
model's card say plainly when the figures come from the synthetic cohort.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from steplib import fake_scores, lenient_policy_text

from cohortlm.cohort.io import read_provenance
from cohortlm.cohort.synthetic import generate_cohort
from cohortlm.contracts import MODEL_CARD_MD, OUTCOME_FILE
from cohortlm.evaluation.tripod import TRIPOD_FILE
from cohortlm.models.model_card import write_model_card
from cohortlm.run import steps
from cohortlm.run.gate_inputs import gate_inputs

#: sizes for a few hundred patients (the RA spec's own give validation a handful)
SPLIT = {"train": 0.6, "validation": 0.2, "test": 0.2}


def _gate(root: Path, spec, split: Path) -> tuple[dict, str]:
    """Baseline, fake LLM scores and the gate on ``split``; the outcome's JSON and the card's Markdown."""
    steps.train_baseline_step(str(split), spec, str(root / "bl"), str(root / "bl.parquet"))
    fake_scores(split, spec, root / "tiny.parquet", quality="noise", seed=1)
    fake_scores(split, spec, root / "ft.parquet", quality="good", seed=2)
    (root / "policy.yaml").write_text(lenient_policy_text())
    scores = {
        "baseline": str(root / "bl.parquet"),
        "tiny": str(root / "tiny.parquet"),
        "tiny+qlora": str(root / "ft.parquet"),
    }
    run = root / "run"
    outcome = steps.evaluate_step(str(split), spec, scores, str(run), policy_path=str(root / "policy.yaml"))
    # The card as promotion writes it, into a copy of a bundle (whichever model the gate chose).
    bundle = steps.copy_tree(root / "bl", root / "card")
    write_model_card(bundle, outcome.to_dict())
    return json.loads((run / OUTCOME_FILE).read_text()), (bundle / MODEL_CARD_MD).read_text()


@pytest.fixture(scope="module")
def synthetic_run(tmp_path_factory, ra_spec) -> tuple[dict, dict, str, Path]:
    """The generator's raw folder through featurise, split and the gate (RA study, 300 patients)."""
    root = tmp_path_factory.mktemp("synthetic")
    generate_cohort(n=300, seed=1).write(root / "raw")
    info = steps.featurise_step(str(root / "raw"), ra_spec, str(root / "cohort.parquet"))
    steps.split_step(str(root / "cohort.parquet"), ra_spec, str(root / "split.parquet"), split_override=SPLIT)
    outcome, card = _gate(root, ra_spec, root / "split.parquet")
    return info, outcome, card, root


def test_the_synthetic_cohort_is_said_to_be_synthetic(synthetic_run):
    info, outcome, card, root = synthetic_run
    assert info["synthetic"] is True
    recorded = read_provenance(root / "split.parquet")
    assert recorded is not None and recorded["synthetic"] is True and recorded["n"] == 300
    assert outcome["cohort"]["synthetic"] is True
    assert "Synthetic data.** This model was trained and evaluated on the synthetic cohort" in card
    assert "Synthetic data: yes." in card
    assert "synthetic cohort" in card.split("## Intended use")[0]  # above everything else
    tripod = (root / "run" / "report" / TRIPOD_FILE).read_text()
    assert "synthetic cohort" in tripod and "does not record whether" not in tripod


def test_a_users_flat_file_is_real_data(study_run, tmp_path):
    assert study_run.info["featurise"]["synthetic"] is False
    assert read_provenance(study_run.split) == {"synthetic": False}
    outcome, card = _gate(tmp_path, study_run.spec, study_run.split)
    assert outcome["cohort"]["synthetic"] is False
    assert "Synthetic data: no." in card and "synthetic cohort" not in card
    assert "the data was supplied by the user" in (tmp_path / "run" / "report" / TRIPOD_FILE).read_text()


def test_a_split_table_written_without_provenance_is_not_recorded(study_run, tmp_path):
    """Tables from before the record existed say nothing: unknown, not real."""
    old = tmp_path / "split.parquet"
    pd.read_parquet(study_run.split).to_parquet(old, index=False)
    scores = study_run.scores("good")
    assert gate_inputs(str(old), study_run.spec, scores).cohort.synthetic is None
    assert gate_inputs(str(study_run.split), study_run.spec, scores).cohort.synthetic is False


@pytest.mark.slow
def test_the_feature_store_step_keeps_the_provenance(synthetic_run, ra_spec, tmp_path):
    from featurestore.pipeline import training_table_step

    *_, root = synthetic_run
    training_table_step(str(root / "cohort.parquet"), ra_spec, str(tmp_path / "repo"), str(tmp_path / "t"))
    assert read_provenance(tmp_path / "t") == read_provenance(root / "cohort.parquet")
    steps.split_step(str(tmp_path / "t"), ra_spec, str(tmp_path / "split"), split_override=SPLIT)
    assert read_provenance(tmp_path / "split") == read_provenance(root / "raw")
