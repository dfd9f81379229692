"""Benchmark: (Q)LoRA training throughput, packed endpoints against a plain HF + PEFT loop.

    .venv/bin/python benchmarks/bench_qlora.py [--base-model PATH|tiny] [--patients 8]
        [--batch-size 4] [--lora-layers N] [--repeats 2] [--out benchmarks/results/qlora.json]

Same base model (default SmolLM2-135M-Instruct; fp32 on CPU, bf16 on CUDA),
same LoRA (rank 16, all seven projections of the ``--lora-layers`` last
blocks, default 8 as in the quick profile; 0 for all), same patients, one optimizer step per micro-batch of
``--batch-size`` patients, in one process. Timed per training example (one
patient x one endpoint), best of ``--repeats``, variants interleaved:

1. ``packed`` (cohortlm): :func:`cohortlm.models.llm.scoring.endpoint_logits` over
   ``patient text + Q1..Q8`` with the block mask, cross-entropy on the 8
   answer tokens, backward, AdamW step;
2. ``plain`` (the reference): the usual HF + PEFT recipe, one full prompt
   ``patient text + question + answer`` per endpoint (8 sequences per
   patient, right-padded), ``labels`` = -100 everywhere except the answer
   token, ``model(input_ids, attention_mask, labels).loss``, backward, step.

Reported: examples/s and processed tokens/s for each, ``packed / plain``
(examples/s), peak memory (RSS on CPU, allocated on CUDA), and the seconds a
``quick``-profile run would take at the measured speed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
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
    parser.add_argument("--patients", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument(
        "--lora-layers", type=int, default=8, help="adapt the last N blocks (the quick profile's 8); 0 = all"
    )
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/qlora.json"))
    args = parser.parse_args(argv)

    import numpy as np
    import torch

    from cohortlm.cohort.featurise import featurise
    from cohortlm.cohort.study import load_study
    from cohortlm.cohort.synthetic import generate_cohort
    from cohortlm.models import text
    from cohortlm.models.llm import scoring
    from cohortlm.models.llm.loading import pick_device, resolve_base_model
    from cohortlm.models.llm.qlora import load_for_training, peak_memory_mb
    from cohortlm.models.llm.recipe import QLoRAConfig
    from cohortlm.run.profiles import PROFILES

    spec = load_study("ra_iorra")
    with tempfile.TemporaryDirectory() as tmp:
        generate_cohort(n=400, seed=0).write(tmp)
        table = featurise(tmp, spec).table.head(args.patients)
    labels = spec.labels(table).to_numpy(dtype=float)
    ref = resolve_base_model(args.base_model, spec=spec)
    device = pick_device(None)
    config = QLoRAConfig(lora_layers=args.lora_layers or None, lora_dropout=0.0, batch_size=args.batch_size)
    model, tokenizer, quant = load_for_training(ref, config, device)
    tokens = scoring.PromptTokens.build(tokenizer, spec)
    prefixes = tokens.encode_patients(tokenizer, text.patient_texts(table, spec))
    answers = np.where(labels >= 0.5, tokens.yes_id, tokens.no_id)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    model.train()
    batches = [
        np.arange(i, min(i + args.batch_size, len(prefixes)))
        for i in range(0, len(prefixes), args.batch_size)
    ]

    def packed_step(idx: np.ndarray) -> int:
        logits = endpoint_logits_for(idx)
        y = torch.as_tensor(answers[idx], device=device)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), y.reshape(-1))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return sum(len(prefixes[i]) for i in idx) + len(idx) * sum(len(q) for q in tokens.questions)

    def endpoint_logits_for(idx: np.ndarray) -> Any:
        return scoring.endpoint_logits(
            model, [prefixes[i] for i in idx], tokens.questions, pad_id=tokens.pad_id, device=device
        )

    def plain_step(idx: np.ndarray) -> int:
        seqs, targets = [], []
        for i in idx:
            for e, q in enumerate(tokens.questions):
                seqs.append([*prefixes[i], *q, int(answers[i, e])])
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), tokens.pad_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        lab = torch.full_like(ids, -100)
        for r, s in enumerate(seqs):
            ids[r, : len(s)] = torch.tensor(s)
            mask[r, : len(s)] = 1
            lab[r, len(s) - 1] = s[-1]  # loss on the answer token only
            targets.append(s[-1])
        out = model(input_ids=ids.to(device), attention_mask=mask.to(device), labels=lab.to(device))
        out.loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return int(mask.sum())

    def run(kind: str) -> tuple[float, int]:
        step = packed_step if kind == "packed" else plain_step
        n_tokens = 0
        start = time.perf_counter()
        for idx in batches:
            n_tokens += step(idx)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        return time.perf_counter() - start, n_tokens

    run("packed")  # warm-up
    best: dict[str, tuple[float, int]] = {}
    for _ in range(args.repeats):
        for kind in ("packed", "plain"):
            seconds, n_tokens = run(kind)
            if kind not in best or seconds < best[kind][0]:
                best[kind] = (seconds, n_tokens)
    n_examples = len(prefixes) * len(tokens.questions)
    summary = {
        kind: {
            "seconds": s,
            "examples_per_s": n_examples / s,
            "patients_per_s": len(prefixes) / s,
            "tokens_per_s": n / s,
            "tokens_per_patient": n / len(prefixes),
        }
        for kind, (s, n) in best.items()
    }
    quick = PROFILES["quick"].qlora
    quick_patients = (quick.max_steps or 0) * quick.batch_size * quick.grad_accum
    out = {
        "benchmark": "LoRA training: packed endpoints (block mask) vs plain HF+PEFT one prompt per endpoint",
        "model": ref.name,
        "device": device,
        "quantization": quant,
        "lora_layers": args.lora_layers,
        "patients": len(prefixes),
        "endpoints": len(tokens.questions),
        "batch_size_patients": args.batch_size,
        "repeats": args.repeats,
        "results": summary,
        "ratio_packed_over_plain_examples_per_s": summary["packed"]["examples_per_s"]
        / summary["plain"]["examples_per_s"],
        "peak_memory_mib": peak_memory_mb(device),
        "peak_memory_kind": "CUDA allocated" if device.startswith("cuda") else "process RSS",
        "quick_profile_patient_passes": quick_patients,
        "quick_profile_train_seconds_estimate": quick_patients / summary["packed"]["patients_per_s"],
        "machine": describe_machine(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps({k: v for k, v in out.items() if k != "machine"}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
