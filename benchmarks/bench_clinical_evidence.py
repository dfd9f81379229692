"""Seconds the clinical evidence (issue 25, items 1, 2, 3, 5) adds to a run at the quick profile's sizes.

The RA reference cohort (synthetic, seed 0): 9,500 training and 2,263 test patients, 8 endpoints,
4 models on the test split (the baseline and three LLM-like score sets). Times, wall and CPU:

- the threshold metrics' intervals (Wilson; F1 by stratified bootstrap) of every Table 1 row;
- the calibration table (recalibration, O/E, lowess ICI, Brier) of every endpoint and model;
- the decision curves of every endpoint;
- the calibration and decision-curve figures (drawn and saved as PNG at 150 dpi);
- the baseline's out-of-fold training scores (5 folds, train step);
- the baseline's bootstrap optimism correction (200 resamples, gate step).

Run: ``python benchmarks/bench_clinical_evidence.py`` (about a minute on two cores). The
machine's load is printed beside the times: wall time on a shared machine overstates the cost,
CPU time does not.
"""

from __future__ import annotations

import io
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


def _timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, round(time.perf_counter() - wall, 2), round(time.process_time() - cpu, 2)


def _cohort(work: Path) -> pd.DataFrame:
    from cohortlm.cohort.featurise import featurise
    from cohortlm.cohort.split import split_table
    from cohortlm.cohort.study import load_study
    from cohortlm.cohort.synthetic import generate_cohort

    spec = load_study("ra_iorra")
    generate_cohort(seed=0).write(work / "raw")
    return split_table(featurise(work / "raw", spec).table, spec)


def main() -> dict[str, Any]:
    from cohortlm.cohort.study import load_study
    from cohortlm.evaluation.decision_curve import decision_curve, threshold_grid
    from cohortlm.evaluation.endpoint_metrics import threshold_metrics
    from cohortlm.evaluation.intervals import threshold_metric_intervals
    from cohortlm.evaluation.stats.calibration import calibration_summary
    from cohortlm.models.baseline import internal_validation, out_of_fold_proba, train_baseline

    spec = load_study("ra_iorra")
    with tempfile.TemporaryDirectory() as tmp:
        df = _cohort(Path(tmp))
    train, test = df[df["split"] == "train"], df[df["split"] == "test"]
    model = train_baseline(train, spec)
    base = model.predict_proba(test)
    labels = spec.labels(test)
    rng = np.random.default_rng(0)
    models: dict[str, pd.DataFrame] = {"baseline": base}
    for name, noise, shrink in (("llm_a", 1.2, 0.5), ("llm_a+qlora", 0.5, 1.3), ("llm_b+qlora", 0.7, 1.0)):
        logit = np.log(base / (1 - base))
        models[name] = 1 / (1 + np.exp(-(shrink * logit + rng.normal(0, noise, base.shape))))
    pairs = [(e, m) for e in spec.endpoint_names for m in models]

    def arrays(e: str, m: str) -> tuple[np.ndarray, np.ndarray]:
        keep = labels[e].notna().to_numpy()
        return labels[e].to_numpy()[keep].astype(int), models[m][e].to_numpy()[keep]

    def intervals() -> None:
        for e, m in pairs:
            y, p = arrays(e, m)
            threshold_metric_intervals(threshold_metrics(y, p, 0.2).to_dict())

    def calibration() -> None:
        for e, m in pairs:
            calibration_summary(*arrays(e, m))

    def curves() -> None:
        for e in spec.endpoint_names:
            y, _ = arrays(e, "baseline")
            decision_curve(y, {m: arrays(e, m)[1] for m in models}, threshold_grid(float(y.mean())))

    results: dict[str, Any] = {"patients": {"train": len(train), "test": len(test)}, "models": len(models)}
    for name, fn in (
        ("table1_intervals", intervals),
        ("calibration_table", calibration),
        ("decision_curves", curves),
        ("out_of_fold_scores", lambda: out_of_fold_proba(train, spec)),
        ("optimism_bootstrap_200", lambda: internal_validation(train, spec)),
    ):
        _, wall, cpu = _timed(fn)
        results[name] = {"wall_s": wall, "cpu_s": cpu}
        print(name, results[name], flush=True)
    results["figures"] = _figures(labels, models, spec)
    print("figures", results["figures"], flush=True)
    total_wall = sum(v["wall_s"] for k, v in results.items() if isinstance(v, dict) and "wall_s" in v)
    total_cpu = sum(v["cpu_s"] for k, v in results.items() if isinstance(v, dict) and "cpu_s" in v)
    results["total"] = {"wall_s": round(total_wall, 2), "cpu_s": round(total_cpu, 2)}
    results["load_average"] = list(os.getloadavg())
    results["cpus"] = os.cpu_count()
    return results


def _figures(labels: pd.DataFrame, models: dict[str, pd.DataFrame], spec: Any) -> dict[str, float]:
    from cohortlm.evaluation.figures import plot_calibration, plot_decision_curve
    from cohortlm.evaluation.report import compute_report

    ids = pd.Index([f"P{i}" for i in range(len(labels))])
    lab = labels.set_axis(ids)
    scores = {m: f.set_axis(ids) for m, f in models.items()}
    split = pd.Series(np.where(np.arange(len(ids)) < 300, "validation", "test"), ids)
    report = compute_report(lab, scores, split, endpoints=spec.endpoint_names, study=spec)

    def draw() -> None:
        for plot in (plot_calibration, plot_decision_curve):
            plot(report).savefig(io.BytesIO(), dpi=150, format="png")

    _, wall, cpu = _timed(draw)
    return {"wall_s": wall, "cpu_s": cpu}


if __name__ == "__main__":
    out = main()
    print(json.dumps(out, indent=1))
    if len(sys.argv) > 1:
        Path(sys.argv[1]).write_text(json.dumps(out, indent=1))
