"""The per-endpoint answer head (LP-FT): exact at zero-shot, fitted by the probe, saved with the bundle."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from cohortlm.models import text
from cohortlm.models.llm import head as answer_head
from cohortlm.models.llm import scoring, trunk
from cohortlm.models.llm.qlora import train_qlora
from cohortlm.models.llm.recipe import QLoRAConfig
from cohortlm.models.loaders import load_bundle


def test_a_fresh_head_answers_exactly_like_the_zero_shot_model(tiny_base, frac_spec, split_cohort):
    rows = split_cohort.head(6)
    base = scoring.zero_shot_scorer(tiny_base, frac_spec)
    before = base.score(rows, batch_size=4).to_numpy()
    t = base.tokens
    head = answer_head.install(base.model, len(frac_spec.endpoints), yes_id=t.yes_id, no_id=t.no_id)
    after = base.score(rows, batch_size=4).to_numpy()
    np.testing.assert_allclose(after, before, atol=1e-6)
    # and the head is what answers: moving one endpoint's bias moves that endpoint only
    with torch.no_grad():
        head.bias_e[2] += 3.0
    moved = base.score(rows, batch_size=4).to_numpy()
    assert (moved[:, 2] > after[:, 2]).all()
    np.testing.assert_allclose(np.delete(moved, 2, axis=1), np.delete(after, 2, axis=1), atol=1e-6)


def test_the_head_on_the_question_only_last_block_equals_the_full_forward(tiny_base, frac_spec, split_cohort):
    base = scoring.zero_shot_scorer(tiny_base, frac_spec)
    t = base.tokens
    head = answer_head.install(base.model, len(frac_spec.endpoints), yes_id=t.yes_id, no_id=t.no_id)
    with torch.no_grad():
        head.weight_e.mul_(torch.linspace(0.5, 2.0, len(frac_spec.endpoints))[:, None])
    prefixes = t.encode_patients(base.tokenizer, text.patient_texts(split_cohort.head(5), frac_spec))
    assert trunk.last_block_at_questions(base.model)
    with torch.inference_mode():
        full = scoring.endpoint_logits(base.model, prefixes, t.questions, pad_id=t.pad_id)
        states = trunk.trunk_states(base.model, prefixes, t.questions, split_at=1, pad_id=t.pad_id)
        top = trunk.top_logits(base.model, states, prefixes, t.questions, split_at=1, pad_id=t.pad_id)
    np.testing.assert_allclose(
        scoring.yes_probability(top, t.yes_id, t.no_id),
        scoring.yes_probability(full, t.yes_id, t.no_id),
        atol=1e-5,
    )


def test_probe_fit_separates_a_linear_signal_and_skips_one_class_endpoints():
    rng = np.random.default_rng(0)
    n, dim = 200, 6
    x = rng.normal(size=(n, 2, dim)) + 40.0  # a large common part, as in an LM's hidden state
    signal = x[:, 0, 3] - 40.0 + 0.3 * rng.normal(size=n) > 0
    y = np.stack([signal, np.zeros(n, bool)], axis=1).astype(float)
    y[:5, 0] = np.nan
    w, b, skipped = answer_head.fit_probe(x, y, np.ones_like(y), c=1.0)
    assert skipped == [1]
    assert np.isnan(w[1]).all()
    z = x[:, 0] @ w[0] + b[0]
    keep = ~np.isnan(y[:, 0])
    assert ((z[keep] > 0) == (y[keep, 0] > 0.5)).mean() > 0.9


@pytest.mark.slow
def test_endpoint_head_learns_a_toy_rule_and_travels_in_the_bundle(
    tiny_base, frac_spec, split_cohort, tmp_path, monkeypatch
):
    """Probe + a few steps on the toy rule; the bundle scores the same after a reload; bad files are named."""
    from sklearn.metrics import roc_auc_score
    from test_trunk import _toy_rows  # the test folder is on sys.path (rootdir-relative imports)

    monkeypatch.setenv("COHORTLM_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(1)
    train, _ = _toy_rows(split_cohort[split_cohort["split"] == "train"].head(120), frac_spec, rng)
    held_out, y = _toy_rows(split_cohort[split_cohort["split"] != "train"].head(60), frac_spec, rng)
    zero = scoring.zero_shot_scorer(tiny_base, frac_spec, lora_layers=1).score(held_out)
    cfg = QLoRAConfig(
        lora_r=4, lora_alpha=8, lora_dropout=0.0, lora_layers=1, learning_rate=1e-3, batch_size=16,
        grad_accum=1, epochs=1.0, checkpoint_every=1000, compute_dtype="fp32", head="endpoint", head_c=1.0,
        class_weight="balanced",
    )  # fmt: skip
    out = train_qlora(train, frac_spec, cfg, out_dir=tmp_path / "b", base_model=tiny_base, progress=False)
    assert (out / answer_head.HEAD_FILE).is_file()
    meta = json.loads((out / "bundle.json").read_text())
    assert meta["training"]["head"] == "endpoint"
    # endpoints that share a source column end up one-class in the toy rows: they keep the zero-shot answer
    labels = frac_spec.labels(train)
    one_class = [e for e in frac_spec.endpoint_names if labels[e].dropna().nunique() < 2]
    assert meta["training"]["probe"]["skipped_endpoints"] == one_class
    learnt = [e for e in frac_spec.endpoint_names if e not in one_class]
    assert learnt
    tuned = load_bundle(out, spec=frac_spec).predict_proba(held_out)
    auc_zero = np.mean([roc_auc_score(y, zero[e]) for e in learnt])
    auc_tuned = np.mean([roc_auc_score(y, tuned[e]) for e in learnt])
    # a random tiny model: the probe reads "sex: male" off the last hidden state in one fit
    assert auc_tuned > 0.85 and auc_tuned > auc_zero + 0.25, (auc_zero, auc_tuned)
    # balanced weights, then the prior correction: probabilities on the prevalence's scale again
    assert len(meta["training"]["probe"]["prior_correction"]) == len(frac_spec.endpoint_names)
    for e in learnt:
        assert abs(tuned[e].mean() - labels[e].mean()) < 0.15, (e, tuned[e].mean(), labels[e].mean())
    again = load_bundle(out, spec=frac_spec).predict_proba(held_out)
    np.testing.assert_allclose(again.to_numpy(), tuned.to_numpy(), atol=1e-6)
    # a head file for another study is refused with the file named
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(out / answer_head.HEAD_FILE))
    save_file(
        {"weight": tensors["weight"][:2], "bias": tensors["bias"][:2]},
        str(out / answer_head.HEAD_FILE),
        metadata={"yes_id": "0", "no_id": "1", "vocab_size": "10"},
    )
    with pytest.raises(Exception, match=r"answer_head\.safetensors"):
        load_bundle(out, spec=frac_spec).predict_proba(held_out)


def test_endpoint_head_needs_the_yes_no_loss():
    with pytest.raises(ValueError, match="answer_loss"):
        QLoRAConfig(head="endpoint", answer_loss="vocab")
    with pytest.raises(ValueError, match="head"):
        QLoRAConfig(head="linear")


def test_prior_offsets_undo_class_balanced_training():
    """A balanced-weight fit of a constant model lands at logit 0; the offset brings it to the prevalence."""
    y = np.array([[1, 1], [0, 0], [0, np.nan], [0, 1], [0, 0]], dtype=float)
    offsets = answer_head.prior_offsets(y)
    assert offsets[0] == pytest.approx(np.log(1 / 4))
    assert offsets[1] == pytest.approx(np.log(2 / 2))
    assert answer_head.prior_offsets(np.zeros((3, 1)))[0] == 0.0
    prevalence = 1.0 / (1.0 + np.exp(-offsets[0]))
    assert prevalence == pytest.approx(0.2)
