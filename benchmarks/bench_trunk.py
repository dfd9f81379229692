"""Benchmark: the frozen trunk per patient, old against new, in one process.

    .venv/bin/python benchmarks/bench_trunk.py [--patients 48] [--rounds 2] [--probe-train 0 --probe-test 0]
        [--out benchmarks/results/trunk.json]

The quick profile's cost is the frozen trunk: blocks ``0 .. split-1`` of
SmolLM2-135M over ``prefix + Q1..Q8`` once per patient
(:mod:`cohortlm.models.llm.trunk`). Since it already runs near this CPU's
matmul rate, it gets faster only by doing less work per patient. Each lever
is timed on the same patients (the RA study's synthetic cohort, its test
split), the variants interleaved round by round so that other load on the
machine hits them alike; the median round counts. Wall-clock rates on a machine
shared with other work swing with its load, so the CPU time of the process
(``time.process_time``: what the trunk itself spent, all threads) is reported
beside them as the steadier ratio:

* ``v1 unsorted``: the seed's prompt (version 1), batches in row order (padding);
* ``v1``: the same, batches sorted by length (what ``compute_states`` does);
* ``v2``: the compact prompt (version 2, :mod:`cohortlm.models.text`);
* ``v2, N blocks``: the compact prompt with the base cut to its first N blocks
  (``qlora.base_blocks``, :func:`cohortlm.models.llm.loading.keep_blocks`): N-1 frozen
  blocks below the adapted one (``--blocks``);
* ``... NF4``: the same with the base held in NF4 with double quantisation (the
  QLoRA recipe; the trunk's states then come from the NF4 base).

Reported per lever: tokens per patient (prefix + questions), patients/s, the
effective GFLOP/s (2 x the blocks' linear weights per token plus attention
scores, ``4 x tokens x context x hidden`` per block) and, as the ceiling, the
fp32 matmul rate of one of the model's MLP shapes measured in the same
process. With ``--probe-train/--probe-test`` each lever's states also get a
linear probe (standardised logistic regression, C 0.01, on each question's
last-token state) trained and tested on those patients: the AUC a read-out
there can reach (the quick profile's answer head starts as such a probe).

Writes ``trunk.json`` and ``trunk.md``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from machine import describe_machine


def matmul_gflops(tokens: int, hidden: int, inner: int, *, seconds: float = 2.0) -> float:
    """fp32 ``[tokens, hidden] @ [hidden, inner]`` rate on this machine (GFLOP/s), best of a few runs."""
    import torch

    a, b = torch.randn(tokens, hidden), torch.randn(hidden, inner)
    for _ in range(3):
        a @ b
    best, t_end = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < t_end:
        t0 = time.perf_counter()
        for _ in range(5):
            a @ b
        best = max(best, 5 * 2 * tokens * hidden * inner / (time.perf_counter() - t0) / 1e9)
    return best


def trunk_flops(model: Any, split_at: int, prefixes: list[list[int]], questions: list[list[int]]) -> float:
    """Arithmetic of blocks ``0 .. split_at-1`` for these patients (real tokens, no padding)."""
    from cohortlm.models.llm.trunk import causal_lm

    layers = list(causal_lm(model).model.layers)[:split_at]
    linear = sum(m.weight.numel() for layer in layers for m in layer.modules() if hasattr(m, "in_features"))
    hidden = causal_lm(model).config.hidden_size
    n_q = sum(len(q) for q in questions)
    total = 0.0
    for p in prefixes:
        tokens = len(p) + n_q
        # every token attends to the prefix (and its own question): ~len(p) keys per query
        total += split_at * (2 * linear * tokens / split_at + 4 * tokens * len(p) * hidden)
    return total


def probe_aucs(
    states: list[Any], prefixes: list[list[int]], q_ends: Any, labels: Any, n_train: int
) -> list[float]:
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    aucs = []
    for e in range(labels.shape[1]):
        x = np.stack([s.float().numpy()[len(p) + q_ends[e]] for s, p in zip(states, prefixes, strict=True)])
        y = labels[:, e]
        tr, te = np.arange(len(y)) < n_train, np.arange(len(y)) >= n_train
        tr, te = tr & ~np.isnan(y), te & ~np.isnan(y)
        if len(set(y[tr])) < 2 or len(set(y[te])) < 2:
            aucs.append(float("nan"))
            continue
        model = make_pipeline(
            StandardScaler(), LogisticRegression(C=0.01, max_iter=3000, class_weight="balanced")
        )
        model.fit(x[tr], y[tr])
        aucs.append(float(roc_auc_score(y[te], model.predict_proba(x[te])[:, 1])))
    return aucs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--patients", type=int, default=48, help="patients timed per lever and round")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds (the median counts)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--blocks", type=int, default=16, help="base blocks kept in the short levers")
    parser.add_argument(
        "--probe-train", type=int, default=0, help="patients to train the probes on (0: no probes)"
    )
    parser.add_argument("--probe-test", type=int, default=0, help="patients to test the probes on")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).resolve().parent / "results" / "trunk.json"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    import numpy as np
    import torch

    from cohortlm.cohort.featurise import featurise
    from cohortlm.cohort.split import split_table
    from cohortlm.cohort.study import load_study
    from cohortlm.cohort.synthetic import generate_cohort
    from cohortlm.models import text
    from cohortlm.models.bundle import check_feature_rows
    from cohortlm.models.llm import trunk
    from cohortlm.models.llm.loading import (
        autocast,
        autocast_dtype,
        load_base,
        load_causal_lm,
        load_tokenizer,
        resolve_base_model,
    )
    from cohortlm.models.llm.scoring import PromptTokens
    from cohortlm.run.profiles import get_profile

    spec = load_study("ra_iorra")
    prof = get_profile("quick")
    with tempfile.TemporaryDirectory() as tmp:
        generate_cohort(seed=0).write(Path(tmp) / "raw")
        df = split_table(featurise(Path(tmp) / "raw", spec).table, spec)
    n_probe = args.probe_train + args.probe_test
    pool = df[df["split"] == "test"].sample(n=max(args.patients, n_probe), random_state=0)
    rows = check_feature_rows(pool, spec)
    labels = spec.labels(pool).to_numpy(float)

    ref = resolve_base_model(prof.base_model, spec=spec)
    tok = load_tokenizer(ref)
    model = load_causal_lm(ref, device="cpu")
    nf4 = load_base(ref, device="cpu", quantization="nf4")
    models = {"none": model, "nf4": nf4}
    amp = autocast_dtype("cpu", prof.qlora.compute_dtype)
    split_full = trunk.split_point(model, prof.qlora.lora_layers) or trunk.num_layers(model) - 1
    cfg = causal_lm_config = trunk.causal_lm(model).config
    torch.manual_seed(0)
    if args.threads:
        torch.set_num_threads(args.threads)  # one thread: no spin-waiting between threads in the CPU time

    encoded = {}
    for version in ("1", "2"):
        tokens = PromptTokens.build(tok, spec, prompt_version=version)
        prefixes = tokens.encode_patients(tok, text.patient_texts(rows, spec, version=version))
        encoded[version] = (tokens, prefixes)
    short = args.blocks - 1
    levers = [
        ("v1 unsorted", "1", split_full, False, "none"),
        ("v1", "1", split_full, True, "none"),
        ("v2", "2", split_full, True, "none"),
        (f"v2, {args.blocks} blocks", "2", short, True, "none"),
        (f"v2, {args.blocks} blocks, NF4", "2", short, True, "nf4"),
    ]

    def run(
        version: str, split_at: int, sort: bool, idx: range, quant: str
    ) -> tuple[float, float, list[Any]]:
        model = models[quant]
        tokens, prefixes = encoded[version]
        sel = [prefixes[i] for i in idx]
        t0, c0 = time.perf_counter(), time.process_time()
        with torch.inference_mode(), autocast("cpu", amp):
            if sort:
                states = trunk.compute_states(
                    model, sel, tokens.questions, split_at=split_at, pad_id=tokens.pad_id, device="cpu",
                    batch_size=args.batch_size,
                )  # fmt: skip
            else:
                states = []
                for s in range(0, len(sel), args.batch_size):
                    states += trunk.trunk_states(
                        model, sel[s : s + args.batch_size], tokens.questions, split_at=split_at,
                        pad_id=tokens.pad_id,
                    )  # fmt: skip
        return time.perf_counter() - t0, time.process_time() - c0, states

    timed = range(args.patients)
    seconds: dict[str, list[float]] = {name: [] for name, *_ in levers}
    cpu_seconds: dict[str, list[float]] = {name: [] for name, *_ in levers}
    ceilings = []
    for r in range(args.rounds):
        ceilings.append(matmul_gflops(args.batch_size * 300, cfg.hidden_size, cfg.intermediate_size))
        for name, version, split_at, sort, quant in levers:
            secs, cpu, _ = run(version, split_at, sort, timed, quant)
            seconds[name].append(secs)
            cpu_seconds[name].append(cpu)
            print(
                f"round {r + 1}: {name}: {args.patients / secs:.3f} patients/s, "
                f"{args.patients / cpu:.3f} patients per CPU-second",
                flush=True,
            )
    ceiling = statistics.median(ceilings)

    results = []
    for name, version, split_at, _sort, quant in levers:
        tokens, prefixes = encoded[version]
        sel = [prefixes[i] for i in timed]
        secs = statistics.median(seconds[name])
        cpu = statistics.median(cpu_seconds[name])
        n_tokens = float(np.mean([len(p) for p in sel])) + sum(len(q) for q in tokens.questions)
        flops = trunk_flops(model, split_at, sel, tokens.questions)
        results.append(
            {
                "lever": name, "prompt_version": version, "frozen_blocks": split_at, "quantization": quant,
                "tokens_per_patient": round(n_tokens, 1), "patients_per_s": round(args.patients / secs, 3),
                "gflops": round(flops / secs / 1e9, 1), "seconds": [round(s, 2) for s in seconds[name]],
                "patients_per_cpu_s": round(args.patients / cpu, 3),
                "cpu_seconds": [round(s, 2) for s in cpu_seconds[name]],
            }
        )  # fmt: skip
    base, base_cpu = results[1]["patients_per_s"], results[1]["patients_per_cpu_s"]
    for row in results:
        row["speedup_vs_v1"] = round(row["patients_per_s"] / base, 2)
        row["cpu_speedup_vs_v1"] = round(row["patients_per_cpu_s"] / base_cpu, 2)
        row["gflops_of_ceiling"] = round(row["gflops"] / ceiling, 2)

    if n_probe:
        q_ends = {}
        for name, version, split_at, _sort, quant in levers[1:]:
            tokens, prefixes = encoded[version]
            q_ends = np.cumsum([len(q) for q in tokens.questions]) - 1
            _, _, states = run(version, split_at, True, range(n_probe), quant)
            aucs = probe_aucs(states, prefixes[:n_probe], q_ends, labels[:n_probe], args.probe_train)
            row = next(r for r in results if r["lever"] == name)
            row["probe_auc"] = dict(zip(spec.endpoint_names, [round(a, 3) for a in aucs], strict=True))
            row["probe_auc_mean"] = round(float(np.nanmean(aucs)), 3)
            print(f"probe {name}: mean AUC {row['probe_auc_mean']}", flush=True)

    report = {
        "benchmark": "frozen trunk per patient, old (prompt v1) against new (prompt v2), one process",
        "model": ref.name,
        "patients": args.patients,
        "rounds": args.rounds,
        "batch_size": args.batch_size,
        "autocast": str(amp),
        "threads": torch.get_num_threads(),
        "matmul_gflops_fp32": round(ceiling, 1),
        "matmul_shape": [
            args.batch_size * 300,
            causal_lm_config.hidden_size,
            causal_lm_config.intermediate_size,
        ],
        "probe_patients": {"train": args.probe_train, "test": args.probe_test},
        "levers": results,
        "machine": describe_machine(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    lines = [
        f"# Frozen trunk per patient ({ref.name}, {args.patients} test patients, median of {args.rounds} "
        f"interleaved rounds, batch {args.batch_size}, {torch.get_num_threads()} threads)",
        "",
        f"fp32 matmul ceiling in the same process: {ceiling:.1f} GFLOP/s "
        f"({args.batch_size * 300}x{cfg.hidden_size} @ {cfg.hidden_size}x{cfg.intermediate_size}).",
        "",
        "| lever | frozen blocks | tokens/patient | patients/s | x v1 | patients/CPU-s | x v1 (CPU) "
        "| GFLOP/s | of ceiling | probe AUC (mean) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in results:
        probe = row.get("probe_auc_mean", "")
        lines.append(
            f"| {row['lever']} | {row['frozen_blocks']} | {row['tokens_per_patient']} | "
            f"{row['patients_per_s']} | {row['speedup_vs_v1']} | {row['patients_per_cpu_s']} | "
            f"{row['cpu_speedup_vs_v1']} | {row['gflops']} | "
            f"{row['gflops_of_ceiling']:.0%} | {probe} |"
        )
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
