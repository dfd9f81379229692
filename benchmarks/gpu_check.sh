#!/usr/bin/env bash
# The GPU path, measured in one go (under 8 minutes on one GPU):
#   bash benchmarks/gpu_check.sh [--out benchmarks/results/gpu.json]
# 1. the default model (SmolLM2-135M): NF4 double-quantised QLoRA (bitsandbytes) on
#    every block, then zero-shot and fine-tuned scoring of test patients: tokens/s,
#    peak GPU memory, test AUCs;
# 2. the largest model it can build offline: a random-weight Llama of 7B shape
#    (no download; shrunk to fit the free GPU memory), through the same NF4 loading
#    and training code: tokens/s and peak memory (its AUCs mean nothing).
# On a machine without CUDA it runs what it can on the CPU, says which CUDA parts it
# skipped, and still writes the JSON. Needs the project's venv (`make venv`).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
[ -x "$PY" ] || PY=python3
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
exec timeout 470 "$PY" benchmarks/gpu_check.py "$@"
