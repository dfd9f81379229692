"""LLM path with a tiny random Llama built in the test: scoring, (Q)LoRA, checkpoints, bundles."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from cohortlm.errors import SpecError, UsageError
from cohortlm.models import loaders, text
from cohortlm.models.bundle import read_bundle_metadata
from cohortlm.models.llm import scoring
from cohortlm.models.llm.loading import four_bit_available, resolve_base_model
from cohortlm.models.llm.qlora import train_qlora
from cohortlm.models.llm.recipe import QLoRAConfig
from cohortlm.models.loaders import load_bundle

FAST = {"lora_r": 4, "lora_alpha": 8, "lora_dropout": 0.0, "learning_rate": 5e-3, "checkpoint_every": 100}


@pytest.fixture(scope="module")
def scorer(tiny_base, frac_spec):
    return scoring.zero_shot_scorer(tiny_base, frac_spec)


@pytest.fixture(scope="module")
def train_rows(split_cohort):
    return split_cohort[split_cohort["split"] == "train"]


def _prefixes(scorer, rows, spec):
    return scorer.tokens.encode_patients(scorer.tokenizer, text.patient_texts(rows, spec))


def test_shared_prefix_equals_full_recompute(scorer, split_cohort, frac_spec):
    rows = split_cohort.head(6).copy()
    rows.loc[rows.index[0], "bmi"] = np.nan  # different prefix lengths -> real left padding
    prefixes = _prefixes(scorer, rows, frac_spec)
    assert len({len(p) for p in prefixes}) > 1
    t = scorer.tokens
    with torch.inference_mode():
        shared = scoring.endpoint_logits(scorer.model, prefixes, t.questions, pad_id=t.pad_id)
        full = scoring.full_prompt_logits(scorer.model, prefixes, t.questions, pad_id=t.pad_id)
        # and one patient alone, with no padding at all
        alone = scoring.full_prompt_logits(scorer.model, prefixes[:1], t.questions, pad_id=t.pad_id)
    p_shared = scoring.yes_probability(shared, t.yes_id, t.no_id)
    p_full = scoring.yes_probability(full, t.yes_id, t.no_id)
    np.testing.assert_allclose(p_shared, p_full, atol=1e-4)
    np.testing.assert_allclose(p_shared[:1], scoring.yes_probability(alone, t.yes_id, t.no_id), atol=1e-4)
    assert float((shared - full).abs().max()) < 1e-4


def test_scores_table_shape_and_range(scorer, split_cohort, frac_spec):
    rows = split_cohort.head(10)
    probs = scorer.score(rows, batch_size=3)
    assert list(probs.columns) == frac_spec.endpoint_names
    assert probs.index.equals(rows.index)
    assert ((probs.to_numpy() > 0) & (probs.to_numpy() < 1)).all()
    # batching does not change a patient's score
    np.testing.assert_allclose(probs.to_numpy(), scorer.score(rows, batch_size=10).to_numpy(), atol=1e-5)
    table = loaders.score_table(scorer, rows, frac_spec, batch_size=4, progress=False)
    assert list(table.columns) == [frac_spec.id_column, "split", *frac_spec.endpoint_names]
    assert len(table) == len(rows)


def test_answer_tokens_are_distinct(scorer):
    assert scorer.tokens.yes_id != scorer.tokens.no_id


def _loss_curve(train_rows, spec, base, tmp_path, **overrides):
    losses: list[float] = []
    cfg = QLoRAConfig(
        **{
            **FAST,
            "learning_rate": 2e-2,
            "warmup_ratio": 0.0,
            "batch_size": 16,
            "grad_accum": 1,
            "max_train_rows": 16,
            "max_steps": 8,
            **overrides,
        }
    )
    out = train_qlora(
        train_rows, spec, cfg, out_dir=tmp_path / "b", base_model=base, progress=False,
        on_step=lambda step, loss: losses.append(loss),
    )  # fmt: skip
    return losses, out


def test_lora_steps_lower_the_loss(train_rows, frac_spec, tiny_base, tmp_path):
    # 16 patients in one batch: every step sees the same examples, so the loss must fall
    losses, out = _loss_curve(train_rows, frac_spec, tiny_base, tmp_path, quantization="none")
    assert losses[-1] < losses[0] - 0.1
    meta = read_bundle_metadata(out)
    assert meta["training"]["quantization"] == "none" and meta["training"]["method"] == "lora"


@pytest.mark.slow
@pytest.mark.skipif(not four_bit_available("cpu")[0], reason="bitsandbytes 4-bit does not run on this CPU")
def test_qlora_nf4_steps_lower_the_loss(train_rows, frac_spec, tiny_base, tmp_path):
    losses, out = _loss_curve(train_rows, frac_spec, tiny_base, tmp_path, quantization="nf4")
    assert losses[-1] < losses[0] - 0.1
    meta = read_bundle_metadata(out)
    assert meta["training"]["quantization"] == "nf4" and meta["training"]["method"] == "qlora"
    probs = load_bundle(out, spec=frac_spec).predict_proba(train_rows.head(3))
    assert ((probs.to_numpy() > 0) & (probs.to_numpy() < 1)).all()


def test_auto_quantization_is_nf4_wherever_bitsandbytes_runs_it(caplog, monkeypatch):
    from cohortlm.models.llm import loading

    assert four_bit_available("cpu")[0], "bitsandbytes 0.50 runs NF4 forward and backward on a CPU"
    assert loading.choose_quantization("auto", "cpu") == "nf4"
    assert loading.choose_quantization("none", "cpu") == "none"
    monkeypatch.setattr(loading, "four_bit_available", lambda device: (False, "no 4-bit kernels"))
    with caplog.at_level("WARNING"):
        assert loading.choose_quantization("auto", "cpu") == "none"
    assert "NON-QUANTISED" in caplog.text and "no 4-bit kernels" in caplog.text


def test_smoke_recipe_trains_and_scores_nf4_on_cpu(
    train_rows, frac_spec, tiny_base, split_cohort, tmp_path, monkeypatch
):
    """The smoke profile's fine-tune on a CPU is QLoRA: NF4 base, cached NF4 trunk, scored on the NF4 base."""
    from cohortlm.run.profiles import get_profile

    monkeypatch.setenv("COHORTLM_CACHE", str(tmp_path / "cache"))
    cfg = get_profile("smoke").qlora.with_overrides(max_steps=2)
    assert cfg.quantization == "auto"
    out = train_qlora(
        train_rows, frac_spec, cfg, out_dir=tmp_path / "b", base_model=tiny_base, progress=False
    )
    meta = read_bundle_metadata(out)
    assert meta["training"]["quantization"] == "nf4" and meta["training"]["method"] == "qlora"
    assert meta["training"]["trunk_split_at"] == 1  # the frozen trunk ran on the NF4 base, cached
    predictor = load_bundle(out, spec=frac_spec)
    assert predictor.scorer.quantization == "nf4"
    assert "Linear4bit" in {type(m).__name__ for m in predictor.scorer.model.modules()}
    rows = split_cohort[split_cohort["split"] == "test"].head(6)
    plain = predictor.predict_proba(rows).to_numpy()
    predictor.scorer.enable_trunk_cache()
    cached = predictor.predict_proba(rows).to_numpy()
    np.testing.assert_allclose(cached, plain, atol=1e-5)  # the cached NF4 trunk is exact
    # the zero-shot scorer of the same recipe holds its base in NF4 too and shares the trunk entries
    zero = scoring.zero_shot_scorer(tiny_base, frac_spec, lora_layers=1, quantization=cfg.quantization)
    assert zero.quantization == "nf4"


