"""Benchmark: fp32 against bf16 autocast on this CPU, for the passes the quick profile runs.

    .venv/bin/python benchmarks/bench_dtype.py [--patients 8] [--repeats 3]
        [--out benchmarks/results/dtype.json]

Same model (SmolLM2-135M-Instruct, fp32 weights), same 8 patients' packed
prompts (patient text + 8 questions, block mask), one process, best of
``--repeats``, the two dtypes interleaved. Passes timed:

1. ``full_forward``: all 30 blocks (the uncached scorer);
2. ``trunk``: blocks 0-25 (the frozen trunk, computed once per patient);
3. ``top4_forward``: blocks 26-29 + head on cached states (cached scoring);
4. ``top4_forward_backward``: the same with LoRA (rank 16) and a backward pass (a training step).

Reported: seconds per pass for each dtype, the fp32/bf16 ratio, and how far
bf16 moves the scores: the largest difference in P(Yes) over the patients and
endpoints, and the AUC difference on ``--auc-patients`` test patients.
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
    parser.add_argument("--patients", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--auc-patients", type=int, default=160)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/dtype.json"))
    args = parser.parse_args(argv)

    import numpy as np
    import torch
    from peft import LoraConfig, get_peft_model
    from sklearn.metrics import roc_auc_score

    from cohortlm.cohort.featurise import featurise
    from cohortlm.cohort.split import split_table
    from cohortlm.cohort.study import load_study
    from cohortlm.cohort.synthetic import generate_cohort
    from cohortlm.models import text
    from cohortlm.models.llm import trunk
    from cohortlm.models.llm.loading import cpu_has_bf16, load_causal_lm, load_tokenizer, resolve_base_model
    from cohortlm.models.llm.scoring import PromptTokens, endpoint_logits, yes_probability

    spec = load_study("ra_iorra")
    with tempfile.TemporaryDirectory() as tmp:
        generate_cohort(seed=0).write(Path(tmp) / "raw")
        df = split_table(featurise(Path(tmp) / "raw", spec).table, spec)
    test = df[df["split"] == "test"].sample(n=args.auc_patients, random_state=0)
    ref = resolve_base_model(None, spec=spec)
    tok = load_tokenizer(ref)
    model = load_causal_lm(ref, device="cpu")
    pt = PromptTokens.build(tok, spec)
    prefixes = pt.encode_patients(tok, text.patient_texts(test, spec))
    batch = prefixes[: args.patients]
    split_at = trunk.num_layers(model) - 4
    contexts = {
        "fp32": lambda: torch.autocast("cpu", enabled=False),
        "bf16": lambda: torch.autocast("cpu", dtype=torch.bfloat16),
    }

    def best(fn: Any) -> float:
        times = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        return min(times)

    with torch.no_grad():
        states = trunk.trunk_states(model, batch, pt.questions, split_at=split_at, pad_id=pt.pad_id)
    peft_model = get_peft_model(
        model,
        LoraConfig(r=16, lora_alpha=32, target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                   "up_proj", "down_proj"], layers_to_transform=list(range(split_at, split_at + 4)),
                   layers_pattern="layers"),
    )  # fmt: skip
    timings: dict[str, dict[str, float]] = {}
    for _ in range(1):
        for name, ctx in contexts.items():

            def full(ctx: Any = ctx) -> None:
                with torch.no_grad(), ctx():
                    endpoint_logits(peft_model, batch, pt.questions, pad_id=pt.pad_id)

            def trunk_pass(ctx: Any = ctx) -> None:
                with torch.no_grad(), ctx():
                    trunk.trunk_states(peft_model, batch, pt.questions, split_at=split_at, pad_id=pt.pad_id)

            def top(ctx: Any = ctx) -> None:
                with torch.no_grad(), ctx():
                    trunk.top_logits(
                        peft_model, states, batch, pt.questions, split_at=split_at, pad_id=pt.pad_id
                    )

            def top_train(ctx: Any = ctx) -> None:
                with ctx():
                    lg = trunk.top_logits(
                        peft_model, states, batch, pt.questions, split_at=split_at, pad_id=pt.pad_id
                    )
                lg[..., pt.yes_id].float().mean().backward()

            timings[name] = {
                "full_forward": best(full),
                "trunk": best(trunk_pass),
                "top4_forward": best(top),
                "top4_forward_backward": best(top_train),
            }
    # score agreement on more patients
    probs = {}
    for name, ctx in contexts.items():
        out = []
        with torch.no_grad(), ctx():
            for i in range(0, len(prefixes), 8):
                out.append(
                    yes_probability(
                        endpoint_logits(model, prefixes[i : i + 8], pt.questions, pad_id=pt.pad_id),
                        pt.yes_id,
                        pt.no_id,
                    )
                )
        probs[name] = np.concatenate(out)
    labels = spec.labels(test).to_numpy()
    auc_diff = []
    for e in range(labels.shape[1]):
        keep = ~np.isnan(labels[:, e])
        y = labels[keep, e].astype(int)
        if 0 < y.sum() < len(y):
            auc_diff.append(
                abs(roc_auc_score(y, probs["fp32"][keep, e]) - roc_auc_score(y, probs["bf16"][keep, e]))
            )
    report = {
        "benchmark": "fp32 vs bf16 autocast, SmolLM2-135M, packed prompts, CPU",
        "cpu_has_native_bf16": cpu_has_bf16(),
        "patients_per_pass": len(batch),
        "tokens_per_patient": float(np.mean([len(p) for p in batch]) + sum(len(q) for q in pt.questions)),
        "seconds": timings,
        "fp32_over_bf16": {k: timings["fp32"][k] / timings["bf16"][k] for k in timings["fp32"]},
        "max_abs_probability_difference": float(np.abs(probs["fp32"] - probs["bf16"]).max()),
        "max_abs_auc_difference": float(max(auc_diff)),
        "auc_patients": len(prefixes),
        "machine": describe_machine(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(json.dumps({k: v for k, v in report.items() if k != "machine"}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
