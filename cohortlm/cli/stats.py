"""CLI commands: stats — ``cohortlm delong`` (compare two scores' AUCs), ``cohortlm report`` and
``cohortlm gate-power`` (a policy's operating characteristics at a test-split size).

A bad file or column (missing, unreadable, non-numeric, labels other than 0/1)
is a usage error: exit 2 with one line naming the option and the column.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from cohortlm.cli._app import JSON_HELP, MAX_SEED, app, bounded, echo_json, note
from cohortlm.errors import DataError, UsageError

#: gate-power: the largest test split, and the most simulated patients per row
#: (--n x --reps; the default 2,263 x 2,000 is 4.5 million).
GATE_POWER_MAX_N = 1_000_000
GATE_POWER_MAX_WORK = 200_000_000

if TYPE_CHECKING:
    import numpy as np

    from cohortlm.evaluation.stats.delong import DeLongResult

_ALTERNATIVES = ("two-sided", "greater", "less")


def _header(path: Path) -> list[str]:
    """The CSV's first row (its column names), read without reading the rest."""
    import csv

    if not path.is_file():
        raise UsageError(f"--csv: file not found: {path}")
    try:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            first = next(csv.reader(fh), None)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise UsageError(f"--csv: cannot read {path} as CSV ({type(exc).__name__})") from None
    if not first:
        raise UsageError(f"--csv: cannot read {path} as CSV (the file is empty)")
    return first


def _non_numeric(column: Any) -> int:
    """Values in a text column that are not numbers (none of them is shown)."""
    count = 0
    for value in column.to_pylist():
        if value is None:
            continue
        try:
            float(value)
        except ValueError:
            count += 1
    return count


def read_delong_columns(path: Path, columns: dict[str, tuple[str, str]]) -> dict[str, np.ndarray]:
    """Read the named columns of a CSV with pyarrow as float arrays (NaN where empty).

    Args:
        path: the CSV file; its first row names the columns.
        columns: key -> (column name, option that named it), e.g. ``{"y": ("label", "--label")}``.

    Raises:
        UsageError: the file is missing or not CSV, a column is absent or holds text
            (messages name the option and the column, never a value).
    """
    import numpy as np
    import pyarrow as pa
    from pyarrow import csv as pacsv

    names = _header(path)
    for name, option in columns.values():
        if name not in names:
            # The column names are not listed: without a header row, they are the first patient's values.
            raise UsageError(
                f"{option}: no column '{name}' in {path} ({len(names)} columns; "
                "the first row must be the header row naming them)"
            )
    wanted = list(dict.fromkeys(name for name, _ in columns.values()))
    try:
        table = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(include_columns=wanted))
    except (pa.ArrowInvalid, pa.ArrowKeyError, UnicodeDecodeError) as exc:
        raise UsageError(f"--csv: cannot read {path} as CSV ({type(exc).__name__})") from None
    out: dict[str, np.ndarray] = {}
    for key, (name, option) in columns.items():
        col = table.column(name)
        if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            bad = _non_numeric(col)
            if bad:
                raise UsageError(f"{option}: column '{name}' has {bad} non-numeric value(s)")
        elif pa.types.is_null(col.type):
            out[key] = np.full(len(col), np.nan)
            continue
        elif col.type not in _NUMPY_TYPES:
            raise UsageError(f"{option}: column '{name}' is {col.type}, not numbers")
        out[key] = _float_values(col.combine_chunks())
    return out


#: The types pyarrow's CSV reader gives numbers, and how their values buffer reads in numpy.
_NUMPY_TYPES = {"int64": "int64", "double": "float64", "bool": "bool"}


