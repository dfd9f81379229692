"""QLoRA fine-tuning: teach a causal LM to answer each endpoint's question about a patient.

Read top to bottom: setup (base model, 4-bit quantisation, LoRA, data) ->
train loop -> save a bundle. The recipe, :class:`~cohortlm.models.llm.recipe.QLoRAConfig`,
and the checkpoints (:mod:`cohortlm.models.llm.checkpoint`) live in their own modules.

What is learnt. For every training patient and endpoint the model sees the
patient text and the endpoint question and must put the answer token
(`` Yes`` for a case, `` No`` otherwise) next. Loss on answer tokens only, the
prompt is never a target. By default (``answer_loss="yes_no"``) the loss is
the cross-entropy over the two answer tokens, i.e. the log-loss of exactly
the probability the scorer reports, ``sigmoid(l_Yes - l_No)``: every gradient
goes into telling cases from non-cases. ``answer_loss="vocab"`` is the usual
language-model loss over the whole vocabulary; on the quick profile it spent
its few steps moving probability mass onto " Yes"/" No" (loss 1.4 -> 0.4)
and the test AUCs stayed at chance.

The answer head. With ``head="endpoint"`` (the quick profile) the answer
logit of endpoint ``e`` comes from its own linear head on the LM head's
input instead of the shared Yes/No rows: the head starts at the zero-shot
answer, is fitted as a standardised logistic-regression probe on the
training patients, then trains with the adapters (:mod:`cohortlm.models.llm.head`
says why: on SmolLM2 the adapters alone never left the prevalences). The
loss is the same two-answer cross-entropy.

Packing the eight questions. A patient's text is ~290 tokens, a question ~28.
One prompt per endpoint would pay for the text eight times (~2,500 tokens per
patient). Two alternatives pay for it once:

* one sequence ``text + Q1 A1 + Q2 A2 + ...`` with ordinary causal attention:
  cheap, but question 5 would see answers 1-4. The model could learn to read
  the other endpoints' answers (the DAS28 and CDAI endpoints are strongly
  related), and at scoring time those answers are not there: what is trained
  is not what is scored.
* one sequence ``text + Q1 + ... + Q8`` with a block mask, where each question
  sees the text and itself only, and sits at the positions it has in
  ``text + Q_e`` (:func:`cohortlm.models.llm.forward.shared_prefix_inputs`).

We use the second: it is exactly the forward pass the scorer runs, so training
and scoring see the same attention pattern and positions, the text costs once
(~510 tokens per patient instead of ~2,500), and one backward pass covers all
eight endpoints. The answer logits are read at each question's last token.

Quantisation. ``quantization="nf4"`` loads the frozen base in 4-bit NF4 with
double quantisation (BitsAndBytesConfig) and prepares it with
``prepare_model_for_kbit_training``. ``"auto"`` does that wherever bitsandbytes
runs a 4-bit layer forward and backward (:func:`four_bit_available`: CUDA, and
a CPU with bitsandbytes >= 0.45, which has NF4 CPU kernels), so a CPU smoke
run takes the same quantised code path as a GPU node; elsewhere it trains a
non-quantised LoRA and says so in the log. With NF4 the frozen trunk's states
come from the NF4 base (and are cached under their own key), and the bundle is
scored on the NF4 base with the adapters unmerged, as it was trained.
Compute dtype (``compute_dtype="auto"``):
bf16 weights on CUDA; on a CPU fp32 weights with bf16 autocast when the CPU
multiplies bf16 natively (AVX512-BF16/AMX). Measured on 2 idle cores here
(``benchmarks/results/dtype.json``) bf16 autocast is 2.8x fp32 forward and
1.75x forward+backward; P(Yes) moves by up to 0.009 (the LM head stays fp32).
Another CPU with the same flag ran bf16 2x slower, so whether autocast is used
is measured per CPU (:func:`cohortlm.models.llm.loading.bf16_pays_off`).

The frozen trunk. With ``lora_layers=n`` the adapters sit on the top ``n``
blocks; the blocks below are frozen and see the same input every epoch, so
their output is computed once per patient (:mod:`cohortlm.models.llm.trunk`,
``cache_trunk=True``) and each training step runs only the top blocks. The
cached states are also what the zero-shot and fine-tuned scorers start from.
A test pins cached and uncached training and scoring to the same numbers.

Class weights. ``class_weight="balanced"`` weighs each endpoint's cases by
controls/cases: the rarest RA endpoints have 3-5 % cases, and without it their
gradient is mostly "say No".

Checkpoints. Every ``checkpoint_every`` optimizer steps the LoRA weights,
optimizer, scheduler, RNG states and the step are saved atomically under
``<out>/checkpoint``; a run killed at any point resumes from the last one and
reaches the same adapter (the data order is a function of the seed and the
epoch). The checkpoint is deleted once the bundle is written; re-running a
finished run with the same inputs returns the existing bundle.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import random
import resource
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cohortlm.cohort.study import StudySpec
from cohortlm.errors import DataError, UsageError
from cohortlm.models import text
from cohortlm.models.bundle import (
    BUNDLE_FILE,
    check_feature_rows,
    read_bundle_metadata,
    write_bundle_metadata,
)
from cohortlm.models.llm import head as answer_head
from cohortlm.models.llm.checkpoint import CHECKPOINT_DIR, load_checkpoint, save_checkpoint
from cohortlm.models.llm.loading import (
    BaseModelRef,
    autocast,
    autocast_dtype,
    choose_quantization,
    compute_dtype,
    keep_blocks,
    load_causal_lm,
    load_tokenizer,
    pick_device,
    resolve_base_model,
)
from cohortlm.models.llm.recipe import LR_SCHEDULES, QLoRAConfig
from cohortlm.models.llm.scoring import ADAPTER_DIR, BASE_MODEL_FILE, PromptTokens, endpoint_logits

log = logging.getLogger(__name__)

EMBEDDED_BASE_DIR = "base"
# Base models up to this size travel inside the bundle (the smoke model), so the
# bundle works on a machine that never built them.
EMBED_BASE_MAX_BYTES = 50 * 2**20
_LIBRARIES = ("torch", "transformers", "peft", "bitsandbytes", "tokenizers", "numpy", "pandas", "cohortlm")


# ============================================================================ setup


def _seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def load_for_training(ref: BaseModelRef, config: QLoRAConfig, device: str) -> tuple[Any, Any, str]:
    """Base model (4-bit or not) with fresh LoRA adapters, its tokenizer, and the quantisation used."""
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    from cohortlm.models.llm.loading import nf4_config

    quant = choose_quantization(config.quantization, device)
    dtype = compute_dtype(device)
    quant_config = nf4_config(dtype) if quant == "nf4" else None
    model = load_causal_lm(ref, device=device, quantization_config=quant_config, dtype=dtype)
    model = keep_blocks(model, config.base_blocks)
    if quant == "nf4":
        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=config.gradient_checkpointing
        )
    else:
        for p in model.parameters():
            p.requires_grad_(False)
        if config.gradient_checkpointing:
            model.gradient_checkpointing_enable()
            model.enable_input_require_grads()
    present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    targets = [t for t in config.target_modules if t in present]
    if not targets:
        raise UsageError(
            f"none of the LoRA target modules {list(config.target_modules)} exist in {ref.name}; "
            f"set target_modules to some of its linear layers"
        )
    layers: list[int] | None = None
    if config.lora_layers is not None:
        n_layers = int(model.config.num_hidden_layers)
        layers = list(range(max(0, n_layers - config.lora_layers), n_layers))
    _seed_everything(config.seed)  # LoRA A matrices are drawn from the seeded RNG
    lora = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=targets,
        layers_to_transform=layers,
        layers_pattern="layers" if layers is not None else None,
        bias="none",
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(model, lora)
    return model, load_tokenizer(ref), quant


def select_training_rows(train_df: pd.DataFrame, spec: StudySpec, config: QLoRAConfig) -> pd.DataFrame:
    """Training rows with at least one label; a seeded subset when ``max_train_rows`` is set."""
    labels = spec.labels(train_df)
    rows = train_df[labels.notna().any(axis=1).to_numpy()]
    if len(rows) == 0:
        raise DataError("no training row has an endpoint label; check the endpoint columns")
    if config.max_train_rows is not None and len(rows) > config.max_train_rows:
        rows = rows.sample(n=config.max_train_rows, random_state=config.seed).sort_index()
    return rows


def _fingerprint(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


# ============================================================================ train


@dataclass
class _Batches:
    """Micro-batches in a seeded order: epoch e is permutation(seed + e) of the rows."""

    n_rows: int
    batch_size: int
    seed: int
    per_epoch: int = field(init=False)

    def __post_init__(self) -> None:
        self.per_epoch = math.ceil(self.n_rows / self.batch_size)

    def micro_batch(self, index: int) -> np.ndarray:
        epoch, within = divmod(index, self.per_epoch)
        order = np.random.default_rng(self.seed + epoch).permutation(self.n_rows)
        return order[within * self.batch_size : (within + 1) * self.batch_size]


def answer_loss(
    logits: Any, answers: np.ndarray, tokens: PromptTokens, kind: str, *, reduction: str = "mean"
) -> Any:
    """Cross-entropy of the answer tokens given the logits after each question.

    Args:
        logits: ``[n, vocab]`` logits at the question ends (labelled pairs only).
        answers: ``[n]`` answer token ids (``tokens.yes_id`` or ``tokens.no_id``).
        tokens: the prompt's answer ids.
        kind: ``"yes_no"`` (over the two answers) or ``"vocab"`` (over the vocabulary).
        reduction: ``"mean"`` or ``"none"`` (one loss per label, for weighting).
    """
    import torch

    y = torch.as_tensor(answers, device=logits.device)
    if kind == "vocab":
        return torch.nn.functional.cross_entropy(logits.float(), y, reduction=reduction)
    pair = logits[:, [tokens.yes_id, tokens.no_id]].float()
    return torch.nn.functional.cross_entropy(pair, (y == tokens.no_id).long(), reduction=reduction)


def peak_memory_mb(device: str) -> float:
    """Peak memory in MiB: allocated CUDA memory on a GPU, the process's peak RSS on a CPU."""
    import torch

    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 1024  # bytes on macOS, KiB on Linux


