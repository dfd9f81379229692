"""The fine-tune's recipe: :class:`QLoRAConfig`, validated from one table of constraints.

Every field has one entry in :data:`CONSTRAINTS` (a test and the rule a user
reads when it fails), checked in table order when a config is created; the
rules that tie two fields together follow the table. A broken rule raises
:class:`RecipeError`, which names the field and the rule; the profile loader
(:mod:`cohortlm.run.profiles`) re-words it as the YAML key ``qlora.<field>``.
The gate's policy is validated the same way (:mod:`cohortlm.evaluation.gate.policy`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from cohortlm.models import text
from cohortlm.models.llm.head import HEADS
from cohortlm.models.llm.loading import COMPUTE_DTYPES

QUANTIZATIONS = ("auto", "nf4", "none")
ANSWER_LOSSES = ("yes_no", "vocab")
CLASS_WEIGHTS = ("none", "balanced")
#: learning-rate schedules after the linear warm-up -> their name in ``transformers.get_scheduler``
LR_SCHEDULES = {"cosine": "cosine", "linear": "linear", "constant": "constant_with_warmup"}
#: optimizers by name -> the ``optimizer_args`` each takes (learning rate and weight decay are fields)
OPTIMIZERS: dict[str, tuple[str, ...]] = {
    "adamw": ("betas", "eps", "amsgrad"),
    "adam": ("betas", "eps", "amsgrad"),
    "sgd": ("momentum", "dampening", "nesterov"),
}
DEFAULT_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


class RecipeError(ValueError):
    """A :class:`QLoRAConfig` field breaks its constraint (the message names the field and the rule)."""


# ----------------------------------------------------------------------------- constraints

#: a field's test (True: the value is allowed) and the rule its error message states
Constraint = tuple[Callable[[Any], bool], str]


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _positive_whole(*, nullable: bool = False) -> Constraint:
    rule = "None or a positive integer" if nullable else "a positive integer"
    return (lambda v: (v is None and nullable) or (_whole(v) and v >= 1)), rule


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _one_of(allowed: Any) -> Constraint:
    return (lambda v: v in allowed), f"one of {', '.join(allowed)}"


def _module_names(value: Any) -> bool:
    return bool(value) and all(isinstance(t, str) and t for t in value)


#: One constraint per field, in the order they are checked.
CONSTRAINTS: dict[str, Constraint] = {
    "lora_r": _positive_whole(),
    "lora_alpha": _positive_whole(),
    "batch_size": _positive_whole(),
    "grad_accum": _positive_whole(),
    "checkpoint_every": _positive_whole(),
    "lora_dropout": (lambda v: _finite(v) and 0.0 <= v < 1.0, "in [0, 1)"),
    "target_modules": (_module_names, "a non-empty tuple of module names"),
    "lora_layers": _positive_whole(nullable=True),
    "quantization": _one_of(QUANTIZATIONS),
    "answer_loss": _one_of(ANSWER_LOSSES),
    "learning_rate": (lambda v: _finite(v) and v > 0, "a positive number"),
    "weight_decay": (lambda v: _finite(v) and v >= 0, "non-negative"),
    "warmup_ratio": (lambda v: _finite(v) and 0.0 <= v < 1.0, "in [0, 1)"),
    "epochs": (lambda v: _finite(v) and v > 0, "positive"),
    "max_steps": _positive_whole(nullable=True),
    "max_train_rows": _positive_whole(nullable=True),
    "seed": (lambda v: _whole(v) and v >= 0, "non-negative"),
    "max_grad_norm": (lambda v: _finite(v) and v > 0, "positive"),
    "gradient_checkpointing": (lambda v: isinstance(v, bool), "true or false"),
    "cache_trunk": (lambda v: isinstance(v, bool), "true or false"),
    "device": (
        lambda v: v is None or (isinstance(v, str) and bool(v.strip())),
        "None or a device such as cpu or cuda",
    ),
    "compute_dtype": _one_of(COMPUTE_DTYPES),
    "lr_schedule": _one_of(LR_SCHEDULES),
    "optimizer": _one_of(OPTIMIZERS),
    "class_weight": _one_of(CLASS_WEIGHTS),
    "head": _one_of(HEADS),
    "head_c": (lambda v: _finite(v) and v > 0, "a positive number"),
    "base_blocks": _positive_whole(nullable=True),
    "prompt_version": _one_of(text.PROMPT_VERSIONS),
}


# ----------------------------------------------------------------------------- the recipe


@dataclass(frozen=True)
class QLoRAConfig:
    """Everything that decides the fine-tune. Frozen and validated on creation.

    Attributes:
        lora_r: LoRA rank.
        lora_alpha: LoRA scaling numerator (scale = alpha / r).
        lora_dropout: dropout on the LoRA input.
        target_modules: names of the linear layers that get adapters.
        lora_layers: adapt only the last N transformer blocks (None: all). The
            backward pass then stops at the lowest adapted block, so on a CPU
            training costs about forward + N/L of a full backward.
        quantization: ``"auto"`` (NF4 wherever bitsandbytes runs it, CPU included; else
            none), ``"nf4"`` or ``"none"``.
        answer_loss: ``"yes_no"`` (cross-entropy over the two answer tokens) or
            ``"vocab"`` (over the whole vocabulary); see the module docstring.
        optimizer: ``"adamw"`` (default), ``"adam"`` or ``"sgd"`` (``torch.optim``).
        optimizer_args: the optimizer's other arguments: ``betas``, ``eps``, ``amsgrad``
            for adamw/adam; ``momentum``, ``dampening``, ``nesterov`` for sgd ({}: torch's defaults).
        learning_rate: the optimizer's peak learning rate.
        weight_decay: the optimizer's weight decay.
        warmup_ratio: fraction of steps with linear warm-up (then ``lr_schedule``).
        lr_schedule: ``"cosine"`` (decay to 0), ``"linear"`` (decay to 0) or ``"constant"``
            after the warm-up (``transformers.get_scheduler``).
        epochs: passes over the training rows (fractions allowed).
        max_steps: cap on optimizer steps (None: from epochs).
        batch_size: patients per micro-batch (each brings all endpoints).
        grad_accum: micro-batches per optimizer step.
        max_train_rows: train on a seeded subset of this many patients (None: all).
        seed: seeds data order, LoRA init, dropout and the subset.
        checkpoint_every: optimizer steps between checkpoints.
        gradient_checkpointing: recompute activations in the backward pass (saves memory).
        max_grad_norm: gradient clipping norm.
        device: ``"cpu"``, ``"cuda"``... (None: CUDA when available).
        compute_dtype: ``"auto"`` (bf16 autocast on a CPU with native bf16, bf16
            weights on CUDA), ``"fp32"`` or ``"bf16"``; see
            :func:`cohortlm.models.llm.loading.autocast_dtype`.
        cache_trunk: with ``lora_layers`` set, compute the frozen blocks below the
            adapters once per patient and train through the top blocks only
            (:mod:`cohortlm.models.llm.trunk`); the result equals the uncached loop.
        class_weight: ``"none"`` or ``"balanced"`` (cases of each endpoint weighted
            by controls/cases, see :func:`class_weights`).
        head: ``"lm"`` (answer with the LM head's Yes/No rows, as zero-shot) or
            ``"endpoint"`` (a per-endpoint answer head, first fitted as a linear
            probe on the training patients, then trained with the adapters;
            :mod:`cohortlm.models.llm.head`).
        head_c: inverse L2 strength of the probe that starts the endpoint head
            (scikit-learn ``C`` on standardised features).
        prompt_version: the prompt wording (``"1"`` the seed's, ``"2"`` the compact text at
            about half the tokens; :mod:`cohortlm.models.text`), recorded in the bundle.
        base_blocks: use the base model's first N transformer blocks only (None: all); the
            answer is read after block N (:func:`cohortlm.models.llm.loading.keep_blocks`).
            ``lora_layers`` then counts from block N down.
    """

    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    target_modules: tuple[str, ...] = DEFAULT_TARGETS
    lora_layers: int | None = None
    quantization: str = "auto"
    answer_loss: str = "yes_no"
    optimizer: str = "adamw"
    optimizer_args: dict[str, Any] = field(default_factory=dict)
    learning_rate: float = 2e-4
    weight_decay: float = 0.0
    warmup_ratio: float = 0.05
    lr_schedule: str = "cosine"
    epochs: float = 1.0
    max_steps: int | None = None
    batch_size: int = 4
    grad_accum: int = 4
    max_train_rows: int | None = None
    seed: int = 0
    checkpoint_every: int = 25
    gradient_checkpointing: bool = False
    max_grad_norm: float = 1.0
    device: str | None = None
    compute_dtype: str = "auto"
    cache_trunk: bool = True
    class_weight: str = "none"
    head: str = "lm"
    head_c: float = 0.01
    prompt_version: str = text.PROMPT_VERSION
    base_blocks: int | None = None

    def __post_init__(self) -> None:
        for name, (allowed, rule) in CONSTRAINTS.items():
            if not allowed(getattr(self, name)):
                raise self._broken(name, rule)
        _check_optimizer_args(self.optimizer, self.optimizer_args)
        if self.head == "endpoint" and self.answer_loss != "yes_no":
            raise self._broken(
                "answer_loss", "'yes_no' with head='endpoint' (the head answers Yes or No only)"
            )

    def _broken(self, name: str, rule: str) -> RecipeError:
        return RecipeError(f"QLoRAConfig.{name} must be {rule}, got {getattr(self, name)!r}")

    def to_dict(self) -> dict[str, Any]:
        """Plain data (tuples as lists) for bundle metadata."""
        d = asdict(self)
        d["target_modules"] = list(self.target_modules)
        d["optimizer_args"] = {
            k: list(v) if isinstance(v, tuple) else v for k, v in self.optimizer_args.items()
        }
        return d

    def with_overrides(self, **changes: Any) -> QLoRAConfig:
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)


def _check_optimizer_args(optimizer: str, args: Any) -> None:
    """``optimizer_args`` hold only arguments ``optimizer`` takes, each of the right kind.

    Raises:
        RecipeError: naming the argument and the rule it breaks.
    """
    where = "QLoRAConfig.optimizer_args"
    if not isinstance(args, dict):
        raise RecipeError(f"{where} must be a mapping of argument names to values, got {type(args).__name__}")
    allowed = OPTIMIZERS[optimizer]
    for key, value in args.items():
        if key not in allowed:
            raise RecipeError(
                f"{where}.{key} is not an argument of {optimizer}; it takes {', '.join(allowed)}"
            )
        if key == "betas":
            ok = (
                isinstance(value, (list, tuple))
                and len(value) == 2
                and all(_finite(b) and 0 <= b < 1 for b in value)
            )
            rule = "two numbers in [0, 1)"
        elif key in ("amsgrad", "nesterov"):
            ok, rule = isinstance(value, bool), "true or false"
        elif key == "eps":
            ok, rule = _finite(value) and value > 0, "a positive number"
        else:  # momentum, dampening
            ok, rule = _finite(value) and value >= 0, "a non-negative number"
        if not ok:
            raise RecipeError(f"{where}.{key} must be {rule}, got {value!r}")
