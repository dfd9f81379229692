"""Benchmark: is the signal there where the adapters read, and can the fine-tune fit at all?

    .venv/bin/python benchmarks/bench_trunk_probe.py [--train 240] [--test 240] [--overfit 16]
        [--out benchmarks/results/trunk_probe.json]

A diagnosis for "the fine-tuned LLM learns nothing", in one process, on the RA
study's synthetic cohort (the patients ``cohortlm run`` uses: nested seeded
subsets of its training split and of its scored test patients):

1. **Linear probes on the frozen trunk.** The quick profile adapts the top 4
   of SmolLM2's 30 blocks; what those blocks receive is the trunk's output
   (block 25), which :mod:`cohortlm.models.llm.trunk` caches. A logistic regression
   (standardised, 32 principal components) on that state at each endpoint
   question's last token, and on the patient text's mean-pooled state, trained
   on ``--train`` patients and tested on ``--test``: the AUC the top blocks
   could reach with a linear read-out of what they are given.
2. **Overfitting a handful of patients.** The quick profile's fine-tune
   (through :func:`cohortlm.models.llm.qlora.train_qlora`, cached trunk) on
   ``--overfit`` patients for ``--overfit-steps`` steps, scored on those same
   patients: if the answer-token loss, the block mask and the cached trunk are
   right, the training AUC must rise towards 1.
3. The logistic-regression baseline on the same patients, for scale.

Writes ``trunk_probe.json`` and ``trunk_probe.md``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from machine import describe_machine


def _probe_auc(x_tr: Any, y_tr: Any, x_te: Any, y_te: Any, c: float) -> float:
    import numpy as np
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    a, b = ~np.isnan(y_tr), ~np.isnan(y_te)
    model = make_pipeline(StandardScaler(), PCA(32, random_state=0), LogisticRegression(C=c, max_iter=3000))
    model.fit(x_tr[a], y_tr[a])
    return float(roc_auc_score(y_te[b], model.predict_proba(x_te[b])[:, 1]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--train", type=int, default=240, help="training patients for the probes")
    parser.add_argument("--test", type=int, default=240, help="test patients (seeded subset)")
    parser.add_argument("--overfit", type=int, default=16, help="patients the fine-tune must overfit")
    parser.add_argument("--overfit-steps", type=int, default=40)
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/trunk_probe.json"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")

    import numpy as np
    import pandas as pd
    from sklearn.metrics import roc_auc_score

    from cohortlm.cohort.featurise import featurise
    from cohortlm.cohort.split import split_table
    from cohortlm.cohort.study import load_study
    from cohortlm.cohort.synthetic import generate_cohort
    from cohortlm.models import text
    from cohortlm.models.baseline import train_baseline
    from cohortlm.models.bundle import check_feature_rows
    from cohortlm.models.llm import trunk
    from cohortlm.models.llm.loading import autocast_dtype, load_causal_lm, load_tokenizer, resolve_base_model
    from cohortlm.models.llm.qlora import select_training_rows, train_qlora
    from cohortlm.models.llm.scoring import LLMScorer, PromptTokens
    from cohortlm.run.profiles import eval_subset, get_profile

    spec = load_study("ra_iorra")
    prof = get_profile(args.profile)
    with tempfile.TemporaryDirectory() as tmp:
        generate_cohort(seed=0).write(Path(tmp) / "raw")
        df = split_table(featurise(Path(tmp) / "raw", spec).table, spec)
    train_all = df[df["split"] == "train"]
    train = select_training_rows(train_all, spec, prof.qlora.with_overrides(max_train_rows=args.train))
    test = eval_subset(df[df["split"] == "test"], replace(prof, eval_rows=args.test))
    eps = spec.endpoint_names
    y_tr, y_te = spec.labels(train).to_numpy(float), spec.labels(test).to_numpy(float)

    # ---- 1. probes on the cached trunk output
    ref = resolve_base_model(prof.base_model, spec=spec)
    tok = load_tokenizer(ref)
    tokens = PromptTokens.build(tok, spec)
    model = load_causal_lm(ref, device="cpu")
    split_at = trunk.split_point(model, prof.qlora.lora_layers)
    if split_at is None:
        raise SystemExit(f"profile {args.profile} caches no trunk (lora_layers unset)")
    amp = autocast_dtype("cpu", prof.qlora.compute_dtype)
    q_end = np.cumsum([len(q) for q in tokens.questions]) - 1
    t0 = time.perf_counter()

    def features(model: Any, rows: pd.DataFrame) -> tuple[Any, Any]:
        prefixes = tokens.encode_patients(tok, text.patient_texts(check_feature_rows(rows, spec), spec))
        states = trunk.cached_states(
            model, prefixes, tokens.questions, model_sha256=ref.sha256, split_at=split_at,
            pad_id=tokens.pad_id, device="cpu", amp=amp, batch_size=16, progress=True,
        )  # fmt: skip
        at_q = np.stack([s.float().numpy()[len(p) + q_end] for s, p in zip(states, prefixes, strict=True)])
        pooled = np.stack(
            [s.float().numpy()[1 : len(p)].mean(0) for s, p in zip(states, prefixes, strict=True)]
        )
        return at_q, pooled

    q_tr, m_tr = features(model, train)
    q_te, m_te = features(model, test)
    trunk_seconds = time.perf_counter() - t0
    del model
    probes = {
        "question_end": {
            e: _probe_auc(q_tr[:, i], y_tr[:, i], q_te[:, i], y_te[:, i], 0.01) for i, e in enumerate(eps)
        },
        "mean_pooled": {e: _probe_auc(m_tr, y_tr[:, i], m_te, y_te[:, i], 0.01) for i, e in enumerate(eps)},
    }
    base = train_baseline(train, spec).predict_proba(test)
    baseline = {}
    for i, e in enumerate(eps):
        keep = ~np.isnan(y_te[:, i])
        baseline[e] = float(roc_auc_score(y_te[keep, i], base[e].to_numpy()[keep]))

    # ---- 2. can the fine-tune overfit a few patients?
    cfg = prof.qlora.with_overrides(
        max_train_rows=args.overfit, max_steps=args.overfit_steps, class_weight="none", lora_dropout=0.0,
        learning_rate=3e-3, warmup_ratio=0.0, checkpoint_every=10_000,
    )  # fmt: skip
    few = select_training_rows(train_all, spec, cfg)
    y_few = spec.labels(few).to_numpy(float)

    def few_auc(scores: pd.DataFrame) -> float:
        aucs = [
            roc_auc_score(y_few[:, i] >= 0.5, scores[e].to_numpy())
            for i, e in enumerate(eps)
            if 0 < np.nansum(y_few[:, i]) < len(few) and not np.isnan(y_few[:, i]).any()
        ]
        return float(np.mean(aucs))

    with tempfile.TemporaryDirectory() as tmp:
        t1 = time.perf_counter()
        bundle = train_qlora(
            train_all, spec, cfg, out_dir=Path(tmp) / "b", base_model=prof.base_model, progress=True
        )
        meta = json.loads((bundle / "bundle.json").read_text())
        tuned = LLMScorer.from_bundle(bundle, spec, meta, cache_trunk=True)
        after = few_auc(tuned.score(few, batch_size=16))
        overfit_seconds = time.perf_counter() - t1
    from cohortlm.models.llm.scoring import zero_shot_scorer

    zs = zero_shot_scorer(
        prof.base_model, spec, compute_dtype=prof.qlora.compute_dtype, lora_layers=prof.qlora.lora_layers
    )
    before = few_auc(zs.score(few, batch_size=16))
    losses = meta["training"]["losses"]
    report = {
        "benchmark": "linear probes on the frozen trunk output; overfitting a few patients",
        "profile": args.profile,
        "split_at": split_at,
        "n_train": len(train),
        "n_test": len(test),
        "test_cases": {e: int(np.nansum(y_te[:, i])) for i, e in enumerate(eps)},
        "auc": {
            "probe_question_end": probes["question_end"],
            "probe_mean_pooled": probes["mean_pooled"],
            "baseline": baseline,
        },
        "overfit": {
            "patients": len(few),
            "steps": args.overfit_steps,
            "train_auc_before": before,
            "train_auc_after": after,
            "first_loss": losses[0],
            "final_loss": losses[-1],
            "seconds": round(overfit_seconds, 1),
        },
        "trunk_seconds": round(trunk_seconds, 1),
        "machine": describe_machine(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    rows = [
        "| endpoint | cases | probe, question end | probe, mean-pooled | baseline |",
        "|---|---:|---:|---:|---:|",
    ]
    for e in eps:
        rows.append(f"| {e} | {report['test_cases'][e]} | {probes['question_end'][e]:.3f} | "
                    f"{probes['mean_pooled'][e]:.3f} | {baseline[e]:.3f} |")  # fmt: skip
    rows.append(
        f"| **mean** | | {np.mean(list(probes['question_end'].values())):.3f} | "
        f"{np.mean(list(probes['mean_pooled'].values())):.3f} | {np.mean(list(baseline.values())):.3f} |"
    )
    o = report["overfit"]
    md = (
        f"# Linear probes on the frozen trunk (output of block {split_at - 1}), {len(train)} training and "
        f"{len(test)} test patients\n\n" + "\n".join(rows) + "\n\n"
        f"Overfitting {o['patients']} patients, {o['steps']} steps: training AUC {o['train_auc_before']:.3f} "
        f"(zero-shot) -> {o['train_auc_after']:.3f}; loss {o['first_loss']:.3f} -> {o['final_loss']:.3f}.\n"
    )
    args.out.with_suffix(".md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