class _KilledError(Exception):
    pass


def _adapter(path):
    from safetensors.torch import load_file

    return load_file(str(path / "adapter" / "adapter_model.safetensors"))


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_adapter(train_rows, frac_spec, tiny_base, tmp_path):
    cfg = QLoRAConfig(
        **{**FAST, "lora_dropout": 0.1, "batch_size": 4, "grad_accum": 2, "max_train_rows": 24,
           "max_steps": 6, "checkpoint_every": 2}
    )  # fmt: skip
    whole = train_qlora(
        train_rows, frac_spec, cfg, out_dir=tmp_path / "whole", base_model=tiny_base, progress=False
    )

    def kill_at_5(step, loss):
        if step == 5:
            raise _KilledError

    broken = tmp_path / "broken"
    with pytest.raises(_KilledError):
        train_qlora(
            train_rows,
            frac_spec,
            cfg,
            out_dir=broken,
            base_model=tiny_base,
            progress=False,
            on_step=kill_at_5,
        )
    assert (broken / "checkpoint" / "step.json").is_file()
    assert json.loads((broken / "checkpoint" / "step.json").read_text())["step"] == 4
    resumed = train_qlora(train_rows, frac_spec, cfg, out_dir=broken, base_model=tiny_base, progress=False)
    assert read_bundle_metadata(resumed)["training"]["resumed_from_step"] == 4
    assert not (broken / "checkpoint").exists()
    a, b = _adapter(whole), _adapter(resumed)
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=1e-5, rtol=1e-4)
    # the same run again: the finished bundle is returned, not retrained
    mtime = (resumed / "bundle.json").stat().st_mtime_ns
    train_qlora(train_rows, frac_spec, cfg, out_dir=broken, base_model=tiny_base, progress=False)
    assert (resumed / "bundle.json").stat().st_mtime_ns == mtime


