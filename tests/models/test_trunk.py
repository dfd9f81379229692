"""The frozen trunk computed once: exact against the uncached path, shared through the disk cache."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cohortlm.models import text
from cohortlm.models.llm import scoring, trunk
from cohortlm.models.llm.qlora import class_weights, train_qlora
from cohortlm.models.llm.recipe import QLoRAConfig


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


def plain_more(tiny_base, spec, rows):
    return scoring.zero_shot_scorer(tiny_base, spec).score(rows, batch_size=5).to_numpy()


def test_cached_scorer_equals_uncached_scorer(tiny_base, frac_spec, split_cohort, tmp_path, monkeypatch):
    monkeypatch.setenv("COHORTLM_CACHE", str(tmp_path))
    rows = split_cohort.head(12)
    plain = scoring.zero_shot_scorer(tiny_base, frac_spec).score(rows, batch_size=5)
    cached_scorer = scoring.zero_shot_scorer(tiny_base, frac_spec, lora_layers=1)
    assert cached_scorer.split_at == 1
    first = cached_scorer.score(rows, batch_size=4)
    np.testing.assert_allclose(first.to_numpy(), plain.to_numpy(), atol=1e-5)
    entries = list((tmp_path / "trunk").glob("*/*.safetensors"))
    assert len(entries) == len(rows)  # one entry per patient
    # a second scorer finds the states on disk (for the patients it shares) and scores the same
    more = split_cohort.head(15)
    again = scoring.zero_shot_scorer(tiny_base, frac_spec, lora_layers=1).score(more, batch_size=7)
    np.testing.assert_allclose(again.to_numpy()[: len(rows)], first.to_numpy(), atol=1e-6)
    np.testing.assert_allclose(again.to_numpy(), plain_more(tiny_base, frac_spec, more), atol=1e-5)
    assert len(list((tmp_path / "trunk").glob("*/*.safetensors"))) == len(more)


@pytest.mark.parametrize(
    ("quantization", "atol"),
    # NF4: bitsandbytes computes a 4-bit layer with one kernel under no_grad (the cached trunk,
    # and every scorer) and another when its input needs a gradient (the uncached training
    # forward); the two round differently, and 4 steps at lr 1e-2 carry that to ~2e-4 in scores.
    # Scoring itself stays exact (test_smoke_recipe_trains_and_scores_nf4_on_cpu, 1e-5).
    [("none", 1e-5), ("nf4", 1e-3)],
)
def test_cached_training_equals_uncached_training(
    quantization, atol, tiny_base, frac_spec, split_cohort, tmp_path, monkeypatch
):
    """Same seed, same data: the adapters trained on cached states score like those trained without."""
    monkeypatch.setenv("COHORTLM_CACHE", str(tmp_path / "cache"))
    train = split_cohort[split_cohort["split"] == "train"]
    cfg = QLoRAConfig(
        lora_r=4, lora_alpha=8, lora_dropout=0.0, lora_layers=1, learning_rate=1e-2, batch_size=8,
        grad_accum=1, max_train_rows=16, max_steps=4, checkpoint_every=100, compute_dtype="fp32",
        quantization=quantization,
    )  # fmt: skip
    rows = split_cohort[split_cohort["split"] == "test"].head(10)
    scores = {}
    for cached in (True, False):
        out = train_qlora(
            train, frac_spec, cfg.with_overrides(cache_trunk=cached), out_dir=tmp_path / str(cached),
            base_model=tiny_base, progress=False,
        )  # fmt: skip
        from cohortlm.models.loaders import load_bundle

        predictor = load_bundle(out, spec=frac_spec)
        scores[cached] = predictor.predict_proba(rows).to_numpy()
    np.testing.assert_allclose(scores[True], scores[False], atol=atol)


def test_compact_prompt_cached_scores_equal_uncached(
    tiny_base, frac_spec, split_cohort, tmp_path, monkeypatch
):
    """Version 2 (compact text): the cached trunk is exact against the uncached model of the same text."""
    monkeypatch.setenv("COHORTLM_CACHE", str(tmp_path))
    rows = split_cohort.head(12)
    plain = scoring.zero_shot_scorer(tiny_base, frac_spec, prompt_version="2").score(rows, batch_size=5)
    cached = scoring.zero_shot_scorer(tiny_base, frac_spec, lora_layers=1, prompt_version="2")
    np.testing.assert_allclose(cached.score(rows, batch_size=4).to_numpy(), plain.to_numpy(), atol=1e-5)
    old = scoring.zero_shot_scorer(tiny_base, frac_spec, prompt_version="1").score(rows, batch_size=5)
    assert not np.allclose(old.to_numpy(), plain.to_numpy())  # the version reaches the model
    v1 = sum(len(p) for p in _prefixes(cached, rows, frac_spec))
    v2 = sum(len(p) for p in cached.tokens.encode_patients(
        cached.tokenizer, text.patient_texts(rows, frac_spec, version="2")
    ))  # fmt: skip
    assert v2 < v1


def test_a_bundle_scores_with_the_prompt_version_it_was_trained_with(
    tiny_base, frac_spec, split_cohort, tmp_path, monkeypatch
):
    from cohortlm.models.loaders import load_bundle

    monkeypatch.setenv("COHORTLM_CACHE", str(tmp_path / "cache"))
    train = split_cohort[split_cohort["split"] == "train"]
    cfg = QLoRAConfig(
        lora_r=4, lora_alpha=8, lora_dropout=0.0, lora_layers=1, learning_rate=1e-2, batch_size=8,
        grad_accum=1, max_train_rows=16, max_steps=2, checkpoint_every=100, compute_dtype="fp32",
        prompt_version="2",
    )  # fmt: skip
    out = train_qlora(train, frac_spec, cfg, out_dir=tmp_path / "b", base_model=tiny_base, progress=False)
    predictor = load_bundle(out, spec=frac_spec)
    assert predictor.scorer.prompt_version == "2"
    assert (
        predictor.scorer.tokens.questions
        == scoring.PromptTokens.build(predictor.scorer.tokenizer, frac_spec, prompt_version="2").questions
    )


def test_a_base_cut_to_its_first_blocks_everywhere(tiny_base, frac_spec, split_cohort, tmp_path, monkeypatch):
    """base_blocks: the fine-tune, its bundle's scorer and the zero-shot scorer all read after block N."""
    from cohortlm.errors import UsageError
    from cohortlm.models.llm.loading import keep_blocks
    from cohortlm.models.loaders import load_bundle

    monkeypatch.setenv("COHORTLM_CACHE", str(tmp_path / "cache"))
    zero = scoring.zero_shot_scorer(tiny_base, frac_spec, blocks=1)
    assert trunk.num_layers(zero.model) == 1 and zero.model.config.num_hidden_layers == 1
    full = scoring.zero_shot_scorer(tiny_base, frac_spec)
    rows = split_cohort.head(6)
    prefixes = _prefixes(full, rows, frac_spec)
    t = full.tokens
    with torch.inference_mode():
        # the cut model's logits are the full model's first block, then its final norm and head
        with trunk._cut(full.model, 0, 1, keep_norm=True) as cut:
            expected = scoring.endpoint_logits(cut, prefixes, t.questions, pad_id=t.pad_id)
        got = scoring.endpoint_logits(zero.model, prefixes, t.questions, pad_id=t.pad_id)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    with pytest.raises(UsageError, match="base_blocks must be between 1 and 2"):
        keep_blocks(full.model, 3)
    with pytest.raises(ValueError, match="base_blocks"):
        QLoRAConfig(base_blocks=0)
    train = split_cohort[split_cohort["split"] == "train"]
    cfg = QLoRAConfig(
        lora_r=4, lora_alpha=8, lora_dropout=0.0, learning_rate=1e-2, batch_size=8, grad_accum=1,
        max_train_rows=16, max_steps=2, checkpoint_every=100, compute_dtype="fp32", base_blocks=1,
        quantization="none",
    )  # fmt: skip
    out = train_qlora(train, frac_spec, cfg, out_dir=tmp_path / "b", base_model=tiny_base, progress=False)
    predictor = load_bundle(out, spec=frac_spec)
    assert trunk.num_layers(predictor.scorer.model) == 1
    assert predictor.predict_proba(rows).shape == (len(rows), len(frac_spec.endpoints))


