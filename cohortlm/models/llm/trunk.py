"""A frozen trunk computed once: the lower blocks' hidden states, reused by every top-block pass.

When LoRA sits only on the top ``n`` of ``L`` transformer blocks, blocks
``0 .. L-n-1`` are frozen and see exactly the same input in every pass: the
zero-shot scores, every training epoch and the fine-tuned scores. Their
output for a patient, the hidden state of every token of
``prefix + Q1 + ... + QE`` at the split point under the block mask of
:func:`cohortlm.models.llm.forward.shared_prefix_inputs`, is therefore computed once
(:func:`trunk_states`) and the rest of the model runs on it
(:func:`top_logits`). On the quick profile this turns each training epoch
and each scoring pass from a 30-block forward into a few blocks.

Exactness. The top pass rebuilds the same mask and position ids and feeds the
cached states to the very modules of the model (the model's own forward with
its layer list cut at the split point), so the logits equal an uncached
forward up to float rounding (a test pins scores within 1e-5). Padding rows
are zeros: the mask never lets a real token read them.

Architectures. The cut uses the decoder's ``layers`` list, ``norm`` and the
``inputs_embeds`` entry of the model's forward, which Llama, Mistral and Qwen
families share; a model whose forward transforms ``inputs_embeds`` (Gemma
scales them) is not cut (:func:`can_split` says False) and runs uncached.

The disk cache (:class:`TrunkCache`) keeps the states of a set of patients
under a key made of the base model's hash, the split point, the token ids and
the dtype, so the zero-shot and fine-tuned scoring steps (separate pipeline
tasks) compute the eval rows' trunk once between them. Every entry carries its
key and a sha256 of its content and is verified when read: a damaged or
misplaced entry is counted and recomputed, never used.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cohortlm.models.llm.forward import causal_lm

log = logging.getLogger(__name__)

#: Architectures whose forward passes ``inputs_embeds`` through unchanged to the first layer.
SPLITTABLE = frozenset(
    {"LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM", "Phi3ForCausalLM"}
)
#: Keep at most this many bytes of cached trunk states on disk (oldest entries go first).
DISK_BUDGET_BYTES = int(os.environ.get("COHORTLM_TRUNK_CACHE_BYTES", 8 * 2**30))


def can_split(model: Any) -> bool:
    """Whether :func:`trunk_states` / :func:`top_logits` can cut this model's layer stack."""
    lm = causal_lm(model)
    decoder = getattr(lm, "model", None)
    return (
        type(lm).__name__ in SPLITTABLE
        and decoder is not None
        and hasattr(decoder, "layers")
        and hasattr(decoder, "norm")
    )


def num_layers(model: Any) -> int:
    """Transformer blocks in the model."""
    return len(causal_lm(model).model.layers)


@contextlib.contextmanager
def _cut(model: Any, start: int, stop: int | None, *, keep_norm: bool) -> Iterator[Any]:
    """Temporarily leave only blocks ``start:stop`` in the decoder (and optionally drop its final norm)."""
    import torch

    lm = causal_lm(model)
    decoder = lm.model
    layers, norm = decoder.layers, decoder.norm
    decoder.layers = torch.nn.ModuleList(list(layers)[start:stop])
    if not keep_norm:
        decoder.norm = torch.nn.Identity()
    try:
        yield lm
    finally:
        decoder.layers, decoder.norm = layers, norm


