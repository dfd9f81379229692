"""Benchmark: the fast paired DeLong test against pROC and a brute-force O(m·n) DeLong, in the same run.

    .venv/bin/python benchmarks/bench_delong.py [--n 1000000] [--brute-n 20000] [--repeats 3]
        [--no-proc] [--install-r] [--whole-repeats 5] [--out benchmarks/results/delong.json]

What is timed (wall clock, best of ``--repeats``, one process, same data):

1. ``cohortlm.evaluation.stats.delong_test`` on N paired scores (default 1,000,000);
2. R's pROC 1.18 on the same N rows, same labels and scores: ``roc()`` for both
   models plus ``roc.test(method = "delong", paired = TRUE)``, timed inside R
   with ``system.time`` (so R start-up and reading the CSV are not counted).
   When ``Rscript`` is missing, ``--install-r`` installs it from Debian
   (``apt-get install r-base-core r-cran-proc``, root only); otherwise pROC is skipped
   and the JSON says so;
3. a brute-force DeLong (every case against every control, numpy, chunked) on
   ``--brute-n`` rows, the size it can manage, with the fast version timed on
   the same rows; its time at N is extrapolated by m·n (stated as an extrapolation);
4. ``sklearn.metrics.roc_auc_score`` for both models on N rows: the AUCs alone,
   a floor for any method that must at least sort the scores;
5. the **whole process**, as a user meets it: ``cohortlm delong --csv F ... --json``
   as a subprocess against ``Rscript`` reading the same CSV with ``read.csv``,
   ``roc()`` twice and ``roc.test(method = "delong", paired = TRUE)``, start-up,
   imports (``library(pROC)``) and the CSV read included. The two commands
   alternate, ``--repeats`` times each, in the same run; the ratio reported is
   cohortlm's best over R's best (and the median of the per-pair ratios). The
   target is a ratio of at most 0.5.

The two implementations' results are compared (AUCs, z, p) so the speed is for
the same answer. Results go to ``--out`` as JSON with the machine described, and
the whole-process comparison also to ``delong_whole_process.md`` beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

from cohortlm.evaluation.stats import delong_covariance, delong_test

R_SCRIPT = r"""
suppressPackageStartupMessages(library(pROC))
args <- commandArgs(trailingOnly = TRUE)
d <- read.csv(args[1])
repeats <- as.integer(args[2])
best <- Inf
for (i in seq_len(repeats)) {
  t <- system.time({
    ra <- roc(d$y, d$a, levels = c(0, 1), direction = "<", quiet = TRUE)
    rb <- roc(d$y, d$b, levels = c(0, 1), direction = "<", quiet = TRUE)
    tt <- roc.test(ra, rb, method = "delong", paired = TRUE)
  })[["elapsed"]]
  best <- min(best, t)
}
fmt <- '{"seconds": %.6f, "auc_a": %.15g, "auc_b": %.15g, "z": %.15g, "p_value": %.15g, "version": "%s"}\n'
cat(sprintf(fmt, best, as.numeric(auc(ra)), as.numeric(auc(rb)), unname(tt$statistic), tt$p.value,
            as.character(packageVersion("pROC"))))
"""

# What a pROC user runs for one comparison: the whole process is timed from outside.
R_WHOLE_SCRIPT = r"""
suppressPackageStartupMessages(library(pROC))
d <- read.csv(commandArgs(trailingOnly = TRUE)[1])
ra <- roc(d$y, d$a, levels = c(0, 1), direction = "<", quiet = TRUE)
rb <- roc(d$y, d$b, levels = c(0, 1), direction = "<", quiet = TRUE)
tt <- roc.test(ra, rb, method = "delong", paired = TRUE)
cat(sprintf('{"auc_a": %.15g, "auc_b": %.15g, "z": %.15g, "p_value": %.15g}\n',
            as.numeric(auc(ra)), as.numeric(auc(rb)), unname(tt$statistic), tt$p.value))
