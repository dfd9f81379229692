"""Benchmark: the learning curve of the fine-tune, against its zero-shot base and the baseline.

    .venv/bin/python benchmarks/bench_learning.py [--sizes 250,500,1000,2000] [--test 1000]
        [--profile quick] [--base-model PATH] [--out benchmarks/results/learning.json]

For each number of training patients (nested seeded subsets of the RA study's
training split, the synthetic cohort of ``cohortlm run``), in one process:

* the logistic-regression baseline trained on exactly those patients;
* the profile's fine-tune (``--profile``'s QLoRAConfig with ``max_train_rows``
  set to the size) of the base model, through the same code as the pipeline
  (:func:`cohortlm.models.llm.qlora.train_qlora`, frozen trunk cached);
* the zero-shot base model (the same at every size).

All are scored on the same seeded ``--test`` patients of the test split; per
endpoint the test AUC, and the fine-tuned model against its zero-shot base
(paired DeLong, one-sided, Holm over the endpoints: the count of endpoints
where fine-tuning significantly helped). Wall time per size is split into the
frozen trunk of the new training patients, the training loop and scoring.

Writes ``learning.json``, ``learning.md`` (the table) and ``learning.png``
(mean AUC and per-endpoint fine-tuned AUC against training size).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from machine import describe_machine


def _aucs(labels: Any, scores: Any, endpoints: list[str]) -> dict[str, float]:
    from sklearn.metrics import roc_auc_score

    out = {}
    for e in endpoints:
        keep = labels[e].notna()
        out[e] = float(roc_auc_score(labels[e][keep].astype(int), scores[e][keep]))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="250,500,1000,2000")
    parser.add_argument("--test", type=int, default=1000, help="test patients scored (seeded subset)")
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--base-model", default=None)
    parser.add_argument(
        "--split-table",
        type=Path,
        default=None,
        help="a run's split.parquet (runs/<id>/split.parquet): the same patients as that run, so its "
        "frozen-trunk cache is reused; default: build the cohort here",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override a QLoRAConfig field of the profile (repeatable), e.g. --set learning_rate=1e-2",
    )
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/learning.json"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")

    import numpy as np
    import pandas as pd

    from cohortlm.cohort.featurise import featurise
    from cohortlm.cohort.split import split_table
    from cohortlm.cohort.study import load_study
    from cohortlm.cohort.synthetic import generate_cohort
    from cohortlm.evaluation.comparisons import paired_comparison
    from cohortlm.models.baseline import train_baseline
    from cohortlm.models.llm.qlora import select_training_rows, train_qlora
    from cohortlm.models.llm.scoring import LLMScorer, zero_shot_scorer
    from cohortlm.run.profiles import eval_subset, get_profile

    spec = load_study("ra_iorra")
    prof = get_profile(args.profile)
    if args.set:
        changes = {k: _value(v) for k, v in (item.split("=", 1) for item in args.set)}
        prof = replace(prof, qlora=prof.qlora.with_overrides(**changes))
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.split_table is not None:
        df = pd.read_parquet(args.split_table)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            generate_cohort(seed=0).write(Path(tmp) / "raw")
            df = split_table(featurise(Path(tmp) / "raw", spec).table, spec)
    train = df[df["split"] == "train"]
    # the pipeline's own choice of test patients (eval_subset, seed 0)
    test = eval_subset(df[df["split"] == "test"], replace(prof, eval_rows=args.test))
    labels = spec.labels(test).set_axis(test[spec.id_column].to_numpy())
    eps = spec.endpoint_names

    def frame(probs: pd.DataFrame) -> pd.DataFrame:
        return probs.set_axis(test[spec.id_column].to_numpy())

    base = prof.base_model_or(args.base_model)
    t0 = time.perf_counter()
    zs = zero_shot_scorer(
        base, spec, compute_dtype=prof.qlora.compute_dtype,
        lora_layers=prof.qlora.lora_layers if prof.qlora.cache_trunk else None,
    )  # fmt: skip
    zero = frame(zs.score(test, batch_size=prof.score_batch_size, progress=True))
    zero_seconds = time.perf_counter() - t0
    zero_auc = _aucs(labels, zero, eps)
    del zs
    results: list[dict[str, Any]] = []
    for size in sizes:
        cfg = prof.qlora.with_overrides(max_train_rows=size)
        rows = select_training_rows(train, spec, cfg)
        base_probs = frame(train_baseline(rows, spec).predict_proba(test))
        with tempfile.TemporaryDirectory() as tmp:
            t1 = time.perf_counter()
            bundle = train_qlora(train, spec, cfg, out_dir=Path(tmp) / "b", base_model=base, progress=True)
            train_wall = time.perf_counter() - t1
            meta = json.loads((bundle / "bundle.json").read_text())
            t2 = time.perf_counter()
            scorer = LLMScorer.from_bundle(bundle, spec, meta, cache_trunk=True)
            tuned = frame(scorer.score(test, batch_size=prof.score_batch_size, progress=True))
            score_wall = time.perf_counter() - t2
            del scorer
        comp = paired_comparison(labels, tuned, zero, endpoints=eps, alternative="greater", adjustment="holm")
        training = meta["training"]
        result = {
            "n_train": len(rows),
            "steps": training["steps"],
            "auc": {
                "baseline": _aucs(labels, base_probs, eps),
                "zero_shot": zero_auc,
                "fine_tuned": _aucs(labels, tuned, eps),
            },
            "fine_tuned_vs_zero_shot": comp.to_dict(orient="records"),
            "n_significant": int(comp["significant"].sum()),
            "seconds": {
                "trunk_new_patients": round(training["trunk_seconds"], 1),
                "train_loop": round(training["train_seconds"], 1),
                "train_wall": round(train_wall, 1),
                "score_test": round(score_wall, 1),
            },
            "first_loss": training["first_loss"],
            "final_loss": training["final_loss"],
        }
        results.append(result)
        means = {k: round(float(np.mean(list(v.values()))), 3) for k, v in result["auc"].items()}
        print(f"n_train {size}: mean AUC {means}, significant {result['n_significant']}/8, "
              f"{result['seconds']}", flush=True)  # fmt: skip
    report = {
        "benchmark": "learning curve: fine-tuned vs zero-shot vs baseline, same test patients",
        "profile": args.profile,
        "config": prof.qlora.to_dict(),
        "n_test": len(test),
        "test_cases": {e: int(labels[e].sum()) for e in eps},
        "zero_shot_seconds": round(zero_seconds, 1),
        "results": results,
        "machine": describe_machine(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    args.out.with_suffix(".md").write_text(_markdown(report, eps))
    _plot(report, eps, args.out.with_suffix(".png"))
    print(args.out.with_suffix(".md").read_text())
    return 0


def _value(text: str) -> Any:
    """A --set value: int, float, true/false/none, a comma list (a tuple), else the string."""
    if "," in text:
        return tuple(part.strip() for part in text.split(",") if part.strip())
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False, "none": None}.get(text.lower(), text)


def _markdown(report: dict[str, Any], eps: list[str]) -> str:
    import numpy as np

    lines = [
        f"Learning curve, profile `{report['profile']}`, {report['n_test']} test patients "
        f"(cases: {', '.join(f'{e} {n}' for e, n in report['test_cases'].items())}).",
        "",
        "| n train | steps | model | "
        + " | ".join(eps)
        + " | mean | FT > ZS (Holm) | wall s (trunk / train / score) |",
        "|---:|---:|---|" + "---:|" * (len(eps) + 3),
    ]
    for r in report["results"]:
        s = r["seconds"]
        wall = f"{s['trunk_new_patients']:.0f} / {s['train_loop']:.0f} / {s['score_test']:.0f}"
        for model in ("baseline", "zero_shot", "fine_tuned"):
            a = r["auc"][model]
            sig = f"{r['n_significant']}/{len(eps)}" if model == "fine_tuned" else ""
            cells = " | ".join(f"{a[e]:.3f}" for e in eps)
            mean = np.mean(list(a.values()))
            tail = wall if model == "fine_tuned" else ""
            lines.append(
                f"| {r['n_train']} | {r['steps']} | {model} | {cells} | {mean:.3f} | {sig} | {tail} |"
            )
    return "\n".join(lines) + "\n"


def replot(json_path: Path) -> None:
    """Redraw ``learning.png`` (and the table) from a saved ``learning.json``."""
    report = json.loads(json_path.read_text())
    eps = list(report["test_cases"])
    json_path.with_suffix(".md").write_text(_markdown(report, eps))
    _plot(report, eps, json_path.with_suffix(".png"))


def _plot(report: dict[str, Any], eps: list[str], path: Path) -> None:
    import numpy as np
    from matplotlib.figure import Figure
    from matplotlib.ticker import NullFormatter

    sizes = [r["n_train"] for r in report["results"]]
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    styles = {"baseline": ("#1f77b4", "logistic regression"), "zero_shot": ("#7f7f7f", "zero-shot LLM"),
              "fine_tuned": ("#d62728", "fine-tuned LLM")}  # fmt: skip
    for model, (color, label) in styles.items():
        means = [np.mean(list(r["auc"][model].values())) for r in report["results"]]
        ax1.plot(sizes, means, marker="o", color=color, label=label)
    ax1.set_xscale("log")
    ax1.set_xticks(sizes, [str(s) for s in sizes])
    ax1.xaxis.set_minor_formatter(NullFormatter())
    ax1.set_xlabel("training patients")
    ax1.set_ylabel(f"mean test AUC over {len(eps)} endpoints")
    ax1.axhline(0.5, color="0.7", linestyle="--", linewidth=0.8)
    ax1.legend(fontsize=8)
    ax1.set_title(f"(a) mean AUC, {report['n_test']} test patients", loc="left", fontsize=10)
    for e in eps:
        ax2.plot(sizes, [r["auc"]["fine_tuned"][e] for r in report["results"]], marker=".", label=e)
    ax2.set_xscale("log")
    ax2.set_xticks(sizes, [str(s) for s in sizes])
    ax2.xaxis.set_minor_formatter(NullFormatter())
    ax2.axhline(0.5, color="0.7", linestyle="--", linewidth=0.8)
    ax2.set_xlabel("training patients")
    ax2.set_ylabel("fine-tuned test AUC")
    ax2.legend(fontsize=7, ncol=2)
    ax2.set_title("(b) fine-tuned LLM per endpoint", loc="left", fontsize=10)
    fig.savefig(path, dpi=130)


if __name__ == "__main__":
    sys.exit(main())