@dataclass
class _Setup:
    """What the train loop needs, built once (and rebuilt identically on resume)."""

    ref: BaseModelRef
    device: str
    rows: pd.DataFrame
    labels: np.ndarray
    key: str
    model: Any
    quant: str
    tokens: PromptTokens
    prefixes: list[list[int]]
    amp: Any  # autocast dtype or None
    split_at: int | None
    states: list[Any] | None  # cached frozen-trunk states per training patient
    weights: np.ndarray  # per-(patient, endpoint) loss weight
    trunk_seconds: float
    endpoint_names: list[str] = field(default_factory=list)


def class_weights(labels: np.ndarray, kind: str) -> np.ndarray:
    """Loss weight of each (patient, endpoint) label; 0 where the label is missing.

    ``"balanced"`` weighs an endpoint's cases by ``n_controls / n_cases`` and
    its controls by 1, then rescales the endpoint so that its mean weight is
    1: rare endpoints (3-5 % cases) then get as much gradient from their
    cases as from their controls, and no endpoint dominates the loss.
    """
    present = ~np.isnan(labels)
    w = present.astype(float)
    if kind == "none":
        return w
    for e in range(labels.shape[1]):
        y = labels[present[:, e], e]
        n_pos, n_neg = float((y >= 0.5).sum()), float((y < 0.5).sum())
        if n_pos == 0 or n_neg == 0:
            continue
        col = np.where(labels[:, e] >= 0.5, n_neg / n_pos, 1.0) * present[:, e]
        w[:, e] = col / col[present[:, e]].mean()
    return w


