"""Benchmark: online lookup of one patient's features (SQLite and Redis) against raw store reads.

    .venv/bin/python benchmarks/bench_online.py [--data FILE] [--lookups 300] [--no-redis]
        [--out benchmarks/results/online.json]

A scratch copy of feature_repo/ is applied and materialised with the featurised
cohort (``--data``, or the seed study's 11,865 rows built first). Timed per
lookup of one random patient (median and p95 over ``--lookups``, after 20 warm-up
lookups, one process):

1. ``featurestore.get_online_features_for(repo, [id])`` with the local
   configuration (SQLite online store), store opened once as serving does;
2. reference for SQLite: ``SELECT * FROM cohort WHERE patient_id = ?`` on a
   plain SQLite table holding the same 29 features, one row per patient, id
   as primary key (the raw cost of fetching one row);
3. the same function with the cluster configuration (Redis online store,
   registry in SQLite via the SQL registry) against a redis-server started on
   127.0.0.1 on a free port (Debian's; skipped with ``--no-redis``);
4. reference for Redis: ``HGETALL`` of a plain hash holding the same features.

Ratios are Feast over the raw read of the same store.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # featurestore/ beside cohortlm/ in a checkout

from cohortlm.cohort.study import load_study  # noqa: E402


def _stats(fn: Callable[[str], Any], ids: list[str]) -> dict[str, float]:
    for pid in ids[:20]:
        fn(pid)
    times = []
    for pid in ids:
        t = time.perf_counter()
        fn(pid)
        times.append(time.perf_counter() - t)
    ms = np.array(times) * 1000
    return {"median_ms": round(float(np.median(ms)), 4), "p95_ms": round(float(np.percentile(ms, 95)), 4)}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path)
    parser.add_argument("--lookups", type=int, default=300)
    parser.add_argument("--no-redis", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/online.json"))
    args = parser.parse_args()
    import featurestore as fs

    spec = load_study("ra_iorra")
    report: dict[str, Any] = {"benchmark": "online lookup of one patient", "lookups": args.lookups}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        repo = tmp / "feature_repo"
        repo.mkdir()
        for f in (ROOT / "feature_repo").iterdir():
            if f.is_file() and f.suffix in (".py", ".yaml"):
                shutil.copy(f, repo / f.name)
        if args.data is None:
            sys.path.insert(0, str(ROOT / "benchmarks"))
            from bench_validation import _build_cohort

            data = _build_cohort(tmp)
        else:
            data = args.data
        fs.install_offline_data(data, repo)
        table = pd.read_parquet(repo / "data" / "cohort.parquet")
        rng = np.random.default_rng(0)
        ids = [str(x) for x in rng.choice(table[spec.id_column].to_numpy(), size=args.lookups + 20)]
        features = spec.feature_names
        report["rows"] = len(table)
        report["features"] = len(features)

        store = fs.open_store(repo)
        fs.apply(repo, store=store)
        t = time.perf_counter()
        fs.materialize(repo, store=store)
        report["sqlite_materialize_seconds"] = round(time.perf_counter() - t, 2)
        report["feast_sqlite"] = _stats(lambda pid: fs.get_online_features_for(repo, [pid]), ids)

        ref_db = sqlite3.connect(tmp / "reference.db")
        table[[spec.id_column, *features]].to_sql("cohort", ref_db, index=False)
        ref_db.execute(f"CREATE UNIQUE INDEX ix ON cohort ({spec.id_column})")
        query = f"SELECT * FROM cohort WHERE {spec.id_column} = ?"
        report["raw_sqlite_select"] = _stats(lambda pid: ref_db.execute(query, (pid,)).fetchone(), ids)
        report["feast_sqlite_over_raw"] = round(
            report["feast_sqlite"]["median_ms"] / report["raw_sqlite_select"]["median_ms"], 1
        )

        exe = shutil.which("redis-server")
        if not args.no_redis and exe:
            import redis

            port = _free_port()
            proc = subprocess.Popen(
                [exe, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                cwd=tmp,
            )
            try:
                client = redis.Redis(host="127.0.0.1", port=port)
                for _ in range(200):
                    try:
                        client.ping()
                        break
                    except redis.ConnectionError:
                        time.sleep(0.05)
                os.environ["FEAST_REDIS_URL"] = f"127.0.0.1:{port}"
                os.environ["FEAST_REGISTRY_URL"] = f"sqlite:///{tmp / 'registry_sql.db'}"
                config = "feature_store.cluster.yaml"
                rstore = fs.open_store(repo, config_file=config)
                fs.apply(repo, store=rstore)
                t = time.perf_counter()
                fs.materialize(repo, store=rstore)
                report["redis_materialize_seconds"] = round(time.perf_counter() - t, 2)
                report["feast_redis"] = _stats(
                    lambda pid: fs.get_online_features_for(repo, [pid], config_file=config), ids
                )
                pipe = client.pipeline()
                for row in table[[spec.id_column, *features]].astype(str).itertuples(index=False):
                    pipe.hset(f"ref:{row[0]}", mapping=dict(zip(features, row[1:], strict=True)))
                pipe.execute()
                report["raw_redis_hgetall"] = _stats(lambda pid: client.hgetall(f"ref:{pid}"), ids)
                report["feast_redis_over_raw"] = round(
                    report["feast_redis"]["median_ms"] / report["raw_redis_hgetall"]["median_ms"], 1
                )
                report["redis_server"] = subprocess.run(
                    [exe, "--version"], capture_output=True, text=True, check=False
                ).stdout.split()[2]
            finally:
                proc.terminate()
                proc.wait(timeout=10)
        else:
            report["feast_redis"] = "skipped (--no-redis or no redis-server)"
    import feast

    report.update(
        {
            "feast": feast.__version__,
            "python": sys.version.split()[0],
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.system()}",
            "note": "median over lookups of one random patient; raw reads fetch the same features",
        }
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