def test_checkpoint_of_another_config_is_refused(train_rows, frac_spec, tiny_base, tmp_path):
    cfg = QLoRAConfig(**{**FAST, "batch_size": 4, "grad_accum": 1, "max_train_rows": 8, "max_steps": 3,
                         "checkpoint_every": 1})  # fmt: skip

    def kill(step, loss):
        if step == 2:
            raise _KilledError

    with pytest.raises(_KilledError):
        train_qlora(
            train_rows, frac_spec, cfg, out_dir=tmp_path, base_model=tiny_base, progress=False, on_step=kill
        )
    other = cfg.with_overrides(learning_rate=1e-4)
    with pytest.raises(UsageError, match="another configuration"):
        train_qlora(train_rows, frac_spec, other, out_dir=tmp_path, base_model=tiny_base, progress=False)
    # --no-resume starts over
    train_qlora(
        train_rows, frac_spec, other, out_dir=tmp_path, base_model=tiny_base, progress=False, resume=False
    )


def test_llm_bundle_contract(train_rows, frac_spec, ra_spec, tmp_path):
    cfg = QLoRAConfig(**{**FAST, "batch_size": 4, "grad_accum": 1, "max_train_rows": 8, "max_steps": 2})
    out = train_qlora(train_rows, frac_spec, cfg, out_dir=tmp_path / "llm", base_model="tiny", progress=False)
    meta = read_bundle_metadata(out)
    assert meta["kind"] == "llm" and meta["study_hash"] == frac_spec.spec_hash
    assert len(meta["model_version"]) == 12
    assert meta["training"]["prompt_version"] == text.PROMPT_VERSION
    assert meta["training"]["tokens_per_s"] > 0 and meta["training"]["peak_memory_mib"] > 0
    record = json.loads((out / "base_model.json").read_text())
    assert record["embedded"] == "base" and len(record["sha256"]) == 64
    assert (out / "adapter" / "adapter_config.json").is_file()

    predictor = load_bundle(out, spec=frac_spec)
    assert predictor.kind == "llm" and predictor.version == meta["model_version"] and predictor.path == out
    rows = train_rows.head(4).assign(extra="ignored")
    probs = predictor.predict_proba(rows)
    assert list(probs.columns) == frac_spec.endpoint_names and probs.index.equals(rows.index)
    assert ((probs.to_numpy() > 0) & (probs.to_numpy() < 1)).all()
    with pytest.raises(SpecError):
        load_bundle(out, spec=ra_spec)


def test_config_validates_itself():
    with pytest.raises(ValueError, match="lora_r"):
        QLoRAConfig(lora_r=0)
    with pytest.raises(ValueError, match="quantization"):
        QLoRAConfig(quantization="int3")
    with pytest.raises(ValueError, match="lora_dropout"):
        QLoRAConfig(lora_dropout=1.5)
    with pytest.raises(ValueError, match="max_steps"):
        QLoRAConfig(max_steps=0)
    with pytest.raises(ValueError, match="lr_schedule"):
        QLoRAConfig(lr_schedule="step")
    with pytest.raises(ValueError, match="optimizer"):
        QLoRAConfig(optimizer="lion")
    with pytest.raises(ValueError, match=r"optimizer_args\.momentum is not an argument of adamw"):
        QLoRAConfig(optimizer_args={"momentum": 0.9})
    with pytest.raises(ValueError, match=r"optimizer_args\.betas must be two numbers"):
        QLoRAConfig(optimizer_args={"betas": [0.9]})
    with pytest.raises(AttributeError):
        QLoRAConfig().lora_r = 3  # type: ignore[misc]


def test_unknown_target_modules_are_a_usage_error(train_rows, frac_spec, tiny_base, tmp_path):
    cfg = QLoRAConfig(**{**FAST, "max_steps": 1, "target_modules": ("no_such_proj",)})
    with pytest.raises(UsageError, match="target modules"):
        train_qlora(train_rows, frac_spec, cfg, out_dir=tmp_path, base_model=tiny_base, progress=False)


def test_missing_base_model_says_how_to_provide_one(tmp_path):
    with pytest.raises(UsageError, match="--base-model"):
        resolve_base_model(tmp_path / "nowhere")
    (tmp_path / "weights.bin").write_bytes(b"x")
    with pytest.raises(UsageError, match=r"\.gguf"):
        resolve_base_model(tmp_path / "weights.bin")
    with pytest.raises(UsageError, match=r"config\.json"):
        resolve_base_model(tmp_path)


def test_profiles_are_consistent():
    from cohortlm.run.profiles import PROFILES, get_profile

    assert set(PROFILES) == {"smoke", "quick", "paper"}
    assert PROFILES["smoke"].base_model == "tiny"
    assert PROFILES["paper"].qlora.quantization == "nf4"
    with pytest.raises(UsageError, match="--base-model"):
        PROFILES["paper"].base_model_or(None)
    with pytest.raises(UsageError):
        get_profile("huge")