@dataclass(frozen=True)
class _RunIdentity:
    """What makes a run this run: the base model, the training rows, their texts and labels, and the key."""

    ref: BaseModelRef
    rows: pd.DataFrame
    labels: np.ndarray
    texts: list[str]
    key: str


def _run_identity(
    train_df: pd.DataFrame, spec: StudySpec, config: QLoRAConfig, base_model: str | Path | None
) -> _RunIdentity:
    ref = resolve_base_model(base_model, spec=spec)
    rows = select_training_rows(train_df, spec, config)
    labels = spec.labels(rows).to_numpy(dtype=float)
    texts = text.patient_texts(check_feature_rows(rows, spec), spec, version=config.prompt_version)
    key = _fingerprint(
        config.to_dict(), ref.sha256, spec.spec_hash, config.prompt_version, texts, labels.tolist()
    )
    return _RunIdentity(ref=ref, rows=rows, labels=labels, texts=texts, key=key)


def _setup(run: _RunIdentity, spec: StudySpec, config: QLoRAConfig, progress: bool) -> _Setup:
    from cohortlm.models.llm import trunk

    ref, rows, labels, texts, key = run.ref, run.rows, run.labels, run.texts, run.key
    device = pick_device(config.device)
    _seed_everything(config.seed)
    model, tokenizer, quant = load_for_training(ref, config, device)
    tokens = PromptTokens.build(tokenizer, spec, prompt_version=config.prompt_version)
    prefixes = tokens.encode_patients(tokenizer, texts)
    amp = autocast_dtype(device, config.compute_dtype)
    split_at = trunk.split_point(model, config.lora_layers) if config.cache_trunk else None
    states, trunk_seconds = None, 0.0
    if split_at is not None:
        t0 = time.perf_counter()
        states = trunk.cached_states(
            model, prefixes, tokens.questions, model_sha256=ref.sha256, split_at=split_at, quantization=quant,
            pad_id=tokens.pad_id, device=device, amp=amp, batch_size=config.batch_size * 2,
            progress=progress, desc="frozen trunk (training patients)",
        )  # fmt: skip
        trunk_seconds = time.perf_counter() - t0
    else:
        split_at = None
    return _Setup(
        ref=ref, device=device, rows=rows, labels=labels, key=key, model=model, quant=quant,
        tokens=tokens, prefixes=prefixes, amp=amp, split_at=split_at, states=states,
        weights=class_weights(labels, config.class_weight), trunk_seconds=trunk_seconds,
        endpoint_names=spec.endpoint_names,
    )  # fmt: skip