"""


def best_of(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """Best wall-clock time over ``repeats`` calls, and the last result."""
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def brute_force_delong(
    y: np.ndarray, a: np.ndarray, b: np.ndarray, chunk: int = 2048
) -> tuple[np.ndarray, np.ndarray]:
    """DeLong (1988) as written: the m×n kernel, built in row chunks to bound memory."""
    yb = y.astype(bool)
    out_v10, out_v01 = [], []
    for s in (a, b):
        x, z = s[yb], s[~yb]
        v10 = np.empty(x.size)
        v01 = np.zeros(z.size)
        for i in range(0, x.size, chunk):
            psi = (x[i : i + chunk, None] > z[None, :]) + 0.5 * (x[i : i + chunk, None] == z[None, :])
            v10[i : i + chunk] = psi.mean(axis=1)
            v01 += psi.sum(axis=0)
        out_v10.append(v10)
        out_v01.append(v01 / x.size)
    m, n = out_v10[0].size, out_v01[0].size
    cov = np.cov(np.array(out_v10)) / m + np.cov(np.array(out_v01)) / n
    return np.array([v.mean() for v in out_v10]), cov


def make_data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Seeded paired scores: 30% cases, two correlated models, scores rounded to 4 decimals (ties)."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(np.int8)
    shared = rng.normal(size=n)
    a = np.round(shared + 1.0 * y + rng.normal(scale=0.8, size=n), 4)
    b = np.round(shared + 0.8 * y + rng.normal(scale=0.8, size=n), 4)
    return y, a, b


def ensure_r(install: bool) -> str | None:
    """Path to Rscript with pROC, installing from Debian when asked and possible; None otherwise."""
    rscript = shutil.which("Rscript")
    if rscript is None and install and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "r-base-core", "r-cran-proc"],
            check=True,
            env=env,
        )
        rscript = shutil.which("Rscript")
    if rscript is None:
        return None
    ok = subprocess.run([rscript, "-e", "library(pROC)"], capture_output=True).returncode == 0
    return rscript if ok else None


def write_csv(path: Path, y: np.ndarray, a: np.ndarray, b: np.ndarray) -> Path:
    """The benchmark's data as the CSV both commands read (header y,a,b; scores to 4 decimals)."""
    np.savetxt(
        path,
        np.column_stack([y, a, b]),
        delimiter=",",
        header="y,a,b",
        comments="",
        fmt=["%d", "%.4f", "%.4f"],
    )
    return path


def _timed(cmd: list[str]) -> tuple[float, dict[str, Any]]:
    """Wall-clock seconds of one command, and the JSON object on its last stdout line."""
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - t0
    return wall, json.loads(proc.stdout.strip().splitlines()[-1])