def test_trunk_cache_survives_a_torn_file_and_stays_in_budget(tmp_path):
    cache = trunk.TrunkCache(tmp_path, budget_bytes=3000)
    states = torch.randn(5, 4)
    cache.save("a1", states)
    torch.testing.assert_close(cache.load("a1"), states)
    cache.path("b2").parent.mkdir(parents=True, exist_ok=True)
    cache.path("b2").write_bytes(b"not a safetensors file")
    assert cache.load("b2") is None
    for key in ("c3", "d4", "e5", "f6", "g7"):
        cache.save(key, torch.randn(20, 4))
    cache.trim()
    total = sum(p.stat().st_size for p in tmp_path.glob("*/*.safetensors"))
    assert 0 < total <= 3000
    assert cache.load("g7") is not None  # the newest entry stays


def test_trunk_cache_refuses_flipped_swapped_and_old_entries(tmp_path):
    cache = trunk.TrunkCache(tmp_path)
    a, b = torch.randn(6, 4), torch.randn(6, 4)
    cache.save("aa1", a)
    cache.save("bb2", b)
    # one bit flipped in the tensor's bytes (the last byte of the file is data)
    raw = bytearray(cache.path("aa1").read_bytes())
    raw[-1] ^= 0x01
    cache.path("aa1").write_bytes(bytes(raw))
    assert cache.load("aa1") is None
    assert cache.rejected == {"digest": 1}
    assert not cache.path("aa1").exists()  # the bad entry is gone, so the recomputed one replaces it
    # two entries swapped: each file is intact, but holds the other patient's states
    cache.save("aa1", a)
    pa, pb = cache.path("aa1"), cache.path("bb2")
    da, db = pa.read_bytes(), pb.read_bytes()
    pa.write_bytes(db)
    pb.write_bytes(da)
    assert cache.load("aa1") is None and cache.load("bb2") is None
    assert cache.rejected == {"digest": 1, "key": 2}
    # an entry without a digest (the format before verification) is not trusted either
    from safetensors.torch import save_file

    save_file({"states": a}, str(cache.path("aa1")))
    assert cache.load("aa1") is None
    assert cache.rejected["format"] == 1
    cache.save("aa1", a)
    torch.testing.assert_close(cache.load("aa1"), a)
    assert cache.rejected_total == 4