def _float_values(arr: Any) -> np.ndarray:
    """A pyarrow int64, double or bool Array as float64 numpy, NaN where null, read from its buffers.

    ``Array.to_numpy`` imports pandas (~0.5 s) on its first call and
    ``pyarrow.compute`` takes ~0.1 s to import; the buffers need neither.
    """
    import numpy as np

    offset, length = arr.offset, len(arr)
    validity, data = arr.buffers()
    kind = _NUMPY_TYPES[str(arr.type)]
    if kind == "bool":  # bit-packed, like the validity bitmap
        bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8), bitorder="little")
        values = bits[offset : offset + length].astype(np.float64)
    else:
        values = np.frombuffer(data, dtype=kind)[offset : offset + length].astype(np.float64)
    if validity is not None:
        valid = np.unpackbits(np.frombuffer(validity, dtype=np.uint8), bitorder="little")
        values[~valid[offset : offset + length].astype(bool)] = np.nan
    return values


def _fmt_ci(ci: tuple[float, float] | list[float]) -> str:
    lo, hi = ci
    return "n/a" if math.isnan(lo) else f"{lo:.4f} to {hi:.4f}"


@app.command("delong")
def delong_command(
    csv: Path = typer.Option(..., "--csv", help="CSV file with one row per patient."),
    label: str = typer.Option(..., "--label", help="Label column: 1 = case, 0 = control."),
    score_a: str = typer.Option(
        ..., "--score-a", help="Score column of model a (higher = more likely a case)."
    ),
    score_b: str = typer.Option(..., "--score-b", help="Score column of model b, same patients."),
    alternative: str = typer.Option(
        "two-sided", "--alternative", help="two-sided, greater (AUC a > AUC b) or less."
    ),
    conf_level: float = typer.Option(
        0.95,
        "--conf-level",
        callback=bounded(0, 1, open_interval=True),
        help="Level of the two-sided intervals, in (0, 1).",
    ),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Paired DeLong test of AUC(a) vs AUC(b) on the same patients (fast, Sun & Xu 2014).

    Rows with an empty label or score are left out (and counted on stderr).
    Only numpy and pyarrow are imported: a million rows take about a second.
    """
    if alternative not in _ALTERNATIVES:
        raise UsageError(f"--alternative must be 'two-sided', 'greater' or 'less', got {alternative!r}")
    if not 0.0 < conf_level < 1.0:
        raise UsageError(f"--conf-level must be in (0, 1), got {conf_level!r}")

    from cohortlm.evaluation.stats.delong import DeLongWarning, delong_test

    y, a, b = _delong_rows(csv, label, score_a, score_b)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DeLongWarning)
        try:
            result = delong_test(y, a, b, alternative=alternative, conf_level=conf_level)
        except ValueError as exc:
            raise DataError(str(exc)) from None
    for w in caught:
        typer.echo(f"warning: {w.message}", err=True)
    if as_json:
        echo_json(
            {
                "auc_a": result.auc_a,
                "auc_b": result.auc_b,
                "delta": result.delta,
                "z": result.z,
                "p_value": result.p_value,
                "ci_delta": list(result.ci_delta),
                "ci_auc_a": list(result.ci_auc_a),
                "ci_auc_b": list(result.ci_auc_b),
                "n_cases": result.n_cases,
                "n_controls": result.n_controls,
                "alternative": result.alternative,
            }
        )
        return
    _print_delong(result, score_a=score_a, score_b=score_b, conf_level=conf_level)


def _delong_rows(
    csv: Path, label: str, score_a: str, score_b: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels and both scores of the complete rows, checked (0/1 labels, both classes present)."""
    import numpy as np

    data = read_delong_columns(
        csv, {"y": (label, "--label"), "a": (score_a, "--score-a"), "b": (score_b, "--score-b")}
    )
    y, a, b = data["y"], data["a"], data["b"]
    bad = ~np.isnan(y) & (y != 0) & (y != 1)
    if bad.any():
        raise UsageError(f"--label: column '{label}' must hold 0 or 1; {int(bad.sum())} row(s) do not")
    complete = ~(np.isnan(y) | np.isnan(a) | np.isnan(b))
    if not complete.all():
        note(f"note: {int((~complete).sum())} row(s) with an empty label or score left out")
        y, a, b = y[complete], a[complete], b[complete]
    if y.size == 0:
        raise DataError(f"--csv {csv}: no row has a label and both scores; there is nothing to compare")
    n_cases = int(y.sum())
    if n_cases in (0, y.size):
        only = "cases (1)" if n_cases else "controls (0)"
        raise DataError(
            f"--label: column '{label}' holds only {only} in the {y.size} complete row(s); "
            "an AUC needs both cases and controls"
        )
    return y, a, b


def _print_delong(result: DeLongResult, *, score_a: str, score_b: str, conf_level: float) -> None:
    """The test's result as aligned lines of text."""
    alternative = result.alternative
    pct = f"{conf_level * 100:g}%"
    hyp = {"two-sided": "AUC a ≠ AUC b", "greater": "AUC a > AUC b", "less": "AUC a < AUC b"}[alternative]
    rows = [
        (
            "patients",
            f"{result.n_cases + result.n_controls} ({result.n_cases} cases, {result.n_controls} controls)",
        ),
        (f"AUC a ({score_a})", f"{result.auc_a:.4f}  {pct} CI {_fmt_ci(result.ci_auc_a)}"),
        (f"AUC b ({score_b})", f"{result.auc_b:.4f}  {pct} CI {_fmt_ci(result.ci_auc_b)}"),
        ("ΔAUC (a − b)", f"{result.delta:+.4f}  {pct} CI {_fmt_ci(result.ci_delta)}"),
        ("z", f"{result.z:.4f}"),
        (f"p ({alternative}: {hyp})", f"{result.p_value:.4g}"),
    ]
    width = max(len(k) for k, _ in rows)
    typer.echo("Paired DeLong test")
    for key, value in rows:
        typer.echo(f"  {key:<{width}}  {value}")


@app.command("report")
def report_command(
    run_dir: Path = typer.Argument(..., help="Run folder (labels.parquet, scores/<model>.parquet, ...)."),
    out: Path | None = typer.Option(None, "--out", help="Output folder [default: RUN_DIR/report]."),
    threshold: str = typer.Option(
        "youden", "--threshold", help="youden, closest_topleft, max_f1, or a number used as the threshold."
    ),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Write the ROC figure, Table 1 (Markdown + CSV), metrics.json and the gate decision in words."""
    from cohortlm.evaluation.endpoint_metrics import THRESHOLD_METHODS
    from cohortlm.evaluation.render import write_report

    method: str | float
    if threshold in THRESHOLD_METHODS:
        method = threshold
    else:
        try:
            method = float(threshold)
        except ValueError:
            raise UsageError(
                f"--threshold must be one of {', '.join(THRESHOLD_METHODS)} or a number, got {threshold!r}"
            ) from None
        if not 0.0 <= method <= 1.0:
            raise UsageError("--threshold must lie between 0 and 1 (a probability)")
    if not run_dir.is_dir():
        raise UsageError(f"RUN_DIR {run_dir} is not a folder; give a run folder (runs/<id>)")
    from cohortlm.cli.paths import check_output_dir

    check_output_dir(out if out is not None else run_dir / "report", "--out")
    paths = write_report(run_dir, out_dir=out, threshold_method=method)
    if as_json:
        from dataclasses import fields

        files = {f.name: getattr(paths, f.name) for f in fields(paths)}
        metrics = json.loads(paths.metrics_json.read_text(encoding="utf-8"))
        echo_json(
            {
                "files": {k: str(v) for k, v in files.items() if v is not None},
                "endpoints": metrics.get("endpoints", []),
                "models": metrics.get("models", []),
                "table1": metrics.get("table1", []),
                "decision": metrics.get("decision"),
            }
        )
        return
    typer.echo(f"wrote {paths.index_html} (open it in a browser)")
    typer.echo(f"wrote {paths.roc_png}")
    typer.echo(f"wrote {paths.table1_md} and {paths.table1_csv.name}")
    typer.echo(f"wrote {paths.metrics_json}")
    typer.echo(f"wrote {paths.summary_md}")
    if paths.decision_json is not None:
        from cohortlm.evaluation.gate import Decision

        decision = Decision.from_json(paths.decision_json.read_text(encoding="utf-8"))
        typer.echo("")
        typer.echo("\n".join(f"  {r}" if i else r for i, r in enumerate(decision.reasons)))


@app.command("gate-power")
def gate_power_command(
    policy: Path | None = typer.Option(
        None, "--policy", help="GatePolicy YAML; default: the packaged policy."
    ),
    n: int = typer.Option(
        2263, "--n", callback=bounded(20, GATE_POWER_MAX_N), help="Patients in the gating (test) split."
    ),
    study: str = typer.Option(
        "ra_iorra", "--study", help="Study name or YAML whose endpoint names the policy refers to."
    ),
    prevalences: str = typer.Option(
        "", "--prevalences", help="Comma-separated case shares per endpoint; default: the RA study's."
    ),
    reps: int = typer.Option(
        2000, "--reps", callback=bounded(1, 100_000), help="Simulated test splits per row."
    ),
    seed: int = typer.Option(0, "--seed", callback=bounded(0, MAX_SEED), help="Random seed."),
    processes: int = typer.Option(2, "--processes", callback=bounded(1, 64), help="Worker processes."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Operating characteristics of a gate policy at a test-split size, by simulation.

    Prints, for the policy and n, how often it promotes under the standard truths
    (an equal candidate, +0.05 AUC on 3 or all endpoints, a worse or miscalibrated
    candidate, 20 looks at one split), what it can show per endpoint, and warnings
    where the policy asks more than n patients can show.
    """
    from cohortlm.cli.checks import check_policy_endpoints
    from cohortlm.cohort.study import load_study
    from cohortlm.evaluation.gate import load_policy
    from cohortlm.evaluation.gate_power import design_table, gate_power, markdown_table, standard_cells
    from cohortlm.evaluation.stats.simulate import RA_PREVALENCES

    if n < 20:
        raise UsageError(f"--n must be at least 20, got {n}")
    if reps < 1:
        raise UsageError(f"--reps must be at least 1, got {reps}")
    if n * reps > GATE_POWER_MAX_WORK:
        raise UsageError(
            f"--n x --reps must be at most {GATE_POWER_MAX_WORK:,} simulated patients per row, "
            f"got {n:,} x {reps:,} = {n * reps:,}; lower --reps (or --n)"
        )
    pol = load_policy(policy)
    names = load_study(study).endpoint_names
    check_policy_endpoints(pol, names, policy_name=str(policy), study_name=f"study {study}")
    if prevalences:
        try:
            prev = tuple(float(p) for p in prevalences.split(","))
        except ValueError:
            raise UsageError(f"--prevalences must be comma-separated numbers, got {prevalences!r}") from None
        if len(prev) != len(names) or not all(0 < p < 1 for p in prev):
            raise UsageError(
                f"--prevalences must give {len(names)} shares in (0, 1), one per endpoint of {study}"
            )
    else:
        prev = RA_PREVALENCES
        if len(names) != len(prev):
            raise UsageError(f"study {study} has {len(names)} endpoints: give --prevalences")
    cells = standard_cells(n=n, prevalences=prev, names=names)
    rows = gate_power({"policy": pol}, cells, reps=reps, seed=seed, names=names, processes=processes)
    design, warns = design_table(pol, n=n, prevalences=prev, names=names)
    if as_json:
        echo_json({"n": n, "reps": reps, "cells": rows, "design": design, "warnings": warns})
        return
    typer.echo(
        f"Gate operating characteristics: {policy or 'default policy'}, n = {n:,}, {reps:,} runs per row"
    )
    typer.echo("")
    typer.echo(markdown_table(rows, ["policy"]))
    typer.echo(
        "| endpoint | prevalence | cases | SE ΔAUC | NI margin | P(equal passes NI) | ΔAUC for 80 % power |"
    )
    typer.echo("|---|---:|---:|---:|---:|---:|---:|")
    for d in design:
        typer.echo(
            f"| {d['endpoint']} | {d['prevalence']:.1%} | {d['cases']:.0f} | {d['se_delta']:.4f} | "
            f"{d['margin']:.3f} | {d['p_ni_equal']:.3f} | {d['mdd80']:.3f} |"
        )
    for w in warns:
        typer.echo(f"warning: {w}", err=True)
