"""The fine-tune's recipe is checked from one table: every field has a rule, and each rule bites."""

from __future__ import annotations

import dataclasses

import pytest

from cohortlm.models.llm.recipe import CONSTRAINTS, QLoRAConfig, RecipeError

#: one value per field that its rule must refuse (wrong kind, out of range, unknown name)
_BAD = {
    "lora_r": 0,
    "lora_alpha": True,
    "batch_size": 2.5,
    "grad_accum": -1,
    "checkpoint_every": None,
    "lora_dropout": 1.0,
    "target_modules": (),
    "lora_layers": 0,
    "quantization": "int3",
    "answer_loss": "hinge",
    "learning_rate": float("nan"),
    "weight_decay": -0.1,
    "warmup_ratio": "0.1",
    "epochs": 0,
    "max_steps": 0,
    "max_train_rows": 0,
    "seed": -1,
    "max_grad_norm": 0.0,
    "gradient_checkpointing": "yes",
    "cache_trunk": 1,
    "device": "",
    "compute_dtype": "fp8",
    "lr_schedule": "step",
    "optimizer": "lion",
    "class_weight": "auto",
    "head": "mlp",
    "head_c": float("inf"),
    "base_blocks": False,
    "prompt_version": "0",
}


def test_every_field_has_one_rule_in_the_table():
    fields = {f.name for f in dataclasses.fields(QLoRAConfig)}
    # optimizer_args is checked against the chosen optimizer, after the table
    assert set(CONSTRAINTS) == fields - {"optimizer_args"}
    assert set(_BAD) == set(CONSTRAINTS)


def test_the_defaults_pass_every_rule():
    config = QLoRAConfig()
    for name, (allowed, rule) in CONSTRAINTS.items():
        assert allowed(getattr(config, name)), (name, rule)


@pytest.mark.parametrize("name", sorted(_BAD))
def test_each_rule_refuses_a_bad_value_naming_the_field_and_the_rule(name):
    _, rule = CONSTRAINTS[name]
    with pytest.raises(RecipeError, match=rf"^QLoRAConfig\.{name} must be ") as caught:
        QLoRAConfig(**{name: _BAD[name]})
    assert rule in str(caught.value)
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize(
    ("optimizer", "args", "message"),
    [
        ("sgd", {"betas": (0.9, 0.99)}, r"optimizer_args\.betas is not an argument of sgd"),
        ("adamw", {"betas": (0.9, 1.0)}, r"optimizer_args\.betas must be two numbers in \[0, 1\)"),
        ("adam", {"amsgrad": 1}, r"optimizer_args\.amsgrad must be true or false"),
        ("sgd", {"momentum": -0.5}, r"optimizer_args\.momentum must be a non-negative number"),
        ("adamw", [("eps", 1e-8)], r"optimizer_args must be a mapping"),
    ],
)
def test_optimizer_arguments_are_checked_against_the_optimizer(optimizer, args, message):
    with pytest.raises(RecipeError, match=message):
        QLoRAConfig(optimizer=optimizer, optimizer_args=args)


def test_a_rule_between_two_fields_is_checked_after_the_table():
    with pytest.raises(RecipeError, match=r"answer_loss must be 'yes_no' with head='endpoint'"):
        QLoRAConfig(head="endpoint", answer_loss="vocab")