def trunk_states(
    model: Any,
    prefixes: Sequence[Sequence[int]],
    questions: Sequence[Sequence[int]],
    *,
    split_at: int,
    pad_id: int,
    device: str = "cpu",
) -> list[Any]:
    """Hidden states after block ``split_at - 1`` for each patient (no grad).

    Returns:
        One float tensor ``[len(prefix) + sum(len(q)), hidden]`` per patient, on the CPU,
        holding the real (unpadded) tokens of ``prefix + Q1 + ... + QE``.
    """
    import torch

    from cohortlm.models.llm.forward import shared_prefix_inputs

    dtype = next(p.dtype for p in model.parameters() if p.is_floating_point())
    inputs = shared_prefix_inputs(prefixes, questions, pad_id=pad_id, dtype=dtype)
    inputs.pop("logits_to_keep")
    inputs = {k: v.to(device) for k, v in inputs.items()}
    n_p = max(len(p) for p in prefixes)
    with torch.no_grad(), _cut(model, 0, split_at, keep_norm=False) as lm:
        hidden = lm.model(**inputs, use_cache=False).last_hidden_state
    hidden = hidden.detach().to("cpu")
    return [hidden[i, n_p - len(p) :].clone() for i, p in enumerate(prefixes)]


def top_logits(
    model: Any,
    states: Sequence[Any],
    prefixes: Sequence[Sequence[int]],
    questions: Sequence[Sequence[int]],
    *,
    split_at: int,
    pad_id: int,
    device: str = "cpu",
) -> Any:
    """Logits after each question from cached trunk states: blocks ``split_at:``, norm and LM head.

    The last block runs for the question tokens only where the architecture
    allows (:func:`_last_block_questions`): with LoRA on the top block alone a
    training step then touches ~40 % of the tokens of a full top-block pass.

    Args:
        model: the same model :func:`trunk_states` ran (with or without LoRA on the top blocks).
        states: the cached states of these patients, as :func:`trunk_states` returned them.
        prefixes: the patients' token ids (for lengths, mask and positions).
        questions: E question token-id lists.
        split_at: the block the states feed into.
        pad_id: pad token id.
        device: where to run.

    Returns:
        ``[B, E, vocab]`` logits, differentiable through the top blocks when grads are on.
    """
    import torch

    from cohortlm.models.llm.forward import fp32_head, shared_prefix_inputs

    dtype = next(p.dtype for p in model.parameters() if p.is_floating_point())
    inputs = shared_prefix_inputs(prefixes, questions, pad_id=pad_id, dtype=dtype)
    ids = inputs.pop("input_ids")
    n_b, width = ids.shape
    n_p = max(len(p) for p in prefixes)
    hidden = torch.zeros((n_b, width, states[0].shape[-1]), dtype=dtype)
    for i, (s, p) in enumerate(zip(states, prefixes, strict=True)):
        if s.shape[0] != len(p) + width - n_p:
            raise ValueError("cached trunk states do not match the patient's tokens; rebuild the cache")
        hidden[i, n_p - len(p) :] = s.to(dtype)
    inputs = {k: v.to(device) for k, v in inputs.items()}
    hidden = hidden.to(device)
    lm = causal_lm(model)
    n_layers = num_layers(model)
    if not last_block_at_questions(model):
        with _cut(model, split_at, None, keep_norm=True) as cut, fp32_head(cut):
            return cut(inputs_embeds=hidden, **inputs, use_cache=False).logits
    if split_at < n_layers - 1:
        inputs.pop("logits_to_keep")
        with _cut(model, split_at, n_layers - 1, keep_norm=False) as cut:
            hidden = cut.model(inputs_embeds=hidden, **inputs, use_cache=False).last_hidden_state
    ends = torch.cumsum(torch.tensor([len(q) for q in questions]), 0) - 1  # within the questions
    with fp32_head(lm):
        return _last_block_questions(
            lm, hidden, inputs["attention_mask"], inputs["position_ids"], n_p=n_p, keep=ends
        )


#: Architectures whose last block :func:`_last_block_questions` drives from its own modules
#: (separate q/k/v/o projections, rotary embedding at the decoder, pre-norm MLP).
QUESTION_ONLY_LAST_BLOCK = frozenset({"LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM"})


