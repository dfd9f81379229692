"""Multi-endpoint scoring: P("Yes") against P("No") after each endpoint's question.

For a patient with text ``P`` and endpoint questions ``Q1..QE`` the score of
endpoint ``e`` is::

    p_e = softmax(logits[Yes], logits[No]) = sigmoid(l_Yes - l_No),   logits = LM(P + Q_e)[-1]

Shared prefix. The patient text is about 290 tokens (default tokenizer), a
question about 28. Scoring each endpoint from a full prompt would encode the
patient text E = 8 times. Instead :func:`endpoint_logits` feeds one sequence
per patient, ``prefix + Q1 + ... + QE``, with a block attention mask: each
question sees the patient text and itself, never another question, and its
tokens take the positions they would have right after the prefix. The patient
text's keys and values are computed once and shared by all questions, which
is what reusing a KV cache achieves, in one forward pass and without copying
the cache E times (E copies of the prefix's cache would cost more than the
questions themselves). Scores equal full recompute (tested to 1e-4); the cost is
``|P| + E*|Q|`` tokens instead of ``E*(|P|+|Q|)``.

Only the last token of each question goes through the LM head
(``logits_to_keep`` as indices): the 49k-word vocabulary projection is a
large share of a small model's compute.

The same function gives the training loss (:mod:`cohortlm.models.llm.qlora`), so a
fine-tuned model is trained under the very attention pattern it is scored with.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cohortlm.cohort.study import StudySpec
from cohortlm.errors import SpecError, UsageError
from cohortlm.models import text
from cohortlm.models.bundle import check_feature_rows, clip_proba
from cohortlm.models.llm.forward import fp32_head, left_pad, shared_prefix_inputs
from cohortlm.models.llm.loading import autocast, autocast_dtype

log = logging.getLogger(__name__)

ADAPTER_DIR = "adapter"
BASE_MODEL_FILE = "base_model.json"
DEFAULT_BATCH_SIZE = 8


# ---------------------------------------------------------------------------- tokens


def answer_token_ids(tokenizer: Any) -> tuple[int, int]:
    """Token ids of the answers " Yes" and " No" as they follow ``Answer:``.

    Taken as the first token that ``"Answer: Yes"`` adds to ``"Answer:"``, so that
    tokenizers which glue the space to the word (BPE) and those which do not
    (SentencePiece) both give the token the model would produce.

    Raises:
        SpecError: the two answers start with the same token.
    """
    ids = []
    base = tokenizer("Answer:", add_special_tokens=False)["input_ids"]
    for answer in text.ANSWERS:
        full = tokenizer("Answer:" + answer, add_special_tokens=False)["input_ids"]
        if full[: len(base)] == base and len(full) > len(base):
            ids.append(full[len(base)])
        else:
            ids.append(tokenizer(answer, add_special_tokens=False)["input_ids"][0])
    if ids[0] == ids[1]:
        raise SpecError("the tokenizer gives ' Yes' and ' No' the same first token; use another base model")
    return ids[0], ids[1]


@dataclass(frozen=True)
class PromptTokens:
    """Token ids of the spec's questions and the two answers for one tokenizer."""

    questions: list[list[int]]
    yes_id: int
    no_id: int
    pad_id: int

    @classmethod
    def build(
        cls, tokenizer: Any, spec: StudySpec, *, prompt_version: str = text.PROMPT_VERSION
    ) -> PromptTokens:
        """Tokenise the questions (no special tokens: they continue the patient text)."""
        qs = [
            tokenizer(q, add_special_tokens=False)["input_ids"]
            for q in text.questions(spec, version=prompt_version)
        ]
        yes_id, no_id = answer_token_ids(tokenizer)
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        return cls(questions=qs, yes_id=yes_id, no_id=no_id, pad_id=int(pad if pad is not None else 0))

    def encode_patients(self, tokenizer: Any, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of patient texts (with the tokenizer's BOS, if it adds one)."""
        return [list(ids) for ids in tokenizer(list(texts))["input_ids"]]


# ---------------------------------------------------------------------------- forward passes


def endpoint_logits(
    model: Any,
    prefixes: Sequence[Sequence[int]],
    questions: Sequence[Sequence[int]],
    *,
    pad_id: int,
    device: str = "cpu",
) -> Any:
    """Next-token logits after each question, with each patient prefix encoded once.

    One forward pass per batch over ``prefix + Q1..QE`` with the block mask of
    :func:`shared_prefix_inputs`: the prefix's keys and values are computed
    once and attended to by every question (the equivalent of reusing a KV
    cache, without copying the cache E times or a second call).

    Args:
        model: a causal LM (HF or PEFT-wrapped) accepting 4D masks and ``logits_to_keep``.
        prefixes: B token-id lists (patient texts).
        questions: E token-id lists (endpoint questions), shared by all patients.
        pad_id: the pad token id (masked out; any id works).
        device: where to run.

    Returns:
        A tensor ``[B, E, vocab]`` of logits (differentiable when grads are on).
    """
    dtype = next(p.dtype for p in model.parameters() if p.is_floating_point())
    inputs = shared_prefix_inputs(prefixes, questions, pad_id=pad_id, dtype=dtype)
    inputs = {k: v.to(device) for k, v in inputs.items()}
    with fp32_head(model):
        out = model(**inputs, use_cache=False)
    return out.logits


def full_prompt_logits(
    model: Any,
    prefixes: Sequence[Sequence[int]],
    questions: Sequence[Sequence[int]],
    *,
    pad_id: int,
    device: str = "cpu",
) -> Any:
    """The plain reference: one full prompt (prefix + question) per patient and endpoint.

    Same result as :func:`endpoint_logits`, at E times the prefix cost; used by
    tests and benchmarks as the obviously correct version.
    """
    seqs = [list(p) + list(q) for p in prefixes for q in questions]
    ids, mask = left_pad(seqs, pad_id)
    ids, mask = ids.to(device), mask.to(device)
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    out = model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=False, logits_to_keep=1)
    return out.logits[:, -1, :].reshape(len(prefixes), len(questions), -1)


def yes_probability(logits: Any, yes_id: int, no_id: int) -> np.ndarray:
    """P(Yes) / (P(Yes) + P(No)) from logits ``[..., vocab]``, as float64 in (0, 1)."""
    diff = (logits[..., yes_id].double() - logits[..., no_id].double()).detach().cpu().numpy()
    return clip_proba(1.0 / (1.0 + np.exp(-diff)))


# ---------------------------------------------------------------------------- scorer


class LLMScorer:
    """Scores patients with a causal LM: every endpoint of the spec, batched, prefix reused.

    Build it with :func:`zero_shot_scorer` (a base model) or
    :meth:`from_bundle` (a fine-tuned LLM bundle).
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        spec: StudySpec,
        *,
        device: str = "cpu",
        name: str = "",
        amp: Any = None,
        split_at: int | None = None,
        model_sha256: str = "",
        prompt_version: str = text.PROMPT_VERSION,
        quantization: str = "none",
    ):
        """
        Args:
            model: a causal LM (merged adapters, or a base model).
            tokenizer: its tokenizer.
            spec: the study whose endpoints to score.
            device: where to run.
            name: a readable name for logs and progress bars.
            amp: autocast dtype (:func:`cohortlm.models.llm.loading.autocast_dtype`), None for none.
            split_at: when set (with ``model_sha256``), blocks below it are the
                base model's own, frozen: their states come from
                :func:`cohortlm.models.llm.trunk.cached_states`, shared with every
                other scorer and fine-tune of the same base and cut.
            model_sha256: the base model's content hash (the trunk cache key).
            prompt_version: the prompt wording (:data:`cohortlm.models.text.PROMPT_VERSIONS`).
            quantization: how the base's weights are held (``"none"`` or ``"nf4"``; the trunk cache key).
        """
        self.model = model
        self.tokenizer = tokenizer
        self.spec = spec
        self.device = device
        self.name = name or type(model).__name__
        self.prompt_version = text.check_version(prompt_version)
        self.tokens = PromptTokens.build(tokenizer, spec, prompt_version=prompt_version)
        self.amp = amp
        self._trunk_split_at = split_at
        self.split_at = split_at if model_sha256 else None
        self.model_sha256 = model_sha256
        self.quantization = quantization

    def score(
        self, df: pd.DataFrame, *, batch_size: int = DEFAULT_BATCH_SIZE, progress: bool = False
    ) -> pd.DataFrame:
        """P(case) per endpoint for each row of ``df`` (columns in spec order, index of ``df``)."""
        import torch
        from tqdm.auto import tqdm

        if batch_size < 1:
            raise UsageError(f"batch_size must be at least 1, got {batch_size}")
        rows = check_feature_rows(df, self.spec)
        texts = text.patient_texts(rows, self.spec, version=self.prompt_version)
        prefixes = self.tokens.encode_patients(self.tokenizer, texts)
        # similar lengths in a batch waste less compute on padding
        order = np.argsort([len(p) for p in prefixes], kind="stable")
        probs = np.empty((len(prefixes), len(self.tokens.questions)))
        bar = tqdm(
            total=len(prefixes),
            desc=f"scoring {self.name}",
            unit="patient",
            disable=not progress,
            leave=False,
        )
        self.model.eval()
        states = None
        if self.split_at is not None:
            from cohortlm.models.llm.trunk import cached_states

            with torch.inference_mode():
                states = cached_states(
                    self.model, prefixes, self.tokens.questions, model_sha256=self.model_sha256,
                    split_at=self.split_at, pad_id=self.tokens.pad_id, device=self.device, amp=self.amp,
                    quantization=self.quantization, batch_size=batch_size, progress=progress,
                    desc=f"frozen trunk ({len(prefixes)} patients)",
                )  # fmt: skip
        with torch.inference_mode(), autocast(self.device, self.amp):
            for start in range(0, len(order), batch_size):
                idx = order[start : start + batch_size]
                batch_states = None if states is None else [states[i] for i in idx]
                logits = self._logits([prefixes[i] for i in idx], batch_states)
                probs[idx] = yes_probability(logits, self.tokens.yes_id, self.tokens.no_id)
                bar.update(len(idx))
        bar.close()
        return pd.DataFrame(probs, index=df.index, columns=self.spec.endpoint_names)

    def enable_trunk_cache(self) -> None:
        """Use the shared frozen-trunk cache (for batch scoring of many patients, not serving)."""
        self.split_at = self._trunk_split_at if self.model_sha256 else None

    def _logits(self, prefixes: list[list[int]], states: list[Any] | None) -> Any:
        if states is None or self.split_at is None:
            return endpoint_logits(
                self.model, prefixes, self.tokens.questions, pad_id=self.tokens.pad_id, device=self.device
            )
        from cohortlm.models.llm.trunk import top_logits

        return top_logits(
            self.model, states, prefixes, self.tokens.questions, split_at=self.split_at,
            pad_id=self.tokens.pad_id, device=self.device,
        )  # fmt: skip

    @classmethod
    def from_bundle(
        cls,
        folder: str | Path,
        spec: StudySpec,
        meta: dict[str, Any],
        *,
        device: str | None = None,
        cache_trunk: bool = False,
    ) -> LLMScorer:
        """Base model + the bundle's LoRA adapter (merged into the weights when not quantised).

        A bundle trained on the NF4 base is scored on the NF4 base with its adapters
        unmerged (as it was trained, and its frozen trunk is the NF4 one); where
        bitsandbytes cannot run 4-bit, on the full-precision base with the adapters
        merged, with a warning.
        """
        import json

        from peft import PeftModel

        from cohortlm.models.llm.head import HEAD_FILE
        from cohortlm.models.llm.head import load_into as load_head
        from cohortlm.models.llm.loading import (
            choose_quantization,
            load_base,
            load_tokenizer,
            pick_device,
            resolve_recorded_base_model,
        )

        root = Path(folder)
        record_path = root / BASE_MODEL_FILE
        adapter = root / ADAPTER_DIR
        if not record_path.is_file() or not adapter.is_dir():
            raise SpecError(f"LLM bundle {root} lacks {BASE_MODEL_FILE} or {ADAPTER_DIR}/; train it again")
        record = json.loads(record_path.read_text())
        if record.get("embedded"):  # a small base model travels inside the bundle
            record = {**record, "hf_path": str(root / record["embedded"]), "source": None}
        ref = resolve_recorded_base_model(record, where=str(record_path))
        dev = pick_device(device)
        training = meta.get("training", {})
        trained_quant = str(training.get("quantization", "none"))
        quant = choose_quantization(trained_quant, dev) if trained_quant == "nf4" else "none"
        blocks = training.get("config", {}).get("base_blocks")
        model = load_base(ref, device=dev, quantization=quant, blocks=None if blocks is None else int(blocks))
        tokenizer = load_tokenizer(ref)
        model = PeftModel.from_pretrained(model, str(adapter))
        if quant == "none":
            model = model.merge_and_unload()
        if (root / HEAD_FILE).is_file():
            yes_id, no_id = answer_token_ids(tokenizer)
            try:
                load_head(model, root, n_endpoints=len(spec.endpoints), yes_id=yes_id, no_id=no_id)
            except ValueError as exc:
                raise SpecError(str(exc)) from None
        model.eval()
        amp = autocast_dtype(dev, training.get("config", {}).get("compute_dtype", "fp32"))
        # The adapters sit above trunk_split_at, so the blocks below are the base model's own.
        scorer = cls(
            model, tokenizer, spec, device=dev, name=meta.get("model_name", ref.name), amp=amp,
            split_at=training.get("trunk_split_at"), model_sha256=ref.sha256,
            prompt_version=str(training.get("prompt_version", "1")), quantization=quant,
        )  # fmt: skip
        if not cache_trunk:
            scorer.split_at = None
        return scorer


def zero_shot_scorer(
    base_model: str | Path | None,
    spec: StudySpec,
    *,
    device: str | None = None,
    compute_dtype: str = "fp32",
    lora_layers: int | None = None,
    prompt_version: str = text.PROMPT_VERSION,
    quantization: str = "none",
    blocks: int | None = None,
) -> LLMScorer:
    """A scorer for a base model as it is (no fine-tuning): the zero-shot mode.

    Args:
        base_model: an HF folder or .gguf file; None for the default model; ``"tiny"``
            for the tiny random model (smoke profile).
        spec: the study whose endpoints to ask about.
        device: ``cpu``/``cuda``; picked automatically when None.
        compute_dtype: ``auto``, ``fp32`` or ``bf16`` (the fine-tune's, so both are scored alike).
        lora_layers: the fine-tune's adapted top blocks: when set, the blocks below
            are computed once and shared with the fine-tuned scorer (:mod:`cohortlm.models.llm.trunk`).
        prompt_version: the prompt wording (the fine-tune's, so both read the same text).
        quantization: the fine-tune's (``auto``, ``nf4``, ``none``): the zero-shot base is held
            as the fine-tuned one is, so the two share their frozen trunk states.
        blocks: the fine-tune's ``base_blocks``: the base model's first N blocks only
            (:func:`cohortlm.models.llm.loading.keep_blocks`), so the two read the same block.
    """
    from cohortlm.models.llm.loading import (
        choose_quantization,
        load_base,
        load_tokenizer,
        pick_device,
        resolve_base_model,
    )
    from cohortlm.models.llm.trunk import split_point

    ref = resolve_base_model(base_model, spec=spec)
    dev = pick_device(device)
    quant = choose_quantization(quantization, dev)
    model = load_base(ref, device=dev, quantization=quant, blocks=blocks)
    split_at = split_point(model, lora_layers)
    return LLMScorer(
        model, load_tokenizer(ref), spec, device=dev, name=f"{ref.name} (zero-shot)",
        amp=autocast_dtype(dev, compute_dtype), split_at=split_at,
        model_sha256=ref.sha256 if split_at is not None else "", prompt_version=prompt_version,
        quantization=quant,
    )  # fmt: skip


class LLMPredictor:
    """An LLM bundle loaded for prediction (satisfies :class:`cohortlm.models.bundle.Predictor`)."""

    kind = "llm"

    def __init__(self, scorer: LLMScorer, *, path: Path, version: str, name: str, batch_size: int = 8):
        self.scorer = scorer
        self.spec = scorer.spec
        self.path = path
        self.version = version
        self.name = name
        self.batch_size = batch_size

    @classmethod
    def from_bundle(cls, folder: Path, meta: dict[str, Any], spec: StudySpec) -> LLMPredictor:
        """Load base model + adapter of a bundle whose metadata was already checked."""
        scorer = LLMScorer.from_bundle(folder, spec, meta)
        return cls(scorer, path=folder, version=meta["model_version"], name=meta["model_name"])

    def predict_proba(self, rows: pd.DataFrame) -> pd.DataFrame:
        """P(case) per endpoint in (0, 1); columns in spec order, index of ``rows``."""
        return self.scorer.score(rows, batch_size=self.batch_size, progress=False)