def _micro_batch_logits(setup: _Setup, idx: np.ndarray) -> Any:
    """Logits after each question for the patients ``idx`` (top blocks only when the trunk is cached)."""
    from cohortlm.models.llm import trunk

    with autocast(setup.device, setup.amp):
        if setup.states is not None and setup.split_at is not None:
            logits = trunk.top_logits(
                setup.model,
                [setup.states[i] for i in idx],
                [setup.prefixes[i] for i in idx],
                setup.tokens.questions,
                split_at=setup.split_at,
                pad_id=setup.tokens.pad_id,
                device=setup.device,
            )
        else:
            logits = endpoint_logits(
                setup.model,
                [setup.prefixes[i] for i in idx],
                setup.tokens.questions,
                pad_id=setup.tokens.pad_id,
                device=setup.device,
            )
    return logits


def _micro_batch_loss(setup: _Setup, idx: np.ndarray, config: QLoRAConfig) -> Any:
    """Weighted answer loss of one micro-batch."""
    import torch

    logits = _micro_batch_logits(setup, idx)
    valid = ~np.isnan(setup.labels[idx])
    answers = np.where(setup.labels[idx] >= 0.5, setup.tokens.yes_id, setup.tokens.no_id)[valid]
    weights = torch.as_tensor(setup.weights[idx][valid], dtype=torch.float32, device=setup.device)
    picked = logits[torch.as_tensor(valid, device=setup.device)]
    per_label = answer_loss(picked, answers, setup.tokens, config.answer_loss, reduction="none")
    return (per_label * weights).sum() / weights.sum().clamp(min=1e-12)