def last_block_at_questions(model: Any) -> bool:
    """Whether the last block can run for the question tokens alone (see :func:`_last_block_questions`)."""
    lm = causal_lm(model)
    if type(lm).__name__ not in QUESTION_ONLY_LAST_BLOCK or not hasattr(lm.model, "rotary_emb"):
        return False
    layer = lm.model.layers[-1]
    attn = getattr(layer, "self_attn", None)
    return (
        attn is not None
        and all(
            hasattr(attn, name) for name in ("q_proj", "k_proj", "v_proj", "o_proj", "head_dim", "scaling")
        )
        and all(hasattr(layer, name) for name in ("input_layernorm", "post_attention_layernorm", "mlp"))
    )


def _last_block_questions(lm: Any, hidden: Any, mask: Any, positions: Any, *, n_p: int, keep: Any) -> Any:
    """The last block, final norm and LM head for the question tokens only.

    Nothing reads the text tokens' output of the last block: only the logits
    at the question ends count. The text tokens still serve as keys and
    values, which are projections of the block's input (with their adapters,
    if any), so they are computed for every token; queries, attention output,
    output projection and MLP run for the question tokens alone (~220 of
    ~510 tokens per patient on the RA study), and so does their backward
    pass. The arithmetic is the block's own (its modules, the decoder's
    rotary embedding, the same mask), so the logits equal the full pass up to
    float rounding (pinned by a test).

    Args:
        lm: the causal LM (inside any PEFT wrapper).
        hidden: ``[B, W, H]`` input of the last block (left-padded prefix, then the questions).
        mask: the additive ``[B, 1, W, W]`` block mask of :func:`shared_prefix_inputs`.
        positions: ``[B, W]`` position ids.
        n_p: width of the padded prefix (questions start there).
        keep: index of each question's last token within the questions.

    Returns:
        ``[B, E, vocab]`` logits.
    """
    import sys

    import torch

    decoder = lm.model
    layer = decoder.layers[-1]
    attn = layer.self_attn
    rope = sys.modules[type(attn).__module__].apply_rotary_pos_emb
    n_b, width, _ = hidden.shape
    n_q = width - n_p
    cos, sin = decoder.rotary_emb(hidden, position_ids=positions)
    x = layer.input_layernorm(hidden)
    q = attn.q_proj(x[:, n_p:]).view(n_b, n_q, -1, attn.head_dim).transpose(1, 2)
    k = attn.k_proj(x).view(n_b, width, -1, attn.head_dim).transpose(1, 2)
    v = attn.v_proj(x).view(n_b, width, -1, attn.head_dim).transpose(1, 2)
    q, _ = rope(q, q, cos[:, n_p:], sin[:, n_p:])
    k, _ = rope(k, k, cos, sin)
    groups = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)
    allowed = mask[:, :, n_p:, :] == 0
    out = torch.nn.functional.scaled_dot_product_attention(
        q, k.to(q.dtype), v.to(q.dtype), attn_mask=allowed, scale=attn.scaling
    )
    h = hidden[:, n_p:] + attn.o_proj(out.transpose(1, 2).reshape(n_b, n_q, -1))
    h = h + layer.mlp(layer.post_attention_layernorm(h))
    return lm.lm_head(decoder.norm(h[:, keep.to(h.device)]))


def split_point(model: Any, lora_layers: int | None) -> int | None:
    """Where to cut for LoRA on the top ``lora_layers`` blocks; None when caching does not apply."""
    if lora_layers is None or not can_split(model):
        return None
    n = num_layers(model)
    return n - lora_layers if 0 < lora_layers < n else None


# ---------------------------------------------------------------------------- disk cache


