"""Benchmark: which read-out of the LLM's last hidden state finds the signal (why the answer head exists).

    .venv/bin/python benchmarks/bench_answer_readout.py [--train 400] [--test 400]
        [--out benchmarks/results/answer_readout.json]

On the RA study's synthetic cohort (the pipeline's own seeded training and
test subsets), the default model's final normed hidden state at each endpoint
question's last token (the LM head's input) is computed once through the
cached frozen trunk. Read-outs of it, trained on ``--train`` patients and
tested on ``--test`` (mean test AUC over the 8 endpoints):

* zero-shot: the LM head's ``l_Yes - l_No`` (what the base model says);
* standardised logistic regression per endpoint at several C (the probe
  that starts :class:`cohortlm.models.llm.head.AnswerHead`);
* gradient descent (Adam, class-balanced, batch 16) on the raw state,
  starting from the zero-shot answer: one answer vector shared by all
  endpoints (what training the Yes/No rows amounts to) and one per endpoint.

Writes ``answer_readout.json`` and ``answer_readout.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from machine import describe_machine


def _features(rows: Any, spec: Any, model: Any, tok: Any, ref: Any, amp: Any) -> Any:
    """``[N, E, H]`` final normed states at the question ends, via the cached trunk."""
    import numpy as np
    import torch

    from cohortlm.models import text
    from cohortlm.models.llm import trunk
    from cohortlm.models.llm.loading import autocast
    from cohortlm.models.llm.scoring import PromptTokens

    tokens = PromptTokens.build(tok, spec)
    prefixes = tokens.encode_patients(tok, text.patient_texts(rows, spec))
    split = trunk.num_layers(model) - 1
    states = trunk.cached_states(
        model, prefixes, tokens.questions, model_sha256=ref.sha256, split_at=split,
        pad_id=tokens.pad_id, device="cpu", amp=amp, batch_size=16, progress=True,
        desc=f"frozen trunk ({len(prefixes)} patients)",
    )  # fmt: skip
    captured: list[Any] = []
    norm = trunk.causal_lm(model).model.norm
    hook = norm.register_forward_hook(lambda _m, _i, out: captured.append(out.detach().float()))
    try:
        with torch.no_grad(), autocast("cpu", amp):
            for b in range(0, len(prefixes), 16):
                trunk.top_logits(
                    model, states[b : b + 16], prefixes[b : b + 16], tokens.questions,
                    split_at=split, pad_id=tokens.pad_id,
                )  # fmt: skip
    finally:
        hook.remove()
    return np.asarray(torch.cat(captured).numpy()), tokens


def _gd(xtr: Any, ytr: Any, xte: Any, w0: Any, *, shared: bool, lr: float, epochs: int, seed: int = 0) -> Any:
    """Adam on an answer vector (shared or per endpoint) plus per-endpoint biases; test scores."""
    import numpy as np
    import torch

    torch.manual_seed(seed)
    x, y = torch.tensor(xtr), torch.tensor(np.nan_to_num(ytr, nan=0.0))
    present = torch.tensor(~np.isnan(ytr)).float()
    pos, neg = (y * present).sum(0), ((1 - y) * present).sum(0)
    weight = torch.where(y > 0.5, neg / pos.clamp(min=1), torch.ones_like(y)) * present
    delta = torch.zeros((1 if shared else x.shape[1], x.shape[-1]), requires_grad=True)
    bias = torch.zeros(x.shape[1], requires_grad=True)
    opt = torch.optim.Adam([delta, bias], lr=lr)
    base = torch.tensor(w0)
    steps = epochs * len(x) // 16
    for _ in range(steps):
        idx = torch.randint(0, len(x), (16,))
        logit = (x[idx] * (base + delta)).sum(-1) + bias
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logit, y[idx], reduction="none")
        loss = (loss * weight[idx]).sum() / weight[idx].sum().clamp(min=1e-9)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        return ((torch.tensor(xte) * (base + delta)).sum(-1) + bias).numpy()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--train", type=int, default=400)
    parser.add_argument("--test", type=int, default=400)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/answer_readout.json"))
    args = parser.parse_args(argv)

    import numpy as np
    from sklearn.metrics import roc_auc_score

    from cohortlm.cohort.featurise import featurise
    from cohortlm.cohort.split import split_table
    from cohortlm.cohort.study import load_study
    from cohortlm.cohort.synthetic import generate_cohort
    from cohortlm.models.llm import head as answer_head
    from cohortlm.models.llm.loading import autocast_dtype, load_causal_lm, load_tokenizer, resolve_base_model
    from cohortlm.models.llm.qlora import class_weights, select_training_rows
    from cohortlm.run.profiles import eval_subset, get_profile

    spec = load_study("ra_iorra")
    prof = get_profile("quick")
    with tempfile.TemporaryDirectory() as tmp:
        generate_cohort(seed=0).write(Path(tmp) / "raw")
        df = split_table(featurise(Path(tmp) / "raw", spec).table, spec)
    train = select_training_rows(
        df[df["split"] == "train"], spec, prof.qlora.with_overrides(max_train_rows=args.train)
    )
    test = eval_subset(df[df["split"] == "test"], replace(prof, eval_rows=args.test))
    ref = resolve_base_model(None, spec=spec)
    model, tok = load_causal_lm(ref, device="cpu").eval(), load_tokenizer(ref)
    amp = autocast_dtype("cpu", "auto")
    t0 = time.perf_counter()
    xtr, tokens = _features(train, spec, model, tok, ref, amp)
    xte, _ = _features(test, spec, model, tok, ref, amp)
    feature_seconds = time.perf_counter() - t0
    ytr, yte = spec.labels(train).to_numpy(float), spec.labels(test).to_numpy(float)
    eps = spec.endpoint_names

    def aucs(scores: Any) -> list[float]:
        out = []
        for e in range(len(eps)):
            keep = ~np.isnan(yte[:, e])
            out.append(float(roc_auc_score(yte[keep, e] > 0.5, scores[keep, e])))
        return out

    w = model.lm_head.weight.detach().float().numpy()
    w0 = w[tokens.yes_id] - w[tokens.no_id]
    rows: list[dict[str, Any]] = [{"readout": "zero-shot (l_Yes - l_No)", "auc": aucs(xte @ w0)}]
    weights = class_weights(ytr, "balanced")
    for c in (0.003, 0.01, 0.1, 1.0):
        coef, bias, _ = answer_head.fit_probe(xtr, ytr, weights, c=c)
        rows.append(
            {"readout": f"standardised probe per endpoint, C {c}", "auc": aucs((xte * coef).sum(-1) + bias)}
        )
    for shared in (True, False):
        for lr in (1e-3, 1e-2):
            for epochs in (2, 12):
                scores = _gd(xtr, ytr, xte, w0, shared=shared, lr=lr, epochs=epochs)
                kind = "one shared answer vector" if shared else "one answer vector per endpoint"
                rows.append({"readout": f"Adam on {kind}, lr {lr:g}, {epochs} epochs", "auc": aucs(scores)})
    for r in rows:
        r["mean"] = float(np.mean(r["auc"]))
        print(f"{r['mean']:.3f}  {r['readout']}", flush=True)
    report = {
        "benchmark": "read-outs of the final hidden state at the question ends (SmolLM2-135M, RA study)",
        "n_train": len(train),
        "n_test": len(test),
        "endpoints": eps,
        "feature_seconds": round(feature_seconds, 1),
        "results": rows,
        "machine": describe_machine(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    lines = [
        f"Read-outs of SmolLM2-135M's final state at each question's last token: {len(train)} training, "
        f"{len(test)} test patients (RA study, synthetic cohort). Test AUC.",
        "",
        "| read-out | " + " | ".join(eps) + " | mean |",
        "|---|" + "---:|" * (len(eps) + 1),
    ]
    for r in rows:
        lines.append(
            f"| {r['readout']} | " + " | ".join(f"{a:.3f}" for a in r["auc"]) + f" | **{r['mean']:.3f}** |"
        )
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
