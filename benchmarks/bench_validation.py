"""Benchmark: GX validation of the featurised cohort against plain pandas checks, in the same run.

    .venv/bin/python benchmarks/bench_validation.py [--data FILE] [--repeats 5]
        [--out benchmarks/results/validation.json]

Without ``--data`` the seed study's cohort is built first (15,004 synthetic
patients, seed 0, featurised: 11,865 rows). What is timed (wall clock, one
process, same table):

1. ``cohortlm.cohort.validation.validate_table``: the GX suite generated from the
   spec, run in an ephemeral context: cold (first call, GX import included)
   and warm (best of ``--repeats``);
2. the reference: the same checks written directly in pandas/numpy (column
   presence, dtype, ranges, sets, whole numbers, null limits, unique ids,
   dates, rules), best of ``--repeats``: the floor for any implementation.

Both give a count per expectation; the counts are compared so the speed is
for the same answer.

    .venv/bin/python benchmarks/bench_validation.py --scaling [50 500 5000] [--rows 300]
        [--baseline REV]

validates synthetic wide cohorts (:func:`wide_cohort`) of each width, in two
variants: *uniform* (features of a kind share their range, nothing missing)
and *varied* (each numeric and integer feature has its own range and 5 % of its
values missing: the worst case for checks that run many columns as one GX
expectation, since no two ranges match and every null check runs per column).
It saves the table (wall and CPU seconds, the report's expectations and the
expectations GX ran) to ``benchmarks/results/validation_scaling.json`` and
``.md``. With ``--baseline REV`` the same cohorts are validated, in the same
run, by the ``cohortlm`` of git revision REV (exported to a temporary folder
and imported in a child process), and the table gains its times and the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cohortlm.cohort.rules import RULES
from cohortlm.cohort.study import StudySpec, load_study


def pandas_counts(df: pd.DataFrame, spec: StudySpec) -> dict[str, int | None]:
    """The reference: every expectation's unexpected count, written directly in pandas."""
    out: dict[str, int | None] = {}
    idc = spec.id_column
    out[f"not_null({idc})"] = int(df[idc].isna().sum())
    out[f"unique({idc})"] = int(df[idc].duplicated(keep=False).sum())
    ts = spec.timestamp_column
    if ts is not None:
        out[f"not_null({ts})"] = int(df[ts].isna().sum())
        out[f"date({ts})"] = int((pd.to_datetime(df[ts], errors="coerce").isna() & df[ts].notna()).sum())
    for f in spec.features:
        s = df[f.name]
        if f.type in ("numeric", "integer"):
            v = s.to_numpy(dtype=float)
            if f.min is not None or f.max is not None:
                lo = -np.inf if f.min is None else f.min
                hi = np.inf if f.max is None else f.max
                out[f"in_range({f.name})"] = int(((v < lo) | (v > hi)).sum())
            if f.type == "integer":
                out[f"whole_numbers({f.name})"] = int((~np.isnan(v) & (np.floor(v) != v)).sum())
        elif f.type == "binary":
            out[f"binary({f.name})"] = int((s.notna() & ~s.isin([0, 1])).sum())
        else:
            out[f"in_set({f.name})"] = int((s.notna() & ~s.isin(list(f.categories or ()))).sum())
        out[f"not_null({f.name})"] = int(s.isna().sum())
    for r in spec.rules:
        out[r] = int(RULES[r].broken(df).sum())
    return out


def wide_cohort(
    n_features: int, *, rows: int = 300, seed: int = 0, varied: bool = False
) -> tuple[pd.DataFrame, StudySpec]:
    """A synthetic wide cohort that passes its spec: features in turn numeric, integer, binary, categorical.

    EHR-derived cohorts have hundreds to thousands of columns; this one has
    ``n_features`` of them, an id and a 0/1 outcome. ``varied``: each numeric
    and integer feature has its own maximum and 5 % of its values missing
    (under its 10 % limit).
    """
    from cohortlm.cohort.study import study_from_dict

    rng = np.random.default_rng(seed)
    data: dict[str, Any] = {"patient_id": np.arange(rows)}
    features: list[dict[str, Any]] = []
    own = 0
    for i in range(n_features):
        name = f"f{i}"
        kind = i % 4
        if kind in (0, 1) and varied:
            own += 1
        if kind == 0:
            data[name] = rng.normal(50, 10, rows).clip(0, 100)
            features.append({"name": name, "type": "numeric", "min": 0, "max": 100 + own, "max_missing": 0.1})
        elif kind == 1:
            data[name] = rng.integers(0, 10, rows)
            features.append({"name": name, "type": "integer", "min": 0, "max": 10 + own, "max_missing": 0.1})
        elif kind == 2:
            data[name] = rng.integers(0, 2, rows)
            features.append({"name": name, "type": "binary"})
        else:
            data[name] = rng.choice(["a", "b", "c"], rows)
            features.append({"name": name, "type": "categorical", "categories": ["a", "b", "c"]})
    if varied:
        missing = np.arange(rows) < rows // 20
        for f in features:
            if f["type"] in ("numeric", "integer"):
                data[f["name"]] = np.where(rng.permutation(missing), np.nan, data[f["name"]])
    data["outcome"] = rng.integers(0, 2, rows)
    spec = study_from_dict(
        {
            "name": "wide",
            "id_column": "patient_id",
            "features": features,
            "endpoints": [{"name": "event", "column": "outcome"}],
            "split": {"sizes": {"train": 0.6, "validation": 0.2, "test": 0.2}},
        },
        source=f"wide cohort, {n_features} features",
    )
    return pd.DataFrame(data), spec