def run_whole_process(rscript: str, csv: Path, repeats: int) -> dict[str, Any]:
    """``cohortlm delong`` and ``Rscript`` (pROC) as whole processes on the same CSV, alternating."""
    cohortlm = Path(sys.executable).with_name("cohortlm")
    ours = [str(cohortlm), "delong", "--csv", str(csv), "--label", "y", "--score-a", "a", "--score-b", "b"]
    ours.append("--json")
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "whole.R"
        script.write_text(R_WHOLE_SCRIPT)
        theirs = [rscript, str(script), str(csv)]
        _timed(ours)  # one warm-up each: the page cache holds the CSV and both programs
        _timed(theirs)
        t_ours, t_theirs = [], []
        for _ in range(repeats):
            w, out_ours = _timed(ours)
            t_ours.append(w)
            w, out_theirs = _timed(theirs)
            t_theirs.append(w)
    ratios = sorted(o / t for o, t in zip(t_ours, t_theirs, strict=True))
    return {
        "command": "cohortlm delong --csv data.csv --label y --score-a a --score-b b --json",
        "r_command": "Rscript whole.R data.csv (read.csv, roc x2, roc.test delong paired)",
        "repeats": repeats,
        "cohortlm_seconds": t_ours,
        "r_seconds": t_theirs,
        "cohortlm_best_seconds": min(t_ours),
        "r_best_seconds": min(t_theirs),
        "ratio_cohortlm_over_r_best": min(t_ours) / min(t_theirs),
        "ratio_cohortlm_over_r_median_pair": ratios[len(ratios) // 2],
        "target_ratio_at_most": 0.5,
        "max_abs_difference": max(abs(out_ours[k] - out_theirs[k]) for k in ("auc_a", "auc_b", "z")),
        "note": "each a fresh process; start-up, imports and the CSV read included; alternated in one run",
        "load_average_1min_after": os.getloadavg()[0],
    }


def write_whole_process_md(path: Path, n: int, whole: dict[str, Any], machine: dict[str, Any]) -> None:
    """A short table of the whole-process comparison, for people."""
    lines = [
        f"# `cohortlm delong` vs R pROC, whole process, {n:,} rows",
        "",
        f"Measured by `benchmarks/bench_delong.py` on {machine['platform']} ({machine['cpu_count']} CPUs), "
        f"{whole['repeats']} alternating runs of each, one fresh process per run; 1-minute load average "
        f"{whole['load_average_1min_after']:.1f} at the end (other jobs share the CPUs: the runs vary).",
        "",
        "| command | best (s) | all runs (s) |",
        "|---|---:|---|",
        f"| `{whole['command']}` | {whole['cohortlm_best_seconds']:.2f} | "
        + ", ".join(f"{t:.2f}" for t in whole["cohortlm_seconds"])
        + " |",
        f"| {whole['r_command']} | {whole['r_best_seconds']:.2f} | "
        + ", ".join(f"{t:.2f}" for t in whole["r_seconds"])
        + " |",
        "",
        f"**Ratio cohortlm / R: {whole['ratio_cohortlm_over_r_best']:.2f}** (best over best; median of the "
        f"per-pair ratios {whole['ratio_cohortlm_over_r_median_pair']:.2f}); target at most "
        f"{whole['target_ratio_at_most']}. "
        f"Largest difference in AUCs and z: {whole['max_abs_difference']:.1e}.",
        "",
    ]
    path.write_text("\n".join(lines))


def run_proc(rscript: str, y: np.ndarray, a: np.ndarray, b: np.ndarray, repeats: int) -> dict[str, Any]:
    """Time pROC inside R on the same data (written to a temporary CSV)."""
    with tempfile.TemporaryDirectory() as tmp:
        csv = write_csv(Path(tmp) / "data.csv", y, a, b)
        script = Path(tmp) / "bench.R"
        script.write_text(R_SCRIPT)
        t0 = time.perf_counter()
        proc = subprocess.run(
            [rscript, str(script), str(csv), str(repeats)], capture_output=True, text=True, check=True
        )
        wall = time.perf_counter() - t0
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["wall_seconds_including_r_startup_and_csv"] = wall
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--brute-n", type=int, default=20_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-proc", action="store_true", help="skip pROC")
    ap.add_argument("--install-r", action="store_true", help="apt-get install R and pROC when missing (root)")
    ap.add_argument("--whole-repeats", type=int, default=5, help="whole-process runs of each command")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "delong.json")
    args = ap.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)

    y, a, b = make_data(args.n, args.seed)
    m = int(y.sum())
    result: dict[str, Any] = {
        "benchmark": "paired DeLong test, two models on the same patients",
        "n": args.n,
        "n_cases": m,
        "n_controls": args.n - m,
        "repeats": args.repeats,
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "numpy": np.__version__,
        },
    }

    t_fast, fast = best_of(lambda: delong_test(y, a, b), args.repeats)
    result["cohortlm_fast"] = {
        "seconds": t_fast,
        "auc_a": fast.auc_a,
        "auc_b": fast.auc_b,
        "z": fast.z,
        "p_value": fast.p_value,
    }
    print(
        f"cohortlm fast DeLong, n={args.n:,}: {t_fast:.3f} s "
        f"(AUC {fast.auc_a:.4f} vs {fast.auc_b:.4f}, z={fast.z:.2f})"
    )

    t_sk, _ = best_of(lambda: (roc_auc_score(y, a), roc_auc_score(y, b)), args.repeats)
    result["sklearn_roc_auc_score_two_models"] = {
        "seconds": t_sk,
        "ratio_fast_delong_over_sklearn": t_fast / t_sk,
    }
    print(f"sklearn roc_auc_score x2 (AUC only), n={args.n:,}: {t_sk:.3f} s")

    yb_, ab_, bb_ = make_data(args.brute_n, args.seed + 1)
    t_brute, (aucs_bf, cov_bf) = best_of(lambda: brute_force_delong(yb_, ab_, bb_), 1)
    t_fast_small, (aucs_f, cov_f) = best_of(lambda: delong_covariance(yb_, ab_, bb_), args.repeats)
    mb = int(yb_.sum())
    scale = (m * (args.n - m)) / (mb * (args.brute_n - mb))
    result["brute_force"] = {
        "n": args.brute_n,
        "seconds": t_brute,
        "cohortlm_fast_seconds_same_n": t_fast_small,
        "speedup_at_brute_n": t_brute / t_fast_small,
        "max_abs_difference_auc": float(np.max(np.abs(aucs_bf - aucs_f))),
        "max_abs_difference_cov": float(np.max(np.abs(cov_bf - cov_f))),
        "extrapolated_seconds_at_n": t_brute * scale,
        "extrapolated_speedup_at_n": t_brute * scale / t_fast,
        "note": "brute force is O(m·n): its time at n is extrapolated from brute_n by m·n, not measured",
    }
    print(
        f"brute-force DeLong, n={args.brute_n:,}: {t_brute:.3f} s vs fast {t_fast_small * 1000:.1f} ms "
        f"({t_brute / t_fast_small:.0f}x); extrapolated to n={args.n:,}: {t_brute * scale:.0f} s"
    )

    rscript = None if args.no_proc else ensure_r(args.install_r)
    if rscript is None:
        result["pROC"] = {
            "skipped": "--no-proc" if args.no_proc else "Rscript with pROC not found (try --install-r)"
        }
        print("pROC: skipped")
    else:
        pr = run_proc(rscript, y, a, b, args.repeats)
        pr["speedup_fast_over_pROC"] = pr["seconds"] / t_fast
        pr["max_abs_difference"] = max(
            abs(pr["auc_a"] - fast.auc_a), abs(pr["auc_b"] - fast.auc_b), abs(pr["z"] - fast.z)
        )
        result["pROC"] = pr
        print(
            f"pROC {pr['version']} roc() x2 + roc.test(delong), n={args.n:,}: {pr['seconds']:.3f} s "
            f"-> cohortlm is {pr['speedup_fast_over_pROC']:.1f}x faster; "
            f"max |difference| {pr['max_abs_difference']:.2e}"
        )
        with tempfile.TemporaryDirectory() as tmp:
            csv = write_csv(Path(tmp) / "data.csv", y, a, b)
            whole = run_whole_process(rscript, csv, args.whole_repeats)
        result["whole_process"] = whole
        write_whole_process_md(
            args.out.with_name("delong_whole_process.md"), args.n, whole, result["machine"]
        )
        print(
            f"whole process, n={args.n:,}: cohortlm delong {whole['cohortlm_best_seconds']:.2f} s, "
            f"Rscript pROC {whole['r_best_seconds']:.2f} s "
            f"-> ratio {whole['ratio_cohortlm_over_r_best']:.2f} (target <= 0.5)"
        )

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
