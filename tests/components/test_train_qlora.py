"""The LLM components (``train_qlora``, ``score_zero_shot``, ``score_fine_tuned``) through the gate,
promotion and export, on real kfp.dsl artifacts."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from componentlib import ds, promote_winner, run_gate
from kfp.dsl import Dataset, Metrics, Model
from steplib import fake_scores

from components.export_metrics.component import export_metrics
from components.score_fine_tuned.component import score_fine_tuned
from components.score_zero_shot.component import score_zero_shot
from components.train_qlora.component import train_qlora


@pytest.mark.slow
def test_llm_components_train_score_gate_promote_and_export(chain, tmp_path, gateway):
    """score_zero_shot, train_qlora and score_fine_tuned with the smoke profile's tiny Llama (~20 s);
    then a gate that promotes the fine-tuned bundle, its promotion and the export of its tokens/s."""
    from cohortlm.models.training import TrainingFigures
    from cohortlm.store.registry import champion_version

    zs = Dataset(uri=str(tmp_path / "zs.parquet"))
    score_zero_shot.python_func(
        split_table=chain.split_table, study=chain.study, profile="smoke", base_model="", scores=zs
    )
    assert zs.metadata["model"] == "tiny" and zs.metadata["n_scored"] == 120

    bundle, training = Model(uri=str(tmp_path / "bundle")), Metrics(uri=str(tmp_path / "training"))
    train_qlora.python_func(
        split_table=chain.split_table, study=chain.study, profile="smoke", base_model="",
        checkpoint_dir=str(tmp_path / "ckpt"), use_trainer=False, trainer_namespace="", trainer_gpus=0,
        gpu_node_selector={}, gpu_tolerations=[], gpu_type="", gpu_count=0, bundle=bundle, training=training,
    )  # fmt: skip
    figures = TrainingFigures.from_bundle(bundle.path)
    assert figures.tokens_per_s is not None and figures.tokens_per_s > 0
    assert (
        bundle.metadata["model"] == "tiny+qlora" and bundle.metadata["tokens_per_s"] == figures.tokens_per_s
    )
    assert bundle.metadata["gpu_type"] == "" and bundle.metadata["gpu_count"] == 0
    assert training.metadata["tokens_per_s"] == figures.tokens_per_s
    losses = {k: v for k, v in training.metadata.items() if k.startswith("loss.step_")}
    assert sorted(losses) == [f"loss.step_{i:05d}" for i in range(1, 9)]
    assert list(losses.values()) == pytest.approx(list(figures.losses))
    assert (tmp_path / "ckpt" / "tiny" / "bundle" / "bundle.json").is_file()  # where a retried pod resumes

    ft = Dataset(uri=str(tmp_path / "ft.parquet"))
    score_fine_tuned.python_func(bundle=bundle, split_table=chain.split_table, profile="smoke", scores=ft)
    assert (
        ft.metadata["model"] == "tiny+qlora"
        and ft.metadata["model_version"] == bundle.metadata["model_version"]
    )
    assert len(pd.read_parquet(ft.path)) == 120

    # Scores that track the labels stand in for the tiny model's (which mean nothing), so the gate
    # promotes the fine-tuned bundle.
    good = fake_scores(
        Path(chain.split_table.path), chain.study_spec, tmp_path / "good.parquet", quality="good", seed=2
    )
    gate = run_gate(chain, tmp_path / "gate", fine_tuned=ds(good, model="tiny+qlora"), llm_bundles=[bundle])
    assert gate.verdict == "candidate" and gate.winner.metadata == {
        "model": "tiny+qlora",
        "verdict": "candidate",
    }
    assert gate.outcome.training["tiny+qlora"] == figures
    assert gate.metrics.metadata["promote"] == 1.0

    store = tmp_path / "models"
    version, promoted = promote_winner(gate, store, tmp_path)
    assert version == bundle.metadata["model_version"] == champion_version(store, "hf_readmission")
    assert promoted.metadata["model"] == "tiny+qlora" and promoted.metadata["promote"] is True

    assert (
        export_metrics.python_func(
            decision=gate.decision, pushgateway=gateway.url, run_id="llm-run", job_id=""
        )
        == "pushed"
    )
    push = gateway.only()
    assert push.value("cohortlm_training_tokens_per_second") == pytest.approx(figures.tokens_per_s)
    assert push.value("cohortlm_gate_promoted") == 1