def _best(fn: Any, repeats: int) -> tuple[float, Any]:
    best, value = float("inf"), None
    for _ in range(repeats):
        t = time.perf_counter()
        value = fn()
        best = min(best, time.perf_counter() - t)
    return best, value


def _build_cohort(folder: Path) -> Path:
    from cohortlm.cohort.featurise import featurise
    from cohortlm.cohort.synthetic import generate_cohort

    generate_cohort(n=15004, seed=0).write(folder / "raw")
    table = featurise(folder / "raw", load_study("ra_iorra")).table
    path = folder / "cohort.parquet"
    table.to_parquet(path, index=False)
    return path


VARIANTS = ("uniform", "varied")


def measure(widths: list[int], rows: int) -> list[dict[str, Any]]:
    """Validate the wide cohorts of each width and variant: wall and CPU seconds, expectations."""
    from cohortlm.cohort.validation import validate_table

    validate_table(*wide_cohort(4, rows=rows))  # GX imported and warmed up
    table = []
    for width in widths:
        for variant in VARIANTS:
            df, spec = wide_cohort(width, rows=rows, varied=variant == "varied")
            wall, cpu = time.perf_counter(), time.process_time()
            result = validate_table(df, spec)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            row = {
                "features": width,
                "cohort": variant,
                "rows": rows,
                "expectations": len(result.outcomes),
                # What GX ran: one per expectation where the code has no such count.
                "gx_expectations_run": getattr(result, "gx_expectations", len(result.outcomes)),
                "success": result.success,
                "wall_seconds": round(wall, 2),
                "cpu_seconds": round(cpu, 2),
                "cpu_ms_per_feature": round(1000 * cpu / width, 2),
            }
            table.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    return table


def _baseline(rev: str, widths: list[int], rows: int) -> list[dict[str, Any]]:
    """:func:`measure` with the ``cohortlm`` of git revision ``rev``, in a child process."""
    import io
    import tarfile

    archive = subprocess.run(["git", "archive", rev, "cohortlm"], capture_output=True, check=True).stdout
    with tempfile.TemporaryDirectory() as tmp:
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(tmp, filter="data")
        child = subprocess.run(
            [sys.executable, __file__, "--measure", *map(str, widths), "--rows", str(rows)],
            env={**os.environ, "PYTHONPATH": tmp},
            stdout=subprocess.PIPE,
            check=True,
            text=True,
        )
    return list(json.loads(child.stdout))


def scaling(widths: list[int], rows: int, out: Path, baseline: str | None) -> int:
    """Validate wide cohorts of each width (and with ``baseline``'s code); print and save the table."""
    from cohortlm.cohort.validation_gx import CHUNK_COLUMNS, STACK_COLUMNS

    base_rev = None
    table = measure(widths, rows)
    if baseline is not None:
        base_rev = subprocess.run(
            ["git", "rev-parse", "--short", baseline], capture_output=True, check=True, text=True
        ).stdout.strip()
        for row, old in zip(table, _baseline(base_rev, widths, rows), strict=True):
            row["baseline"] = {k: old[k] for k in ("expectations", "success", "wall_seconds", "cpu_seconds")}
            row["baseline_cpu_over_cpu"] = round(old["cpu_seconds"] / row["cpu_seconds"], 1)
    import great_expectations as gx

    report = {
        "benchmark": "validation_scaling",
        "what": "validate_table on synthetic wide cohorts (numeric, integer, binary, categorical in turn); "
        "uniform: features of a kind share their range, nothing missing; varied: each numeric and "
        "integer feature has its own range and 5 % missing values",
        "chunk_columns": CHUNK_COLUMNS,
        "stack_columns": STACK_COLUMNS,
        "baseline_revision": base_rev,
        "table": table,
        "load_average_1min_at_end": round(os.getloadavg()[0], 2),
        "great_expectations": gx.__version__,
        "pandas": pd.__version__,
        "python": sys.version.split()[0],
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.system()}",
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    out.with_suffix(".md").write_text(scaling_markdown(report, rows))
    print("\n".join(_markdown_table(table)))
    ok = all(r["success"] for r in table) and all(r.get("baseline", r)["success"] for r in table)
    return 0 if ok else 1


