"""Benchmark: the monitor after promotion, on a simulated deployment of a reference-size champion.

    .venv/bin/python benchmarks/bench_monitor.py [--n 15004] [--requests 2500] [--windows 40]
        [--rows 100000] [--out benchmarks/results/monitor.json]

1. **Champion.** The synthetic RA cohort of ``--n`` patients (the seed study's size);
   the baseline trained on 60 % of it, gated on the other 40 % with the project's gate
   (a first run: the baseline becomes champion) and promoted with that decision record
   (:func:`serving.monitor_simulation.build_champion`).
2. **Simulated deployment.** ``cohortlm serve`` with the prediction log on (SQLite) gets
   ``--requests`` V1 requests, one patient each with the id beside the features, from a
   shifted population (5 years older... see ``--age-shift`` and ``--era-shift``); the
   outcomes the generator knows are added with ``cohortlm outcomes add``; ``cohortlm
   monitor --json`` runs against a recording Pushgateway and a KFP API stand-in. Reported:
   drift per feature, AUC and calibration at promotion and live (with intervals), which
   alerts' flags are set, the retraining run.
3. **Operating characteristics.** ``--windows`` disjoint windows of 2,000 served patients
   without and with the shift: the share of windows with any alarm (false-alarm rate;
   target <= 5 %) and with the shift (detection rate; target >= 80 %).
4. **Scale.** ``--rows`` logged predictions (x 8 endpoints) with outcomes in a SQLite log:
   ``cohortlm monitor`` wall time (target < 30 s on 2 cores), and in process.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
COHORTLM = Path(sys.executable).with_name("cohortlm")
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "monitoring"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _instances(table: pd.DataFrame, spec: Any) -> list[dict[str, Any]]:
    from monitor_testlib import instances

    return instances(table, spec)


def _cli(*args: str, cwd: Path) -> tuple[subprocess.CompletedProcess[str], float]:
    start = time.perf_counter()
    res = subprocess.run([str(COHORTLM), *args], capture_output=True, text=True, timeout=1800, cwd=cwd)
    if res.returncode != 0:
        raise SystemExit(f"cohortlm {args[0]} failed: {res.stderr[-2000:]}")
    return res, time.perf_counter() - start


def _deployment(champion: Any, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    from kfp_standin import kfp_api, run_posts
    from steplib import RecordingGateway

    from serving.monitor_simulation import population

    spec = champion.spec
    table = population(
        int(args.requests / 0.78) + 200,
        21,
        shifted=True,
        age_shift=args.age_shift,
        era_shift_years=args.era_shift,
    ).iloc[: args.requests]
    key = work / "pseudonym.key"
    key.write_text("YmVuY2htYXJrLWtleS1ub3QtZm9yLXByb2R1Y3Rpb24=\n")
    log_url = f"sqlite:///{work / 'deploy.db'}"
    port = _free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    with (work / "serve.log").open("w") as out:
        proc = subprocess.Popen(
            [
                str(COHORTLM),
                "serve",
                "--bundle",
                str(champion.pointer),
                "--http-port",
                str(port),
                "--watch-interval",
                "0",
                "--prediction-log",
                log_url,
                "--pseudonym-key-file",
                str(key),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=work,
        )
    try:
        deadline = time.monotonic() + 600  # a loaded shared machine can take minutes
        while True:
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                c.request("GET", "/v2/health/ready")
                if c.getresponse().status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit(f"the server did not start: {(work / 'serve.log').read_text()[-2000:]}")
            time.sleep(0.3)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        failed = 0
        start = time.perf_counter()
        for inst in _instances(table, spec):
            conn.request(
                "POST",
                "/v1/models/ra_iorra:predict",
                json.dumps({"instances": [inst]}),
                {"Content-Type": "application/json"},
            )
            resp = conn.getresponse()
            resp.read()
            failed += resp.status != 200
        send_s = time.perf_counter() - start
        time.sleep(2.0)  # the writer flushes every 0.5 s
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    outcomes = table[[spec.id_column, *spec.endpoint_columns]].copy()
    outcomes["observation_date"] = (pd.to_datetime(table["baseline_date"]) + pd.DateOffset(years=2)).dt.date
    outcomes.to_csv(work / "outcomes.csv", index=False)
    added, add_s = _cli(
        "outcomes",
        "add",
        "--prediction-log",
        log_url,
        "--data",
        str(work / "outcomes.csv"),
        "--pseudonym-key-file",
        str(key),
        "--json",
        cwd=work,
    )
    champion.train.to_parquet(work / "train.parquet")
    gateway = RecordingGateway()
    try:
        with kfp_api() as (host, requests):
            res, monitor_s = _cli(
                "monitor",
                "--prediction-log",
                log_url,
                "--bundle",
                str(champion.pointer),
                "--json",
                "--reference",
                str(work / "train.parquet"),
                "--pushgateway",
                gateway.url,
                "--report",
                str(work / "report"),
                "--kfp-host",
                host,
                "--raw-data",
                "/data/raw",
                cwd=work,
            )
            result = json.loads(res.stdout)
            runs = len(run_posts(requests))
    finally:
        gateway.close()
    endpoints = {}
    for ep, r in result["endpoints"].items():
        gate = next(e for e in champion.decision["endpoints"] if e["endpoint"] == ep)
        endpoints[ep] = {
            "at_promotion": {
                "auc": r["gate"]["auc"],
                "auc_ci": gate.get("ci_auc_champion"),
                "citl": r["gate"]["citl"],
                "slope": r["gate"]["slope"],
            },
            "live": {
                k: r[k]
                for k in (
                    "n_outcomes",
                    "auc",
                    "auc_ci_low",
                    "auc_ci_high",
                    "citl",
                    "citl_ci",
                    "slope",
                    "slope_ci",
                    "oe_ratio",
                    "brier",
                    "expected_auc",
                )
            },
            "auc_drop_p": r["auc_drop_p"],
            "auc_drop_significant": r["auc_drop_significant"],
            "calibration_off": r["calibration_off"],
        }
    fired = sorted(
        {f"CohortlmInputDrift{{feature={f}}}" for f in result["drifted_features"]}
        | {
            f"CohortlmAucDropSignificant{{endpoint={e}}}"
            for e, r in result["endpoints"].items()
            if r["auc_drop_significant"]
        }
        | {
            f"CohortlmCalibrationOutOfTolerance{{endpoint={e}}}"
            for e, r in result["endpoints"].items()
            if r["calibration_off"]
        }
    )
    return {
        "requests": len(table),
        "failed_requests": failed,
        "send_seconds": round(send_s, 1),
        "outcomes": json.loads(added.stdout),
        "outcomes_add_seconds": round(add_s, 1),
        "monitor_seconds": round(monitor_s, 1),
        "drift": {
            f: {"psi": r["psi"], "p_value": r["p_value"], "drifted": r["drifted"]}
            for f, r in result["features"].items()
        },
        "endpoints": endpoints,
        "alerts_that_fire": fired,
        "retraining": {**result["retraining"], "runs_submitted_to_kfp_api": runs},
    }


def _scale(champion: Any, work: Path, rows: int) -> dict[str, Any]:
    """``rows`` logged predictions with outcomes; the monitor's wall time (CLI) and in process."""
    from cohortlm.models.loaders import load_bundle
    from cohortlm.monitoring.bins import spec_bins
    from serving.monitor import reference_counts, run_monitor
    from serving.monitor_simulation import population
    from serving.prediction_log import LogStore, _Item, pseudonym
    from serving.validation import RequestSchema

    spec = champion.spec
    pool = population(30_000, 31, shifted=False)
    predictor = load_bundle(champion.pointer.resolve())
    schema = RequestSchema(spec, max_batch=100_000)
    cols = schema.columns_from_instances(_instances(pool, spec))
    proba = predictor.predict_proba(schema.frame(cols))[spec.endpoint_names].to_numpy(dtype=float)
    key = b"benchmark-key-not-for-production"
    url = f"sqlite:///{work / 'scale.db'}"
    store = LogStore(url)
    bins = spec_bins(spec)

    def bins_of(_version: str, _spec: Any) -> Any:
        return bins

    n_pool = len(pool)
    written = 0
    start = time.perf_counter()
    labels = spec.labels(pool).to_numpy(dtype=float)
    outcome_rows: list[dict[str, Any]] = []
    copy = 0
    while written < rows:
        k = min(n_pool, rows - written)
        ids = [f"{i}-{copy}" for i in pool[spec.id_column].iloc[:k]]
        for s in range(0, k, 1000):
            e = min(k, s + 1000)
            item = _Item(
                predictor.version,
                spec,
                tuple(spec.endpoint_names),
                time.time(),
                ids[s:e],
                proba[s:e],
                proba[s:e] >= 0.5,
                {n: c[s:e] for n, c in cols.items()},
            )
            store.write([item], key, bins_of)
        for r, pid in enumerate(ids):
            p = pseudonym(key, pid)
            for j, ep in enumerate(spec.endpoint_names):
                if not np.isnan(labels[r, j]):
                    outcome_rows.append(
                        {"pseudonym": p, "endpoint": ep, "value": int(labels[r, j]), "observed_on": None}
                    )
        written += k
        copy += 1
    write_s = time.perf_counter() - start
    start = time.perf_counter()
    for s in range(0, len(outcome_rows), 50_000):
        store.add_outcomes(outcome_rows[s : s + 50_000])
    outcome_s = time.perf_counter() - start
    store.set_reference(predictor.version, reference_counts(spec, champion.train))
    start = time.perf_counter()
    result = run_monitor(store, champion.pointer)
    in_process_s = time.perf_counter() - start
    store.close()
    _, cli_s = _cli(
        "monitor",
        "--prediction-log",
        url,
        "--bundle",
        str(champion.pointer),
        "--json",
        "--report",
        str(work / "scale-report"),
        cwd=work,
    )
    return {
        "predictions": result["n_predictions"],
        "rows_in_log": result["n_predictions"] * len(spec.endpoint_names),
        "outcomes": len(outcome_rows),
        "write_seconds": round(write_s, 1),
        "outcomes_seconds": round(outcome_s, 1),
        "monitor_in_process_seconds": round(in_process_s, 2),
        "monitor_cli_seconds": round(cli_s, 2),
        "target_seconds": 30,
        "meets_target": cli_s < 30,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=15004, help="patients of the champion's reference cohort")
    parser.add_argument("--requests", type=int, default=2500, help="requests of the simulated deployment")
    parser.add_argument("--windows", type=int, default=40, help="windows per condition (alarm rates)")
    parser.add_argument("--rows", type=int, default=100_000, help="logged predictions for the scale test")
    parser.add_argument("--age-shift", type=float, default=10.0)
    parser.add_argument("--era-shift", type=float, default=8.0)
    parser.add_argument("--skip", action="append", default=[], choices=["deployment", "rates", "scale"])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "monitor.json")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from serving.monitor_simulation import build_champion, operating_characteristics

    work = Path(tempfile.mkdtemp(prefix="bench-monitor-"))
    report: dict[str, Any] = {
        "benchmark": "monitor",
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
        },
        "shift": {"age_shift_years": args.age_shift, "era_shift_years": args.era_shift},
    }
    try:
        start = time.perf_counter()
        champion = build_champion(work / "champion", n=args.n, seed=0)
        report["champion"] = {
            "patients": args.n,
            "train_rows": len(champion.train),
            "test_rows": len(champion.test),
            "seconds": round(time.perf_counter() - start, 1),
        }
        print(json.dumps(report["champion"]), flush=True)
        if "deployment" not in args.skip:
            report["deployment"] = _deployment(champion, work, args)
            print(json.dumps(report["deployment"], indent=1)[:4000], flush=True)
        if "rates" not in args.skip:
            start = time.perf_counter()
            rates = operating_characteristics(champion, windows=args.windows, window_size=2000)
            rates["seconds"] = round(time.perf_counter() - start, 1)
            rates["targets"] = {"false_alarm_rate_max": 0.05, "detection_rate_min": 0.80}
            rates["meets_targets"] = rates["null"]["rate"] <= 0.05 and rates["shifted"]["rate"] >= 0.80
            report["alarm_rates"] = rates
            print(json.dumps(rates, indent=1), flush=True)
        if "scale" not in args.skip:
            report["scale"] = _scale(champion, work, args.rows)
            print(json.dumps(report["scale"], indent=1), flush=True)
        report["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.out}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
