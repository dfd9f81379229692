"""An answer head per endpoint: linear probe first, then fine-tuned with the adapters (LP-FT).

Why. The zero-shot model answers every endpoint with the same two rows of
its LM head, ``l_Yes - l_No``. Measured on the RA study (400 training and
400 test patients, SmolLM2-135M, ``benchmarks/results/learning_diagnosis.md``):
the final hidden state at each question's last token carries the signal (a
standardised logistic-regression probe on it reaches mean test AUC 0.67
against 0.52 zero-shot), but gradient descent through the shared Yes/No rows
does not find it: LoRA on the top blocks, 6-12 epochs at several learning
rates, stayed at the prevalences (loss at its class-balanced floor, test AUC
0.50-0.52), and so did a trainable shared answer vector (0.51). The
patient-to-patient variation of that state is small beside its common part,
so raw gradients mostly move the bias. A per-endpoint head learnt by plain
gradient descent crept to 0.62 in 12 epochs.

What. :class:`AnswerHead` replaces the LM head at the question ends: for
endpoint ``e`` the answer logit is ``w_e . h + b_e`` on the final normed
hidden state ``h`` (the LM head's input). It starts at the zero-shot model
exactly (``w_e`` = the Yes row minus the No row, ``b_e = 0``); then
:func:`fit_probe` sets each endpoint's ``w_e, b_e`` by an L2-regularised
logistic regression on standardised features of the training patients
(scikit-learn), and the fine-tune trains the adapters and the head together
from there. This is linear-probing-then-fine-tuning (Kumar et al., ICLR 2022,
"Fine-Tuning can Distort Pretrained Features and Underperform
Out-of-Distribution"); a classification head on an LLM's last hidden state
is also how clinical LLMs have been fine-tuned for outcome prediction
(NYUTron, Jiang et al., Nature 2023).

The head keeps the scorer's contract: it returns logits over the vocabulary
with the answer logit in the `` Yes`` column and 0 in the `` No`` column,
so ``sigmoid(l_Yes - l_No)`` is the head's probability and every scoring,
training and serving path runs unchanged. It runs in fp32 (like
:class:`cohortlm.models.llm.scoring._FP32Head`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

HEAD_FILE = "answer_head.safetensors"
HEADS = ("lm", "endpoint")


def _module() -> Any:
    import torch

    class AnswerHead(torch.nn.Module):
        """Per-endpoint linear answer heads at the question ends (see the module docstring)."""

        def __init__(self, weight: Any, bias: Any, *, vocab_size: int, yes_id: int, no_id: int):
            super().__init__()
            self.weight_e = torch.nn.Parameter(weight.detach().float().clone())
            self.bias_e = torch.nn.Parameter(bias.detach().float().clone())
            self.vocab_size, self.yes_id, self.no_id = int(vocab_size), int(yes_id), int(no_id)
            self.captured: list[Any] | None = None

        @property
        def n_endpoints(self) -> int:
            return int(self.weight_e.shape[0])

        def forward(self, hidden: Any) -> Any:
            if hidden.dim() != 3 or hidden.shape[1] != self.n_endpoints:
                raise ValueError(
                    f"the answer head reads the {self.n_endpoints} question ends of each patient; "
                    f"got hidden states of shape {tuple(hidden.shape)}"
                )
            with torch.autocast(hidden.device.type, enabled=False):
                h = hidden.float()
                if self.captured is not None:
                    self.captured.append(h.detach().cpu())
                z = (h * self.weight_e).sum(-1) + self.bias_e
            out = torch.zeros((*z.shape, self.vocab_size), dtype=z.dtype, device=z.device)
            index = torch.full((*z.shape, 1), self.yes_id, device=z.device)
            return out.scatter(-1, index, z.unsqueeze(-1))

    return AnswerHead


def install(model: Any, n_endpoints: int, *, yes_id: int, no_id: int) -> Any:
    """Put an :class:`AnswerHead` in place of ``model``'s LM head, starting at the zero-shot answer.

    Returns:
        The head (a submodule of the model: its parameters train and checkpoint with the adapters).
    """
    import torch

    from cohortlm.models.llm.forward import causal_lm

    lm = causal_lm(model)
    lm_head = lm.lm_head
    weight = lm_head.weight.detach().float()
    diff = (weight[yes_id] - weight[no_id]).expand(n_endpoints, -1)
    bias = torch.zeros(n_endpoints)
    if getattr(lm_head, "bias", None) is not None:
        bias = bias + float(lm_head.bias[yes_id] - lm_head.bias[no_id])
    head = _module()(diff, bias, vocab_size=weight.shape[0], yes_id=yes_id, no_id=no_id)
    lm.lm_head = head.to(weight.device)
    return lm.lm_head


def fit_probe(
    features: np.ndarray, labels: np.ndarray, weights: np.ndarray, *, c: float
) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Per-endpoint logistic regression on standardised features, folded back to raw features.

    Args:
        features: ``[N, E, H]`` final hidden states at the question ends.
        labels: ``[N, E]`` 0/1 with NaN where missing.
        weights: ``[N, E]`` sample weights (the fine-tune's class weights).
        c: inverse L2 strength of scikit-learn's ``LogisticRegression`` (on standardised features).

    Returns:
        ``(weight [E, H], bias [E], skipped)``: the endpoint indices in ``skipped`` (fewer than two
        classes among the labelled rows) get NaN rows, which the caller leaves at zero-shot.
    """
    from sklearn.linear_model import LogisticRegression

    n_e, dim = features.shape[1], features.shape[2]
    w_out = np.full((n_e, dim), np.nan)
    b_out = np.full(n_e, np.nan)
    skipped: list[int] = []
    for e in range(n_e):
        keep = ~np.isnan(labels[:, e])
        y = labels[keep, e] >= 0.5
        if keep.sum() < 2 or y.all() or not y.any():
            skipped.append(e)
            continue
        x = features[keep, e].astype(np.float64)
        mean, std = x.mean(0), x.std(0)
        std = np.where(std > 1e-8, std, 1.0)
        fit = LogisticRegression(C=c, max_iter=5000).fit((x - mean) / std, y, sample_weight=weights[keep, e])
        coef = fit.coef_[0] / std
        w_out[e] = coef
        b_out[e] = float(fit.intercept_[0] - coef @ mean)
    return w_out, b_out, skipped


