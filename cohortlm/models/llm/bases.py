"""The base LLMs a run compares: readable names, and checks made before any training starts.

Seed 000 scores every base model twice, zero-shot and after QLoRA, on the same
patients. A run names each base once (``--base-model NAME=PATH``, or just
``PATH``, or ``default`` for the profile's model), and every output uses the
base's name for its zero-shot model and ``<name>+qlora`` for its fine-tuned
one: score files, Table 1, the figure's legend, the decision record, metric
labels.

A base is checked without loading its weights: the path exists, a GGUF file
carries a causal-LM architecture transformers can read, an HF folder's
``config.json`` names a causal LM; two bases may not share a name. Each
problem is a :class:`~cohortlm.errors.UsageError` (exit 2) naming the path and
what is wrong.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cohortlm.errors import UsageError
from cohortlm.models.llm.loading import DEFAULT_MODEL_NAME, TINY_BASE

__all__ = [
    "FINE_TUNED_SUFFIX",
    "BaseModel",
    "check_base",
    "check_bases",
    "fine_tuned_name",
    "parse_base",
    "parse_bases",
]

#: what a base's name gets for its fine-tuned model
FINE_TUNED_SUFFIX = "+qlora"
_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")
#: names the run's other models use
_RESERVED = ("baseline",)
#: GGUF architectures that are encoder-decoder or not models (transformers' GGUF table has them too)
_NOT_CAUSAL = {"general", "tokenizer", "t5", "umt5"}
_GGUF_MAGIC = b"GGUF"


@dataclass(frozen=True)
class BaseModel:
    """One base LLM of a run.

    Attributes:
        name: Readable, file-safe name (``smollm2-135m-instruct``); the zero-shot model's name.
        source: What the loader gets: a path, ``tiny`` or ``""`` (the profile's default).
    """

    name: str
    source: str

    @property
    def fine_tuned(self) -> str:
        """The fine-tuned model's name."""
        return fine_tuned_name(self.name)

    def item(self) -> str:
        """The pipeline parameter's form, ``NAME=SOURCE`` (what :func:`parse_base` reads)."""
        return f"{self.name}={self.source}"


def fine_tuned_name(base: str) -> str:
    """``smollm2-135m`` -> ``smollm2-135m+qlora``."""
    return base + FINE_TUNED_SUFFIX


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9._]+", "-", text.lower()).strip("-._")[:63]


def _default_name(source: str, profile_default: str | None) -> str:
    chosen = source or profile_default or ""
    if chosen in ("", "default"):
        return _slug(DEFAULT_MODEL_NAME)
    if chosen == TINY_BASE and not Path(TINY_BASE).exists():
        return TINY_BASE
    path = Path(chosen)
    return _slug(path.stem if path.suffix.lower() == ".gguf" else path.name)


def parse_base(item: str, *, profile_default: str | None = None) -> BaseModel:
    """A ``--base-model`` value: ``NAME=PATH``, ``PATH``, ``default`` or empty.

    Args:
        item: The value as given.
        profile_default: The profile's base model (``tiny`` or None), for an empty value.

    Raises:
        UsageError: The name is not a lower-case, file-safe word, or is reserved.
    """
    text = item.strip()
    name, sep, source = text.partition("=")
    if not sep:
        name, source = "", text
    source = source.strip()
    if source in ("", "default"):
        source = profile_default or ""
    name = name.strip() or _default_name(source, profile_default)
    if not _NAME.fullmatch(name):
        raise UsageError(
            f"--base-model {item!r}: the name {name!r} must be 1-63 lower-case letters, digits, '.', '_' "
            "or '-', starting with a letter or digit (give NAME=PATH)"
        )
    if name in _RESERVED or name.startswith("champion"):
        raise UsageError(
            f"--base-model {item!r}: {name!r} names another model of the run; choose another name"
        )
    return BaseModel(name=name, source=source)


def parse_bases(items: Sequence[str], *, profile_default: str | None = None) -> list[BaseModel]:
    """Every ``--base-model`` value (none: the profile's default), names unique.

    Raises:
        UsageError: Two bases share a name, or one is malformed (:func:`parse_base`).
    """
    bases = [parse_base(i, profile_default=profile_default) for i in (items or [""])]
    seen: dict[str, BaseModel] = {}
    for b in bases:
        if b.name in seen:
            first = seen[b.name].source or "the profile's default"
            raise UsageError(
                f"two base models are named {b.name!r} ({first} and {b.source or 'the default'}): "
                "give each its own name with --base-model NAME=PATH"
            )
        seen[b.name] = b
    return bases


def _gguf_architecture(path: Path) -> str:
    """``general.architecture`` of a GGUF file, read from its header (no tensors are loaded)."""
    with path.open("rb") as fh:
        if fh.read(4) != _GGUF_MAGIC:
            raise UsageError(
                f"base model {path}: not a GGUF file (no GGUF header): pass a .gguf model or an HF folder"
            )
    try:
        from gguf import GGUFReader

        reader = GGUFReader(str(path))
        field = reader.fields["general.architecture"]
        return bytes(field.parts[field.data[0]]).decode("utf-8", "replace")
    except KeyError:
        raise UsageError(f"base model {path}: the GGUF header has no general.architecture") from None
    except Exception as exc:  # a truncated or corrupt file: the reader raises several types
        raise UsageError(f"base model {path}: cannot read the GGUF header ({type(exc).__name__})") from None


def check_base(base: BaseModel) -> None:
    """Check a base without loading its weights (module docstring).

    Raises:
        UsageError: The path is missing, or it is not a causal LM that transformers reads.
    """
    source = base.source
    if source in ("", "default") or (source == TINY_BASE and not Path(TINY_BASE).exists()):
        return  # the profile's own model, checked where it is built or installed
    path = Path(source).expanduser()
    where = f"base model {base.name!r} ({path})"
    if not path.exists():
        raise UsageError(f"{where} does not exist: pass an HF model folder or a .gguf file")
    if path.is_file():
        if path.suffix.lower() != ".gguf":
            raise UsageError(f"{where} is a file but not .gguf: pass an HF model folder or a .gguf file")
        from transformers.integrations.ggml import GGUF_CONFIG_MAPPING

        arch = _gguf_architecture(path)
        causal = sorted(set(GGUF_CONFIG_MAPPING) - _NOT_CAUSAL)
        if arch not in causal:
            raise UsageError(
                f"{where}: GGUF architecture {arch!r} is not a causal LM transformers can load "
                f"(supported: {', '.join(causal)})"
            )
        return
    config = path / "config.json"
    if not config.is_file():
        raise UsageError(f"{where} has no config.json: pass an HF model folder or a .gguf file")
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise UsageError(f"{where}: config.json is not valid JSON") from None
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    archs = [str(a) for a in data.get("architectures") or []] if isinstance(data, dict) else []
    model_type = str(data.get("model_type", "")) if isinstance(data, dict) else ""
    causal_classes = set(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values())
    # The architectures the weights were saved as say what they are (a BertModel is an encoder,
    # though bert has a causal head class); without them, the model type must have a causal LM.
    is_causal = (
        any(a in causal_classes or a.endswith("ForCausalLM") for a in archs)
        if archs
        else model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
    )
    if not is_causal:
        raise UsageError(
            f"{where}: config.json describes {model_type or 'no model_type'}"
            f"{' (' + ', '.join(archs) + ')' if archs else ''}, not a causal LM"
        )


def check_bases(bases: Sequence[BaseModel]) -> None:
    """:func:`check_base` for each (the first problem raises)."""
    for b in bases:
        check_base(b)