def context_key(*, model_sha256: str, split_at: int, dtype: str, questions: Sequence[Sequence[int]]) -> str:
    """What every patient's entry shares: model bytes, the cut, the dtype and the question tokens."""
    blob = json.dumps(
        {
            "model": model_sha256,
            "split_at": split_at,
            "dtype": dtype,
            "questions": [list(q) for q in questions],
        }
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def patient_key(context: str, prefix: Sequence[int]) -> str:
    """Content key of one patient's trunk states: the shared context and the patient's token ids."""
    digest = hashlib.sha256(context.encode() + b"|")
    digest.update(np.asarray(prefix, dtype=np.int64).tobytes())
    return digest.hexdigest()[:32]


#: Written into every entry's safetensors header; entries of another format are recomputed.
ENTRY_FORMAT = "cohortlm-trunk/2"


def content_digest(states: Any) -> str:
    """sha256 of a tensor's dtype, shape and bytes: what a cache entry must still hold when read."""
    import torch

    t = states.detach().to("cpu").contiguous()
    digest = hashlib.sha256(f"{t.dtype}|{tuple(t.shape)}|".encode())
    if t.numel():
        digest.update(t.reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


class TrunkCache:
    """Trunk states on disk, one safetensors file per patient, content-addressed, verified, bounded in size.

    One file per patient (not per set) lets any later set reuse what an earlier
    one computed: the fine-tuned scorer the zero-shot one's eval rows, a
    learning curve's larger training set the smaller one's patients. Writes go
    to a temporary file renamed into place, so two tasks writing the same entry
    at once, or a task killed mid-write, never leave a torn file.

    Verified on read. Each entry's header records the key it was written under
    and the sha256 of its tensor (:func:`content_digest`); :meth:`load` returns
    states only when both still match, so a flipped bit, a truncated or foreign
    file, an entry copied or renamed over another patient's (two swapped
    entries) or one of an older format is never used: it is deleted, counted in
    :attr:`rejected` (by reason) and the caller recomputes it. Logs name the
    reason and the count, never the entry (its key derives from a patient's text).
    """

    def __init__(self, root: Path, *, budget_bytes: int = DISK_BUDGET_BYTES):
        self.root = Path(root)
        self.budget_bytes = budget_bytes
        #: entries refused since this object was made, by reason (``unreadable``, ``key``, ``digest``, ...)
        self.rejected: dict[str, int] = {}

    @classmethod
    def default(cls) -> TrunkCache:
        """The cache beside the model cache: ``$COHORTLM_CACHE/trunk`` or ``~/.cache/cohortlm/trunk``."""
        from cohortlm.models.llm.cache import cache_home

        return cls(cache_home() / "trunk")

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.safetensors"

    @property
    def rejected_total(self) -> int:
        """Entries refused (and so recomputed) since this object was made."""
        return sum(self.rejected.values())

    def _reject(self, path: Path, reason: str) -> None:
        self.rejected[reason] = self.rejected.get(reason, 0) + 1
        log.warning("trunk cache entry failed verification (%s); recomputing it", reason)
        with contextlib.suppress(OSError):
            path.unlink()

    def load(self, key: str) -> Any | None:
        """The cached states for ``key`` when the entry verifies (its key and content digest), else None."""
        from safetensors import safe_open

        path = self.path(key)
        if not path.is_file():
            return None
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
                states = f.get_tensor("states")
        except Exception:  # a torn, truncated or foreign file
            self._reject(path, "unreadable")
            return None
        if meta.get("format") != ENTRY_FORMAT:
            self._reject(path, "format")
        elif meta.get("key") != key:
            self._reject(path, "key")  # another entry's file in this one's place
        elif meta.get("sha256") != content_digest(states):
            self._reject(path, "digest")  # the content changed after it was written
        else:
            return states
        return None

    def save(self, key: str, states: Any) -> None:
        """Store one patient's ``states`` under ``key`` with their key and digest in the header (atomic)."""
        from safetensors.torch import save_file

        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{key}.{os.getpid()}.tmp")
        states = states.contiguous()
        meta = {"format": ENTRY_FORMAT, "key": key, "sha256": content_digest(states)}
        save_file({"states": states}, str(tmp), metadata=meta)
        tmp.replace(path)

    def trim(self) -> None:
        """Delete the oldest entries beyond the byte budget."""
        entries = sorted(self.root.glob("*/*.safetensors"), key=lambda p: p.stat().st_mtime, reverse=True)
        total = 0
        for entry in entries:
            total += entry.stat().st_size
            if total > self.budget_bytes:
                entry.unlink(missing_ok=True)

    def clear(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def compute_states(
    model: Any,
    prefixes: Sequence[Sequence[int]],
    questions: Sequence[Sequence[int]],
    *,
    split_at: int,
    pad_id: int,
    device: str,
    batch_size: int,
    progress: bool = False,
    desc: str = "frozen trunk",
    on_batch: Any = None,
) -> list[Any]:
    """:func:`trunk_states` for many patients, in length-sorted batches (less padding), in input order.

    Args:
        on_batch: called with ``(indices, states)`` after each batch (e.g. to store them).
    """
    from tqdm.auto import tqdm

    order = np.argsort([len(p) for p in prefixes], kind="stable")
    states: list[Any] = [None] * len(prefixes)
    t0 = time.perf_counter()
    with tqdm(total=len(prefixes), desc=desc, unit="patient", disable=not progress, leave=False) as bar:
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            batch = trunk_states(
                model, [prefixes[i] for i in idx], questions, split_at=split_at, pad_id=pad_id, device=device
            )
            for i, st in zip(idx, batch, strict=True):
                states[i] = st
            if on_batch is not None:
                on_batch(idx, batch)
            bar.update(len(idx))
    log.info(
        "frozen trunk (blocks 0-%d) for %d patients in %.1f s", split_at - 1, len(prefixes),
        time.perf_counter() - t0,
    )  # fmt: skip
    return states


def cached_states(
    model: Any,
    prefixes: Sequence[Sequence[int]],
    questions: Sequence[Sequence[int]],
    *,
    model_sha256: str,
    split_at: int,
    pad_id: int,
    device: str,
    amp: Any,
    batch_size: int,
    quantization: str = "none",
    cache: TrunkCache | None = None,
    progress: bool = False,
    desc: str = "frozen trunk",
) -> list[Any]:
    """The trunk states of these patients: from the disk cache where present, computed (and stored) where not.

    Args:
        amp: the autocast dtype the trunk runs under (None: the weights' dtype); part of the key.
        quantization: how the base's weights are held (``"none"``, ``"nf4"``); part of the key,
            so NF4 states never stand in for full-precision ones or the other way round.
        cache: where to look and store (default :meth:`TrunkCache.default`).
    """
    from cohortlm.models.llm.loading import autocast

    store = cache if cache is not None else TrunkCache.default()
    dtype = next(p.dtype for p in model.parameters() if p.is_floating_point())
    held = f"{dtype}/{amp}/{quantization}"
    context = context_key(model_sha256=model_sha256, split_at=split_at, dtype=held, questions=questions)
    keys = [patient_key(context, p) for p in prefixes]
    rejected_before = store.rejected_total
    states: list[Any] = [store.load(k) for k in keys]
    missing = [i for i, st in enumerate(states) if st is None]
    rejected = store.rejected_total - rejected_before
    log.info(
        "frozen trunk states: %d of %d patients from the cache", len(prefixes) - len(missing), len(prefixes)
    )
    if rejected:
        log.warning(
            "%d trunk cache entries failed verification and are recomputed (%s)", rejected,
            ", ".join(f"{reason}: {n}" for reason, n in sorted(store.rejected.items())),
        )  # fmt: skip
    if not missing:
        return states
    writable = True

    def store_batch(idx: Any, batch: list[Any]) -> None:
        nonlocal writable
        for j, st in zip(idx, batch, strict=True):
            if writable:
                try:
                    store.save(keys[missing[j]], st)
                except OSError as exc:  # a full or read-only cache costs time later, not this run
                    log.warning("not storing frozen trunk states (%s); continuing without the cache", exc)
                    writable = False

    with autocast(device, amp):
        computed = compute_states(
            model, [prefixes[i] for i in missing], questions, split_at=split_at, pad_id=pad_id, device=device,
            batch_size=batch_size, progress=progress, desc=desc, on_batch=store_batch,
        )  # fmt: skip
    for i, st in zip(missing, computed, strict=True):
        states[i] = st
    if writable:
        store.trim()
    return states