def _corrupt(entries, how, rng):
    if how == "swap":
        first, second = entries[0].read_bytes(), entries[1].read_bytes()
        entries[0].write_bytes(second)
        entries[1].write_bytes(first)
        return
    for entry in entries:
        raw = bytearray(entry.read_bytes())
        if how == "bit_in_data":
            # an exponent bit of one of the last floats (little-endian: every 4th byte from the end)
            raw[len(raw) - 1 - 4 * int(rng.integers(0, 64))] ^= 0x40
        else:  # any bit anywhere, header included
            raw[int(rng.integers(0, len(raw)))] ^= 1 << int(rng.integers(0, 8))
        entry.write_bytes(bytes(raw))


@pytest.mark.parametrize("how", ["bit_in_data", "bit_anywhere", "swap"])
def test_scores_after_cache_corruption_equal_clean_scores(
    how, tiny_base, frac_spec, split_cohort, tmp_path, monkeypatch, caplog
):
    monkeypatch.setenv("COHORTLM_CACHE", str(tmp_path))
    rows = split_cohort.head(10)
    clean = scoring.zero_shot_scorer(tiny_base, frac_spec, lora_layers=1).score(rows, batch_size=4)
    entries = sorted((tmp_path / "trunk").glob("*/*.safetensors"))
    assert len(entries) == len(rows)
    _corrupt(entries, how, np.random.default_rng(7))
    with caplog.at_level("WARNING", logger="cohortlm.models.llm.trunk"):
        after = scoring.zero_shot_scorer(tiny_base, frac_spec, lora_layers=1).score(rows, batch_size=4)
    # equal up to float rounding (~1e-9: a recomputed entry may run in a batch of other
    # patients); an entry used after corruption moved scores by up to 0.125
    np.testing.assert_allclose(after.to_numpy(), clean.to_numpy(), rtol=0, atol=1e-7)
    assert "failed verification and are recomputed" in caplog.text
    # the recomputed entries were written back and verify again
    cache = trunk.TrunkCache(tmp_path / "trunk")
    again = scoring.zero_shot_scorer(tiny_base, frac_spec, lora_layers=1)
    monkeypatch.setattr(trunk.TrunkCache, "default", classmethod(lambda cls: cache))
    np.testing.assert_allclose(
        again.score(rows, batch_size=4).to_numpy(), clean.to_numpy(), rtol=0, atol=1e-7
    )
    assert cache.rejected_total == 0


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