def prior_offsets(labels: np.ndarray) -> np.ndarray:
    """Per-endpoint logit offsets ``log(n_cases / n_controls)`` that undo class-balanced training.

    With each case weighted by ``n_controls / n_cases`` (``class_weight="balanced"``)
    the loss is minimised at the true log-odds plus ``log(n_controls / n_cases)``;
    adding this offset to the head's bias after training returns probabilities
    on the scale of the training prevalence (prior correction, King & Zeng 2001),
    without changing any AUC. 0 for an endpoint with one class.
    """
    out = np.zeros(labels.shape[1])
    for e in range(labels.shape[1]):
        y = labels[~np.isnan(labels[:, e]), e]
        n_pos, n_neg = float((y >= 0.5).sum()), float((y < 0.5).sum())
        if n_pos and n_neg:
            out[e] = np.log(n_pos / n_neg)
    return out


def shift_bias(head: Any, offsets: np.ndarray) -> None:
    """Add ``offsets`` to the head's per-endpoint biases."""
    import torch

    with torch.no_grad():
        head.bias_e += torch.as_tensor(offsets, dtype=head.bias_e.dtype, device=head.bias_e.device)


def set_weights(head: Any, weight: np.ndarray, bias: np.ndarray) -> None:
    """Copy fitted rows into the head (NaN rows keep their current values)."""
    import torch

    with torch.no_grad():
        for e in range(head.n_endpoints):
            if np.isfinite(weight[e]).all() and np.isfinite(bias[e]):
                head.weight_e[e] = torch.as_tensor(weight[e], dtype=torch.float32)
                head.bias_e[e] = float(bias[e])


def save(head: Any, folder: Path) -> Path:
    """Write the head's tensors and answer ids to ``folder/answer_head.safetensors``."""
    from safetensors.torch import save_file

    path = folder / HEAD_FILE
    tensors = {
        "weight": head.weight_e.detach().cpu().contiguous(),
        "bias": head.bias_e.detach().cpu().contiguous(),
    }
    save_file(
        tensors,
        str(path),
        metadata={"yes_id": str(head.yes_id), "no_id": str(head.no_id), "vocab_size": str(head.vocab_size)},
    )
    return path


def load_into(model: Any, folder: Path, *, n_endpoints: int, yes_id: int, no_id: int) -> Any:
    """Install the head saved in ``folder`` on ``model`` (after its adapters are merged).

    Raises:
        ValueError: the file does not fit this model, tokenizer or study.
    """
    from safetensors import safe_open

    path = folder / HEAD_FILE
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
        weight, bias = f.get_tensor("weight"), f.get_tensor("bias")
    if (int(meta.get("yes_id", -1)), int(meta.get("no_id", -1))) != (yes_id, no_id):
        raise ValueError(f"{path} was trained with other answer tokens than this tokenizer's; train it again")
    if weight.shape[0] != n_endpoints:
        raise ValueError(f"{path} has {weight.shape[0]} endpoint heads, the study has {n_endpoints}")
    head = install(model, n_endpoints, yes_id=yes_id, no_id=no_id)
    if weight.shape[1] != head.weight_e.shape[1]:
        raise ValueError(f"{path} does not match the base model's hidden size; train it again")
    set_weights(head, weight.numpy(), bias.numpy())
    head.requires_grad_(False)
    return head
