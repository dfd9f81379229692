"""One forward pass over a patient's text and every endpoint's question: inputs, the causal LM, an fp32 head.

Shared by scoring (:mod:`cohortlm.models.llm.scoring`), the cached frozen trunk
(:mod:`cohortlm.models.llm.trunk`) and the answer head
(:mod:`cohortlm.models.llm.head`); it imports none of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def left_pad(seqs: Sequence[Sequence[int]], pad_id: int) -> tuple[Any, Any]:
    import torch

    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        if len(s):
            ids[i, width - len(s) :] = torch.tensor(list(s), dtype=torch.long)
            mask[i, width - len(s) :] = 1
    return ids, mask


def shared_prefix_inputs(
    prefixes: Sequence[Sequence[int]], questions: Sequence[Sequence[int]], *, pad_id: int, dtype: Any
) -> dict[str, Any]:
    """Model inputs for one pass over ``prefix + Q1 + ... + QE`` per patient, with a block mask.

    Layout of each row: the patient prefix (left-padded to the batch's longest)
    followed by all E questions back to back. The additive 4D mask lets a
    prefix token see the earlier prefix tokens (causal, padding masked), and a
    question token see the whole prefix and the earlier tokens of *its own*
    question only. Question tokens take positions ``len(prefix) + j``, as if
    the question followed the prefix alone. So each question's last token sees
    exactly what it would see in the full prompt ``prefix + Q_e``.

    Returns:
        ``input_ids``, ``attention_mask`` (``[B, 1, L, L]``, additive),
        ``position_ids`` and ``logits_to_keep`` (the index of each question's
        last token), ready for ``model(**inputs)``.
    """
    import torch

    n_b = len(prefixes)
    p_ids, p_mask = left_pad(prefixes, pad_id)
    n_p = p_ids.shape[1]
    q_lens = [len(q) for q in questions]
    if min(q_lens) < 1:
        raise ValueError("every question needs at least one token")
    suffix = torch.tensor([t for q in questions for t in q], dtype=torch.long)
    n_s = len(suffix)
    block = torch.repeat_interleave(torch.arange(len(questions)), torch.tensor(q_lens))
    within = torch.cat([torch.arange(n) for n in q_lens])
    p_real = p_mask.bool()

    allowed = torch.zeros((n_b, n_p + n_s, n_p + n_s), dtype=torch.bool)
    allowed[:, :n_p, :n_p] = torch.tril(torch.ones(n_p, n_p, dtype=torch.bool)) & p_real[:, None, :]
    allowed[:, n_p:, :n_p] = p_real[:, None, :]
    same_block = (block[:, None] == block[None, :]) & (within[:, None] >= within[None, :])
    allowed[:, n_p:, n_p:] = same_block
    # a padding row sees only itself: never an empty softmax, and nothing real reads it
    allowed |= torch.eye(n_p + n_s, dtype=torch.bool)
    mask = torch.zeros(allowed.shape, dtype=dtype)
    mask.masked_fill_(~allowed, torch.finfo(dtype).min)

    p_len = p_mask.sum(-1)
    positions = torch.cat([(p_mask.cumsum(-1) - 1).clamp(min=0), p_len[:, None] + within[None, :]], dim=1)
    keep = n_p + torch.cumsum(torch.tensor(q_lens), 0) - 1
    return {
        "input_ids": torch.cat([p_ids, suffix.expand(n_b, n_s)], dim=1),
        "attention_mask": mask[:, None, :, :],
        "position_ids": positions,
        "logits_to_keep": keep,
    }


def causal_lm(model: Any) -> Any:
    """The HF causal LM inside a PEFT wrapper (or the model itself)."""
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


class _FP32Head:
    """The LM head computed in fp32 even under autocast.

    Under bf16 autocast the head's logits are bf16: with logits of size ~15
    their spacing is 0.06, so ``l_Yes - l_No`` takes a few dozen values across
    patients and the scores tie (straight-segment ROC curves). The head is
    one small matmul at a few positions, so fp32 there costs nothing.
    """

    def __init__(self, head: Any):
        self.head = head

    def __call__(self, hidden: Any) -> Any:
        import torch

        with torch.autocast(hidden.device.type, enabled=False):
            weight = self.head.weight
            bias = getattr(self.head, "bias", None)
            return torch.nn.functional.linear(
                hidden.float(), weight.float(), None if bias is None else bias.float()
            )


def fp32_head(model: Any) -> Any:
    """A context in which ``model``'s LM head runs in fp32 (a no-op context for other models)."""
    import contextlib

    head = getattr(causal_lm(model), "lm_head", None)
    if head is None or not hasattr(head, "weight") or not hasattr(head, "forward"):
        return contextlib.nullcontext()

    @contextlib.contextmanager
    def swapped() -> Any:
        original = head.forward
        head.forward = _FP32Head(head)
        try:
            yield
        finally:
            head.forward = original

    return swapped()
