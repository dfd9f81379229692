"""A tiny random causal LM built in code, for the ``smoke`` profile and the tests.

Nothing is downloaded. The tokenizer is a word-level vocabulary made from the
study spec alone (the words of the prompt template, feature labels, units,
categories and questions, single digits and punctuation), so it covers every
prompt :mod:`cohortlm.models.text` can write for that study and is the same on every
machine. The model is a two-layer Llama with random weights from a fixed
seed. Both are saved as an ordinary Hugging Face folder, so the rest of the
code loads the tiny model exactly like a real one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

from cohortlm.cohort.study import StudySpec
from cohortlm.models import text

TINY_NAME = "tiny-llama"
_SPECIALS = ["[PAD]", "[UNK]", "[BOS]", "[EOS]"]
_PUNCT = list(".,:;()<>=/-+%?!'\"[]") + [str(d) for d in range(10)]
TINY_CONFIG: dict[str, Any] = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 2048,
    "tie_word_embeddings": True,
}


def _pre_tokenizer() -> Any:
    from tokenizers import pre_tokenizers

    # words, runs of punctuation, and every digit on its own: any number is spelt from 0-9
    return pre_tokenizers.Sequence(
        [pre_tokenizers.Whitespace(), pre_tokenizers.Digits(individual_digits=True)]
    )


def spec_vocabulary(spec: StudySpec) -> list[str]:
    """The tiny tokenizer's vocabulary for ``spec``: specials, digits, punctuation, then words."""
    corpus = [text.HEADER, text.MISSING, "yes no Answer Question", *text.ANSWERS, *text.questions(spec)]
    for f in spec.features:
        corpus += [text.feature_label(f), f.group.replace("_", " ").capitalize(), f.unit or ""]
        corpus += list(f.categories or ())
    words: list[str] = []
    pre = _pre_tokenizer()
    for line in corpus:
        words += [w for w, _ in pre.pre_tokenize_str(line)]
    vocab = list(dict.fromkeys([*_SPECIALS, *_PUNCT, *sorted(set(words))]))
    return vocab


def build_tiny_tokenizer(spec: StudySpec) -> Any:
    """A ``PreTrainedTokenizerFast`` (word level) built offline from the spec's words."""
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    vocab = spec_vocabulary(spec)
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(vocab)}, unk_token="[UNK]"))
    tok.pre_tokenizer = _pre_tokenizer()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", bos_token="[BOS]", eos_token="[EOS]"
    )


def build_tiny_model(spec: StudySpec, folder: str | Path, *, seed: int = 0) -> Path:
    """Write a tiny random Llama and its tokenizer for ``spec`` to ``folder`` (an HF folder)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = build_tiny_tokenizer(spec)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        **TINY_CONFIG,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def tiny_model_folder(spec: StudySpec, *, seed: int = 0, root: Path | None = None) -> Path:
    """The tiny model for ``spec`` in the model cache, built on first use.

    The folder name is a hash of the vocabulary, the architecture and the seed,
    so a spec with other words gets another model.
    """
    from cohortlm.models.llm.cache import cache_root

    key = json.dumps({"vocab": spec_vocabulary(spec), "config": TINY_CONFIG, "seed": seed}, sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    target = (root or cache_root()) / f"{TINY_NAME}-{digest}"
    if (target / "config.json").is_file():
        return target
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    build_tiny_model(spec, tmp, seed=seed)
    if target.exists():  # another process won the race; theirs is identical
        shutil.rmtree(tmp, ignore_errors=True)
        return target
    tmp.rename(target)
    return target
