"""The GPU path measured: NF4 QLoRA and scoring on the default model, then on the largest offline model.

Run through ``benchmarks/gpu_check.sh`` (which bounds it to under 8 minutes).
Every stage is timed and recorded in ``gpu.json`` even when a later one
fails; a stage that needs CUDA on a machine without it is recorded as
skipped, with the reason.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from machine import describe_machine

DEADLINE_S = 450  # stop starting new stages after this (the shell wrapper kills at 470 s)


def _cohort(spec: Any, n_train: int, n_test: int) -> tuple[Any, Any]:
    from cohortlm.cohort.featurise import featurise
    from cohortlm.cohort.split import split_table
    from cohortlm.cohort.synthetic import generate_cohort

    with tempfile.TemporaryDirectory() as tmp:
        generate_cohort(seed=0).write(Path(tmp) / "raw")
        df = split_table(featurise(Path(tmp) / "raw", spec).table, spec)
    train = df[df["split"] == "train"].sample(n=n_train, random_state=0).sort_index()
    test = df[df["split"] == "test"].sample(n=n_test, random_state=0).sort_index()
    return train, test


def _aucs(spec: Any, rows: Any, probs: Any) -> dict[str, float]:
    from sklearn.metrics import roc_auc_score

    labels = spec.labels(rows)
    out = {}
    for e in spec.endpoint_names:
        keep = labels[e].notna().to_numpy()
        y = labels[e].to_numpy()[keep].astype(int)
        out[e] = float(roc_auc_score(y, probs[e].to_numpy()[keep])) if 0 < y.sum() < len(y) else float("nan")
    return out


def default_model_stage(spec: Any, cuda: bool, n_train: int, n_test: int, steps: int) -> dict[str, Any]:
    """NF4 QLoRA (CUDA) or LoRA (CPU) on the default model; zero-shot and fine-tuned test AUCs."""
    import torch

    from cohortlm.models.llm.qlora import train_qlora
    from cohortlm.models.llm.recipe import QLoRAConfig
    from cohortlm.models.llm.scoring import LLMScorer, zero_shot_scorer

    train, test = _cohort(spec, n_train, n_test)
    cfg = QLoRAConfig(
        quantization="nf4" if cuda else "none", lora_layers=None if cuda else 1, learning_rate=1e-3,
        batch_size=8, grad_accum=1, max_steps=steps, checkpoint_every=10_000,
        class_weight="balanced", head="endpoint",
    )  # fmt: skip
    t0 = time.perf_counter()
    zs = zero_shot_scorer(
        None,
        spec,
        compute_dtype=cfg.compute_dtype,
        lora_layers=cfg.lora_layers,
        quantization=cfg.quantization,
    )  # the zero-shot base held as the fine-tuned one (NF4 on CUDA)
    zero = zs.score(test, batch_size=16, progress=True)
    zero_s = time.perf_counter() - t0
    del zs
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    with tempfile.TemporaryDirectory() as tmp:
        bundle = train_qlora(train, spec, cfg, out_dir=Path(tmp) / "b", base_model=None, progress=True)
        meta = json.loads((bundle / "bundle.json").read_text())
        t1 = time.perf_counter()
        tuned = LLMScorer.from_bundle(bundle, spec, meta, cache_trunk=not cuda).score(test, batch_size=16)
        tuned_s = time.perf_counter() - t1
    training = meta["training"]
    return {
        "model": meta["model_name"],
        "method": training["method"],
        "quantization": training["quantization"],
        "compute_dtype": training["compute_dtype"],
        "n_train": training["n_train"],
        "steps": training["steps"],
        "train_tokens_per_s": training["tokens_per_s"],
        "train_peak_memory_mib": training["peak_memory_mib"],
        "train_seconds": training["train_seconds"],
        "n_test": len(test),
        "zero_shot_patients_per_s": len(test) / zero_s,
        "fine_tuned_patients_per_s": len(test) / tuned_s,
        "test_auc_zero_shot": _aucs(spec, test, zero),
        "test_auc_fine_tuned": _aucs(spec, test, tuned),
    }


def large_model_stage(spec: Any, layers: int, hidden: int, steps: int) -> dict[str, Any]:
    """A random Llama of the given shape, saved as an HF folder, then QLoRA-trained by the project's code."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from cohortlm.models.llm.loading import load_tokenizer, resolve_base_model
    from cohortlm.models.llm.qlora import train_qlora
    from cohortlm.models.llm.recipe import QLoRAConfig

    tok = load_tokenizer(resolve_base_model(None, spec=spec))
    config = LlamaConfig(
        vocab_size=len(tok), hidden_size=hidden, intermediate_size=int(hidden * 2.6875) // 256 * 256,
        num_hidden_layers=layers, num_attention_heads=hidden // 128, num_key_value_heads=hidden // 128,
        max_position_embeddings=4096, torch_dtype="bfloat16",
    )  # fmt: skip
    n_params = None
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR")) as tmp:
        folder = Path(tmp) / "random-llama"
        t0 = time.perf_counter()
        with torch.device("cuda"):
            model = LlamaForCausalLM(config).to(torch.bfloat16)
        n_params = sum(p.numel() for p in model.parameters())
        model.save_pretrained(folder)
        tok.save_pretrained(folder)
        del model
        torch.cuda.empty_cache()
        build_s = time.perf_counter() - t0
        train, _ = _cohort(spec, 64, 8)
        cfg = QLoRAConfig(
            quantization="nf4", learning_rate=2e-4, batch_size=4, grad_accum=1, max_steps=steps,
            checkpoint_every=10_000, gradient_checkpointing=True,
        )  # fmt: skip
        torch.cuda.reset_peak_memory_stats()
        bundle = train_qlora(train, spec, cfg, out_dir=Path(tmp) / "b", base_model=folder, progress=True)
        training = json.loads((bundle / "bundle.json").read_text())["training"]
    return {
        "shape": {"layers": layers, "hidden": hidden, "parameters": n_params},
        "build_seconds": build_s,
        "method": training["method"],
        "steps": training["steps"],
        "train_tokens_per_s": training["tokens_per_s"],
        "train_peak_memory_mib": training["peak_memory_mib"],
        "note": "random weights: throughput and memory only, no AUC",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/gpu.json"))
    parser.add_argument("--train", type=int, default=800)
    parser.add_argument("--test", type=int, default=400)
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    import torch

    from cohortlm.cohort.study import load_study
    from cohortlm.models.llm.loading import four_bit_available

    started = time.perf_counter()
    cuda = torch.cuda.is_available()
    spec = load_study("ra_iorra")
    result: dict[str, Any] = {"machine": describe_machine(), "cuda": cuda, "stages": {}, "skipped": []}
    if cuda:
        ok, why = four_bit_available("cuda")
        result["bitsandbytes_4bit"] = {"ok": ok, "reason": why}
    else:
        msg = (
            "no CUDA device: NF4 QLoRA, GPU scoring and the large model skipped; default model on CPU (LoRA)"
        )
        print(msg, flush=True)
        result["skipped"].append(msg)

    def stage(name: str, fn: Any, *a: Any) -> None:
        if time.perf_counter() - started > DEADLINE_S:
            result["skipped"].append(f"{name}: out of time")
            return
        t = time.perf_counter()
        try:
            result["stages"][name] = {**fn(*a), "wall_seconds": round(time.perf_counter() - t, 1)}
        except Exception as exc:  # record and go on: one failing stage must not hide the others
            result["stages"][name] = {
                "error": f"{type(exc).__name__}: {exc}",
                "trace": traceback.format_exc(),
            }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2, default=str))

    if cuda:
        stage("default_model", default_model_stage, spec, True, args.train, args.test, args.steps)
        free, _total = torch.cuda.mem_get_info()
        # 7B shape in bf16 needs ~14 GB to build; shrink the depth where the GPU is smaller
        layers = 32 if free > 40 * 2**30 else max(4, int(32 * free / (40 * 2**30)))
        stage("large_model", large_model_stage, spec, layers, 4096, 20)
    else:
        stage("default_model_cpu", default_model_stage, spec, False, 64, 64, 8)
    result["total_seconds"] = round(time.perf_counter() - started, 1)
    args.out.write_text(json.dumps(result, indent=2, default=str))
    print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=2, default=str)[:4000])
    return 0


if __name__ == "__main__":
    sys.exit(main())