def _toy_rows(rows, spec, rng):
    """Rows whose every endpoint is a case exactly when the patient is male.

    The outcome is written into each endpoint's source column, so the rule is in
    the patient text (``sex: male``, a word no other feature uses) and nowhere else.
    """
    out = rows.copy()
    signal = rng.random(len(out)) < 0.4
    out["sex"] = np.where(signal, "male", "female")
    for ep in spec.endpoints:
        t = ep.threshold
        case, control = (t + 1.0, t - 1.0) if ep.operator in (">", ">=") else (t - 1.0, t + 1.0)
        assert ep.label(np.array([case, control])).tolist() == [1.0, 0.0]
        out[ep.column] = np.where(signal, case, control)
    return out, signal.astype(int)


@pytest.mark.slow
def test_a_few_fine_tuning_steps_learn_a_toy_rule(tiny_base, frac_spec, split_cohort, tmp_path, monkeypatch):
    """LoRA on the top block over the cached trunk learns what the text says: held-out AUC rises."""
    from sklearn.metrics import roc_auc_score

    from cohortlm.models.loaders import load_bundle

    monkeypatch.setenv("COHORTLM_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    train, _ = _toy_rows(split_cohort[split_cohort["split"] == "train"].head(300), frac_spec, rng)
    held_out, y = _toy_rows(split_cohort[split_cohort["split"] != "train"].head(80), frac_spec, rng)
    zero = scoring.zero_shot_scorer(tiny_base, frac_spec, lora_layers=1).score(held_out)
    cfg = QLoRAConfig(
        lora_r=8, lora_alpha=16, lora_dropout=0.0, lora_layers=1, learning_rate=3e-3, warmup_ratio=0.0,
        batch_size=16, grad_accum=1, epochs=6.0, checkpoint_every=1000, compute_dtype="fp32",
    )  # fmt: skip
    out = train_qlora(train, frac_spec, cfg, out_dir=tmp_path / "b", base_model=tiny_base, progress=False)
    tuned = load_bundle(out, spec=frac_spec).predict_proba(held_out)
    auc_zero = np.mean([roc_auc_score(y, zero[e]) for e in frac_spec.endpoint_names])
    auc_tuned = np.mean([roc_auc_score(y, tuned[e]) for e in frac_spec.endpoint_names])
    # the tiny random model is a slow learner: 6 epochs on ~300 patients take it from ~0.47 to ~0.66
    assert auc_tuned > 0.6, (auc_zero, auc_tuned)
    assert auc_tuned > auc_zero + 0.15, (auc_zero, auc_tuned)