def scaling_markdown(report: dict[str, Any], rows: int) -> str:
    """``validation_scaling.md``: the table of ``report`` and what its columns mean."""
    base = report.get("baseline_revision")
    text = [
        f"# Validation scaling ({rows} rows, GX {report['great_expectations']}, {report['machine']})",
        "",
        *_markdown_table(report["table"]),
        "",
        "*expectations*: rows of the report (one per column and check). *GX expectations run*: what",
        "Great Expectations ran for them (checks shared by many columns run once on their stacked",
        f"values, {report['stack_columns']} columns at most; a failing stack's columns run one by one).",
        "*uniform*: features of a kind share their range, nothing missing. *varied*: each numeric and",
        "integer feature has its own range and 5 % missing values, so their range and null checks run",
        "per column: the worst case for stacking with a cohort that passes.",
    ]
    if base:
        text += ["", f"Baseline: revision {base} (a GX expectation per report row), same cohorts, same run."]
    text += [
        "",
        f"Load average at the end: {report['load_average_1min_at_end']} "
        "(CPU seconds do not count other processes; wall seconds do).",
    ]
    return "\n".join(text) + "\n"


def _markdown_table(table: list[dict[str, Any]]) -> list[str]:
    with_base = all("baseline" in r for r in table)
    head = "| features | cohort | expectations | GX expectations run | wall s | CPU s | CPU ms/feature |"
    rule = "|---:|---|---:|---:|---:|---:|---:|"
    if with_base:
        head += " baseline GX expectations | baseline wall s | baseline CPU s | CPU ratio |"
        rule += "---:|---:|---:|---:|"
    lines = [head, rule]
    for r in table:
        line = (
            f"| {r['features']:,} | {r['cohort']} | {r['expectations']:,} | {r['gx_expectations_run']:,} "
            f"| {r['wall_seconds']} | {r['cpu_seconds']} | {r['cpu_ms_per_feature']} |"
        )
        if with_base:
            b = r["baseline"]
            line += (
                f" {b['expectations']:,} | {b['wall_seconds']} | {b['cpu_seconds']} "
                f"| {r['baseline_cpu_over_cpu']}x |"
            )
        lines.append(line)
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path)
    parser.add_argument("--study", default="ra_iorra")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/validation.json"))
    parser.add_argument(
        "--scaling",
        type=int,
        nargs="*",
        metavar="FEATURES",
        help="instead: validate wide cohorts of these widths (default 50 500 5000) and save the table",
    )
    parser.add_argument("--rows", type=int, default=300, help="rows of the wide cohorts (--scaling)")
    parser.add_argument(
        "--baseline", metavar="REV", help="with --scaling: also time the cohortlm of git revision REV"
    )
    parser.add_argument("--measure", type=int, nargs="+", help=argparse.SUPPRESS)  # the baseline's child
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.rows)))
        return 0
    if args.scaling is not None:
        out = args.out if args.out != Path("benchmarks/results/validation.json") else None
        return scaling(
            args.scaling or [50, 500, 5000],
            args.rows,
            out or Path("benchmarks/results/validation_scaling.json"),
            args.baseline,
        )
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    spec = load_study(args.study)
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data or _build_cohort(Path(tmp))
        from cohortlm.cohort.io import read_table

        df = read_table(data)
    t = time.perf_counter()
    from cohortlm.cohort.validation import validate_table

    cold_result = validate_table(df, spec)
    cold = time.perf_counter() - t
    warm, result = _best(lambda: validate_table(df, spec), args.repeats)
    ref, ref_counts = _best(lambda: pandas_counts(df, spec), args.repeats)
    gx_counts = {o.name: o.unexpected_count for o in result.outcomes if o.name in ref_counts}
    same = gx_counts == ref_counts
    import great_expectations as gx

    report = {
        "benchmark": "validation",
        "rows": len(df),
        "columns": df.shape[1],
        "expectations": len(result.outcomes),
        "failed_expectations": [o.summary for o in result.failed],
        "gx_cold_seconds": round(cold, 4),
        "gx_warm_seconds": round(warm, 4),
        "reference": "plain pandas/numpy checks, same counts",
        "reference_seconds": round(ref, 4),
        "gx_warm_over_reference": round(warm / ref, 1),
        "same_counts": same,
        "cold_result_success": cold_result.success,
        "great_expectations": gx.__version__,
        "pandas": pd.__version__,
        "python": sys.version.split()[0],
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.system()}",
        "repeats": args.repeats,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