def train_qlora(
    train_df: pd.DataFrame,
    spec: StudySpec,
    config: QLoRAConfig,
    *,
    out_dir: str | Path,
    base_model: str | Path | None,
    resume: bool = True,
    progress: bool = True,
    on_step: Callable[[int, float], None] | None = None,
) -> Path:
    """Fine-tune ``base_model`` with (Q)LoRA on ``train_df`` and write an LLM bundle to ``out_dir``.

    Args:
        train_df: training rows (features and endpoint source columns).
        spec: the study.
        config: the fine-tune configuration.
        out_dir: the bundle folder (created); checkpoints live in ``out_dir/checkpoint`` meanwhile.
        base_model: an HF folder or .gguf file; None for the default model; ``"tiny"``
            for the tiny random model (smoke profile).
        resume: continue from a checkpoint in ``out_dir`` if there is one; return
            the existing bundle if this exact run already finished.
        progress: show a progress bar.
        on_step: called after every optimizer step with (step, loss), e.g. for logging.

    Returns:
        The bundle folder.
    """
    out = Path(out_dir)
    spec.check_columns(train_df, need_endpoints=True, what="the training table")
    # ---- setup: base model, data, run identity, frozen trunk
    run = _run_identity(train_df, spec, config, base_model)
    if resume and _holds_run(out, run.key):
        log.info("bundle %s already holds this run; not training again", out)
        return out
    if not resume:
        shutil.rmtree(out / CHECKPOINT_DIR, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    setup = _setup(run, spec, config, progress)
    opt = _setup_optimization(setup, spec, config, out / CHECKPOINT_DIR, resume=resume, progress=progress)
    # ---- train loop
    losses, n_tokens, t0 = _train_loop(setup, opt, config, progress=progress, on_step=on_step)
    if opt.head is not None and config.class_weight == "balanced":
        _correct_priors(setup, opt.head, opt.probe)
    elapsed = time.perf_counter() - t0
    tokens_per_s = n_tokens / elapsed if elapsed > 0 else float("nan")
    peak = peak_memory_mb(setup.device)
    log.info(
        "trained %d steps in %.1f s (+ %.1f s frozen trunk): %.0f tokens/s, peak memory %.0f MiB (%s)",
        opt.total_steps - opt.start, elapsed, setup.trunk_seconds, tokens_per_s, peak,
        "CUDA allocated" if setup.device.startswith("cuda") else "RSS",
    )  # fmt: skip
    # ---- save
    training = _training_record(
        setup, opt, config, losses, tokens_per_s=tokens_per_s, peak=peak, elapsed=elapsed
    )
    _save_bundle(out, setup, spec, training, opt.head)
    shutil.rmtree(opt.ckpt, ignore_errors=True)
    return out


@dataclass
class _Optimization:
    """The head, batches, optimizer and schedule of a run, and the step it starts from."""

    head: Any
    batches: _Batches
    total_steps: int
    trainable: list[Any]
    optimizer: Any
    scheduler: Any
    ckpt: Path
    start: int
    probe: dict[str, Any] | None
    n_trainable: int


def _setup_optimization(
    setup: _Setup, spec: StudySpec, config: QLoRAConfig, ckpt: Path, *, resume: bool, progress: bool
) -> _Optimization:
    """Install the answer head, build the optimizer and schedule, resume from ``ckpt``, fit the probe."""
    import torch
    from transformers import get_scheduler

    model = setup.model
    head = (
        answer_head.install(model, len(spec.endpoints), yes_id=setup.tokens.yes_id, no_id=setup.tokens.no_id)
        if config.head == "endpoint"
        else None
    )
    batches = _Batches(len(setup.rows), config.batch_size, config.seed)
    total_steps = config.max_steps or max(1, math.ceil(config.epochs * batches.per_epoch / config.grad_accum))
    trainable = [p for p in model.parameters() if p.requires_grad]
    # The optimizer and the schedule by name (config.optimizer, config.lr_schedule), as a recipe says.
    kinds = {"adamw": torch.optim.AdamW, "adam": torch.optim.Adam, "sgd": torch.optim.SGD}
    args = {k: tuple(v) if k == "betas" else v for k, v in config.optimizer_args.items()}
    optimizer = kinds[config.optimizer](
        trainable, lr=config.learning_rate, weight_decay=config.weight_decay, **args
    )
    scheduler = get_scheduler(
        LR_SCHEDULES[config.lr_schedule],
        optimizer,
        num_warmup_steps=int(config.warmup_ratio * total_steps),
        num_training_steps=total_steps,
    )
    start = (
        load_checkpoint(ckpt, model=model, optimizer=optimizer, scheduler=scheduler, key=setup.key)
        if resume
        else 0
    )
    if start:
        log.info("resuming from checkpoint at step %d of %d", start, total_steps)
    probe: dict[str, Any] | None = None
    if head is not None and not start:
        probe = _fit_probe(setup, head, config, progress)
    n_trainable = sum(p.numel() for p in trainable)
    log.info(
        "fine-tuning %s on %s (%s, quantization %s, trunk %s): %d patients x %d endpoints, %d steps, "
        "%s trainable parameters",
        setup.ref.name, setup.device, _dtype_name(setup), setup.quant,
        f"cached below block {setup.split_at}" if setup.split_at is not None else "not cached",
        len(setup.rows), len(spec.endpoints), total_steps, f"{n_trainable:,}",
    )  # fmt: skip
    return _Optimization(
        head, batches, total_steps, trainable, optimizer, scheduler, ckpt, start, probe, n_trainable
    )


def _train_loop(
    setup: _Setup,
    opt: _Optimization,
    config: QLoRAConfig,
    *,
    progress: bool,
    on_step: Callable[[int, float], None] | None,
) -> tuple[list[float], int, float]:
    """Steps ``opt.start`` to ``opt.total_steps``, checkpointing on the way.

    Returns:
        The loss of each step, the tokens seen and when the first step began (``time.perf_counter``).
    """
    import torch
    from tqdm.auto import tqdm

    setup.model.train()
    q_tokens = sum(len(q) for q in setup.tokens.questions)
    bar = tqdm(
        total=opt.total_steps, initial=opt.start, desc="fine-tuning", unit="step", disable=not progress
    )
    n_tokens = 0
    losses: list[float] = []
    t0 = time.perf_counter()
    for step in range(opt.start, opt.total_steps):
        opt.optimizer.zero_grad(set_to_none=True)
        step_loss = 0.0
        for micro in range(config.grad_accum):
            idx = opt.batches.micro_batch(step * config.grad_accum + micro)
            loss = _micro_batch_loss(setup, idx, config)
            (loss / config.grad_accum).backward()
            step_loss += loss.item() / config.grad_accum
            n_tokens += sum(len(setup.prefixes[i]) for i in idx) + q_tokens * len(idx)
        torch.nn.utils.clip_grad_norm_(opt.trainable, config.max_grad_norm)
        opt.optimizer.step()
        opt.scheduler.step()
        losses.append(step_loss)
        elapsed = time.perf_counter() - t0
        bar.set_postfix(loss=f"{step_loss:.4f}", tok_s=f"{n_tokens / elapsed:.0f}")
        bar.update(1)
        if (step + 1) % config.checkpoint_every == 0 and step + 1 < opt.total_steps:
            save_checkpoint(
                opt.ckpt,
                model=setup.model,
                optimizer=opt.optimizer,
                scheduler=opt.scheduler,
                step=step + 1,
                key=setup.key,
            )
        if on_step is not None:
            on_step(step + 1, step_loss)
    bar.close()
    return losses, n_tokens, t0


def _correct_priors(setup: _Setup, head: Any, probe: dict[str, Any] | None) -> None:
    """Undo the balanced loss's shift of each endpoint's log-odds, recording it in ``probe``."""
    # The balanced loss shifts each endpoint's log-odds by log(controls/cases); undo it so that
    # the served probabilities sit on the prevalence's scale (AUCs are unchanged).
    offsets = answer_head.prior_offsets(setup.labels)
    answer_head.shift_bias(head, offsets)
    if probe is not None:
        probe["prior_correction"] = [round(float(v), 4) for v in offsets]


def _training_record(
    setup: _Setup,
    opt: _Optimization,
    config: QLoRAConfig,
    losses: list[float],
    *,
    tokens_per_s: float,
    peak: float,
    elapsed: float,
) -> dict[str, Any]:
    """The bundle's ``training`` record: method, configuration, losses, speed and memory with units."""
    return {
        "method": "qlora" if setup.quant == "nf4" else "lora",
        "config": config.to_dict(),
        "quantization": setup.quant,
        "device": setup.device,
        "compute_dtype": _dtype_name(setup),
        "trunk_split_at": setup.split_at,
        "prompt_version": config.prompt_version,
        "serializer": "peft-safetensors",
        "n_train": len(setup.rows),
        "steps": opt.total_steps,
        "resumed_from_step": opt.start,
        "final_loss": losses[-1] if losses else None,
        "first_loss": losses[0] if losses else None,
        "losses": [round(v, 6) for v in losses],
        "tokens_per_s": tokens_per_s,
        "peak_memory_mib": peak,
        "train_seconds": elapsed,
        "trunk_seconds": setup.trunk_seconds,
        "trainable_parameters": opt.n_trainable,
        "head": config.head,
        "probe": opt.probe,
        "run_key": setup.key,
    }


def _dtype_name(setup: _Setup) -> str:
    base = str(compute_dtype(setup.device)).replace("torch.", "")
    return f"{base} weights, bf16 autocast" if setup.amp is not None else base


def _holds_run(out: Path, key: str) -> bool:
    """Whether ``out`` already holds the bundle of the run with this key."""
    if not (out / BUNDLE_FILE).is_file():
        return False
    return bool(read_bundle_metadata(out).get("training", {}).get("run_key") == key)


def _fit_probe(setup: _Setup, head: Any, config: QLoRAConfig, progress: bool) -> dict[str, Any]:
    """The linear-probe stage: answer-head features of every training patient, then one fit per endpoint."""
    import torch
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    head.captured = []
    setup.model.eval()
    order = np.arange(len(setup.rows))
    try:
        with torch.no_grad():
            for b in tqdm(range(0, len(order), config.batch_size * 2), desc="answer-head features",
                          unit="batch", disable=not progress, leave=False):  # fmt: skip
                _micro_batch_logits(setup, order[b : b + config.batch_size * 2])
        features = torch.cat(head.captured).numpy()
    finally:
        head.captured = None
    weight, bias, skipped_idx = answer_head.fit_probe(features, setup.labels, setup.weights, c=config.head_c)
    skipped = [setup.endpoint_names[e] for e in skipped_idx]
    answer_head.set_weights(head, weight, bias)
    seconds = time.perf_counter() - t0
    log.info("answer head: linear probe on %d patients in %.1f s (C %g)", len(order), seconds, config.head_c)
    if skipped:
        log.warning("answer head: %s kept the zero-shot answer (one class among the training labels)",
                    ", ".join(skipped))  # fmt: skip
    return {"seconds": round(seconds, 2), "c": config.head_c, "skipped_endpoints": skipped}


def _save_bundle(
    out: Path, setup: _Setup, spec: StudySpec, training: dict[str, Any], head: Any = None
) -> None:
    """Adapter, answer head, base-model record (small bases embedded) and bundle metadata."""
    setup.model.save_pretrained(str(out / ADAPTER_DIR))
    record = setup.ref.to_dict()
    files = [ADAPTER_DIR, BASE_MODEL_FILE]
    if head is not None:
        files.append(answer_head.save(head, out).name)
    base_dir = Path(setup.ref.hf_path)
    base_bytes = sum(f.stat().st_size for f in base_dir.rglob("*") if f.is_file())
    if base_bytes <= EMBED_BASE_MAX_BYTES:
        shutil.rmtree(out / EMBEDDED_BASE_DIR, ignore_errors=True)
        shutil.copytree(base_dir, out / EMBEDDED_BASE_DIR)
        record["embedded"] = EMBEDDED_BASE_DIR
        files.append(EMBEDDED_BASE_DIR)
    (out / BASE_MODEL_FILE).write_text(json.dumps(record, indent=2) + "\n")
    write_bundle_metadata(
        out,
        kind="llm",
        model_name=f"{setup.ref.name}+lora",
        spec=spec,
        model_files=files,
        training=training,
        libraries=_LIBRARIES,
    )
