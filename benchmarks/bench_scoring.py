"""Benchmark: shared-prefix multi-endpoint scoring against one full prompt per endpoint.

    .venv/bin/python benchmarks/bench_scoring.py [--base-model PATH|tiny] [--patients 32]
        [--batch-size 8] [--repeats 3] [--out benchmarks/results/scoring.json]

Same model (default: SmolLM2-135M-Instruct, fp32 on CPU), same patients of the
synthetic RA cohort, same batch of patients per forward pass, one process.
Timed per patient (best of ``--repeats``, the three variants interleaved so
that a noisy neighbour slows them alike):

1. ``shared``: :func:`cohortlm.models.llm.scoring.endpoint_logits` for all 8 endpoints
   (patient text once, block mask, logits at the 8 question ends);
2. ``one_endpoint``: the same function with the first question only;
3. ``naive`` (the reference): a plain loop that builds one full prompt
   (patient text + question) per endpoint, 8 sequences per patient
   (:func:`cohortlm.models.llm.scoring.full_prompt_logits`).

Reported: seconds per patient for each, ``naive / shared`` (the speed-up) and
``shared / one_endpoint`` (what the 7 extra endpoints cost; the issue asks
for at most 2), tokens per patient, the largest difference in probability
between shared and naive, and the time to score 500 patients extrapolated
from ``shared`` (the issue's 3-minute budget).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from machine import describe_machine


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--base-model", default=None, help="HF folder, .gguf, or 'tiny'; default SmolLM2")
    parser.add_argument("--patients", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/scoring.json"))
    args = parser.parse_args(argv)

    import numpy as np
    import torch

    from cohortlm.cohort.featurise import featurise
    from cohortlm.cohort.study import load_study
    from cohortlm.cohort.synthetic import generate_cohort
    from cohortlm.models import text
    from cohortlm.models.llm import scoring

    spec = load_study("ra_iorra")
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        generate_cohort(n=max(400, 2 * args.patients), seed=0).write(tmp)
        table = featurise(tmp, spec).table.head(args.patients)
    scorer = scoring.zero_shot_scorer(args.base_model, spec)
    t = scorer.tokens
    prefixes = t.encode_patients(scorer.tokenizer, text.patient_texts(table, spec))
    batches = [prefixes[i : i + args.batch_size] for i in range(0, len(prefixes), args.batch_size)]

    def run(kind: str) -> tuple[float, Any]:
        outs = []
        start = time.perf_counter()
        with torch.inference_mode():
            for b in batches:
                if kind == "shared":
                    outs.append(scoring.endpoint_logits(scorer.model, b, t.questions, pad_id=t.pad_id))
                elif kind == "one_endpoint":
                    outs.append(scoring.endpoint_logits(scorer.model, b, t.questions[:1], pad_id=t.pad_id))
                else:
                    outs.append(scoring.full_prompt_logits(scorer.model, b, t.questions, pad_id=t.pad_id))
        return (time.perf_counter() - start) / len(prefixes), torch.cat(outs)

    run("shared")  # warm-up
    best: dict[str, float] = {}
    results: dict[str, Any] = {}
    for _ in range(args.repeats):
        for kind in ("shared", "naive", "one_endpoint"):
            seconds, logits = run(kind)
            best[kind] = min(best.get(kind, float("inf")), seconds)
            results[kind] = logits
    p_shared = scoring.yes_probability(results["shared"], t.yes_id, t.no_id)
    p_naive = scoring.yes_probability(results["naive"], t.yes_id, t.no_id)
    prefix_tokens = float(np.mean([len(p) for p in prefixes]))
    question_tokens = [len(q) for q in t.questions]
    out = {
        "benchmark": "multi-endpoint scoring: shared patient prefix vs one full prompt per endpoint",
        "model": scorer.name,
        "device": scorer.device,
        "patients": len(prefixes),
        "endpoints": len(t.questions),
        "batch_size_patients": args.batch_size,
        "repeats": args.repeats,
        "tokens_per_patient": {
            "patient_text_mean": prefix_tokens,
            "questions": question_tokens,
            "shared": prefix_tokens + sum(question_tokens),
            "naive": len(question_tokens) * prefix_tokens + sum(question_tokens),
        },
        "seconds_per_patient": best,
        "ratio_naive_over_shared": best["naive"] / best["shared"],
        "ratio_8_endpoints_over_1": best["shared"] / best["one_endpoint"],
        "seconds_for_500_patients_shared": 500 * best["shared"],
        "max_abs_probability_difference_shared_vs_naive": float(np.abs(p_shared - p_naive).max()),
        "machine": describe_machine(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps({k: v for k, v in out.items() if k != "machine"}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
