"""The frozen trunk computed once: exact against the uncached path, shared through the disk cache."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cohortlm import text
from cohortlm.llm import scoring, trunk
from cohortlm.llm.qlora import QLoRAConfig, class_weights, train_qlora


@pytest.fixture(scope="module")
def scorer(tiny_base, frac_spec):
    return scoring.zero_shot_scorer(tiny_base, frac_spec)


def _prefixes(scorer, rows, spec):
    return scorer.tokens.encode_patients(scorer.tokenizer, text.patient_texts(rows, spec))


def test_top_blocks_on_cached_trunk_equal_the_full_forward(scorer, split_cohort, frac_spec):
    rows = split_cohort.head(7).copy()
    rows.loc[rows.index[0], "bmi"] = np.nan  # a shorter prefix: real left padding in the batch
    prefixes = _prefixes(scorer, rows, frac_spec)
    assert len({len(p) for p in prefixes}) > 1
    t = scorer.tokens
    with torch.inference_mode():
        full = scoring.endpoint_logits(scorer.model, prefixes, t.questions, pad_id=t.pad_id)
        # states computed in other batches than they are used in: batching must not matter
        states = trunk.trunk_states(scorer.model, prefixes[:3], t.questions, split_at=1, pad_id=t.pad_id)
        states += trunk.trunk_states(scorer.model, prefixes[3:], t.questions, split_at=1, pad_id=t.pad_id)
        top = trunk.top_logits(scorer.model, states, prefixes, t.questions, split_at=1, pad_id=t.pad_id)
    np.testing.assert_allclose(
        scoring.yes_probability(top, t.yes_id, t.no_id),
        scoring.yes_probability(full, t.yes_id, t.no_id),
        atol=1e-5,
    )
    assert float((top - full).abs().max()) < 1e-4
    # the model is whole again afterwards
    assert trunk.num_layers(scorer.model) == 2


def test_cached_scorer_equals_uncached_scorer(tiny_base, frac_spec, split_cohort, tmp_path, monkeypatch):
    monkeypatch.setenv("COHORTLM_CACHE", str(tmp_path))
    rows = split_cohort.head(12)
    plain = scoring.zero_shot_scorer(tiny_base, frac_spec).score(rows, batch_size=5)
    cached_scorer = scoring.zero_shot_scorer(tiny_base, frac_spec, lora_layers=1)
    assert cached_scorer.split_at == 1
    first = cached_scorer.score(rows, batch_size=4)
    np.testing.assert_allclose(first.to_numpy(), plain.to_numpy(), atol=1e-5)
    entries = list((tmp_path / "trunk").glob("*.safetensors"))
    assert len(entries) == 1
    # a second scorer finds the states on disk and gives the same scores
    again = scoring.zero_shot_scorer(tiny_base, frac_spec, lora_layers=1).score(rows, batch_size=7)
    np.testing.assert_allclose(again.to_numpy(), first.to_numpy(), atol=1e-6)


def test_cached_training_equals_uncached_training(tiny_base, frac_spec, split_cohort, tmp_path, monkeypatch):
    """Same seed, same data: the adapters trained on cached states score like those trained without."""
    monkeypatch.setenv("COHORTLM_CACHE", str(tmp_path / "cache"))
    train = split_cohort[split_cohort["split"] == "train"]
    cfg = QLoRAConfig(
        lora_r=4, lora_alpha=8, lora_dropout=0.0, lora_layers=1, learning_rate=1e-2, batch_size=8,
        grad_accum=1, max_train_rows=16, max_steps=4, checkpoint_every=100, compute_dtype="fp32",
    )  # fmt: skip
    rows = split_cohort[split_cohort["split"] == "test"].head(10)
    scores = {}
    for cached in (True, False):
        out = train_qlora(
            train, frac_spec, cfg.with_overrides(cache_trunk=cached), out_dir=tmp_path / str(cached),
            base_model=tiny_base, progress=False,
        )  # fmt: skip
        from cohortlm.bundle import load_bundle

        predictor = load_bundle(out, spec=frac_spec)
        scores[cached] = predictor.predict_proba(rows).to_numpy()
    np.testing.assert_allclose(scores[True], scores[False], atol=1e-5)


def test_trunk_cache_survives_a_torn_file_and_stays_in_budget(tmp_path):
    cache = trunk.TrunkCache(tmp_path, budget_bytes=3000)
    states = [torch.randn(5, 4), torch.randn(3, 4)]
    cache.save("a", states)
    got = cache.load("a")
    assert got is not None and [s.shape for s in got] == [(5, 4), (3, 4)]
    torch.testing.assert_close(got[1], states[1])
    cache.path("b").write_bytes(b"not a safetensors file")
    assert cache.load("b") is None
    for key in "cdefgh":
        cache.save(key, [torch.randn(20, 4)])
    total = sum(p.stat().st_size for p in tmp_path.glob("*.safetensors"))
    assert total <= 3000


def test_uncuttable_architectures_run_uncached():
    class Other(torch.nn.Module):
        pass

    assert not trunk.can_split(Other())
    assert trunk.split_point(Other(), 4) is None


def test_balanced_class_weights():
    y = np.array([[1, 0], [0, np.nan], [0, 1], [0, 0]], dtype=float)
    w = class_weights(y, "balanced")
    assert w[1, 1] == 0.0  # missing label
    # endpoint 0: one case among four, so the case weighs three times a control; mean weight 1
    assert w[0, 0] == pytest.approx(3 * w[1, 0])
    assert w[:, 0].mean() == pytest.approx(1.0)
    np.testing.assert_array_equal(class_weights(y, "none"), ~np.isnan(y))
