"""CLI commands: ``runs list`` and ``runs compare`` (read the run folders under runs/).

Nothing heavy is imported: the run folders' JSON files say everything shown.
"""

from __future__ import annotations

from pathlib import Path

import typer

from cohortlm.cli._app import JSON_HELP, app, echo_json
from cohortlm.cli._app import err_console as console
from cohortlm.errors import UsageError
from cohortlm.run.runs import (
    DEFAULT_RUNS_DIR,
    RunRecord,
    find_run,
    iter_runs,
    policy_differences,
    recipe_differences,
)

runs_app = typer.Typer(
    help="The runs under runs/: list them, compare two (AUC per endpoint, policy, verdict).",
    no_args_is_help=True,
)
app.add_typer(runs_app, name="runs")

_DIR_HELP = "Folder holding the run folders."


def _auc(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _delta(value: float | None) -> str:
    return "-" if value is None else f"{value:+.3f}"


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.0f}s" if value < 120 else f"{value / 60:.1f}min"


@runs_app.command("list")
def runs_list(
    runs_dir: Path = typer.Option(DEFAULT_RUNS_DIR, "--dir", help=_DIR_HELP),
    study: str | None = typer.Option(None, "--study", help="Only runs of this study."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """One line per run: id, study, profile, verdict, mean test AUC per model, wall time."""
    from rich.console import Console
    from rich.table import Table

    if not runs_dir.is_dir() and (runs_dir != DEFAULT_RUNS_DIR or runs_dir.exists()):
        raise UsageError(f"--dir {runs_dir} is not a folder; runs are written to runs/ by `cohortlm run`")
    # No runs/ yet (nothing has run here): an empty list, not an error.
    records = [r for r in iter_runs(runs_dir) if study is None or r.study == study]
    if as_json:
        echo_json({"runs_dir": str(runs_dir), "runs": [r.to_dict() for r in records]})
        return
    if not records:
        console.print(
            f"no runs in {runs_dir}" + (f" for study {study}" if study else "") + "; `cohortlm run` makes one"
        )
        return
    table = Table(title=f"runs in {runs_dir} (test AUC: mean over endpoints)")
    for col in ("id", "study", "profile", "verdict", "AUC", "wall time"):
        table.add_column(col, justify="right" if col == "wall time" else "left")
    for r in records:
        aucs = ", ".join(f"{m} {_auc(r.mean_auc(m))}" for m in r.models) or "-"
        table.add_row(r.run_id, r.study or "-", r.profile or "-", r.verdict, aucs, _seconds(r.wall_seconds))
    Console(width=max(120, Console().width)).print(table)


def _compare_rows(a: RunRecord, b: RunRecord, model: str) -> list[dict[str, object]]:
    names = list(dict.fromkeys([e.endpoint for e in a.endpoints] + [e.endpoint for e in b.endpoints]))
    rows: list[dict[str, object]] = []
    for name in names:
        ea, eb = a.endpoint(name), b.endpoint(name)
        auc_a = ea.auc.get(model) if ea else None
        auc_b = eb.auc.get(model) if eb else None
        rows.append(
            {
                "endpoint": name,
                "n_a": ea.n if ea else None,
                "n_cases_a": ea.n_cases if ea else None,
                "n_b": eb.n if eb else None,
                "n_cases_b": eb.n_cases if eb else None,
                "auc_a": auc_a,
                "auc_b": auc_b,
                "delta": None if auc_a is None or auc_b is None else auc_b - auc_a,
                "verdict_a": ea.verdict if ea else None,
                "verdict_b": eb.verdict if eb else None,
            }
        )
    return rows


def _n(n: object, cases: object) -> str:
    return "-" if n is None else f"{n} ({cases})"


@runs_app.command("compare")
def runs_compare(
    run_a: str = typer.Argument(..., help="First run: an id (or its start) from `runs list`, or a folder."),
    run_b: str = typer.Argument(..., help="Second run, likewise; Δ is B − A."),
    model: str | None = typer.Option(
        None, "--model", help="Model whose AUCs are compared (default: run A's gate candidate)."
    ),
    runs_dir: Path = typer.Option(DEFAULT_RUNS_DIR, "--dir", help=_DIR_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Per endpoint: a model's test AUC in run A and run B and the difference; policies, recipes, verdicts.

    Δ is a difference between two runs, not a test: when the test splits differ
    (another seed, cohort or size) the two AUCs are on different patients, and
    the output says so.
    """
    from rich.console import Console
    from rich.table import Table

    a, b = find_run(run_a, runs_dir), find_run(run_b, runs_dir)
    a.require_readable()
    b.require_readable()
    chosen = model or a.candidate or (a.models[-1] if a.models else None)
    if chosen is None:
        raise UsageError(f"run {a.run_id} has no report/metrics.json; give --model or a finished run")
    known = set(a.models) | set(b.models)
    if known and chosen not in known:
        raise UsageError(f"--model {chosen}: the runs scored {', '.join(sorted(known))}")
    rows = _compare_rows(a, b, chosen)
    policy = policy_differences(a, b)
    recipe = recipe_differences(a, b)
    warnings: list[str] = []
    if a.study != b.study:
        warnings.append(f"the runs are of different studies ({a.study} and {b.study})")
    if a.split_hash and b.split_hash and a.split_hash != b.split_hash:
        warnings.append(
            "the test splits differ: each AUC is on other patients, so Δ is not a paired comparison"
        )
    if as_json:
        echo_json(
            {
                "a": a.to_dict(),
                "b": b.to_dict(),
                "model": chosen,
                "endpoints": rows,
                "policy_differences": {k: {"a": va, "b": vb} for k, (va, vb) in policy.items()},
                "recipe_differences": {k: {"a": va, "b": vb} for k, (va, vb) in recipe.items()},
                "warnings": warnings,
            }
        )
        return
    out = Console(width=max(120, Console().width))
    table = Table(title=f"{chosen}: test AUC, A = {a.run_id} ({a.profile}), B = {b.run_id} ({b.profile})")
    for col in ("endpoint", "n A (cases)", "AUC A", "n B (cases)", "AUC B", "Δ (B − A)", "gate A", "gate B"):
        table.add_column(col, justify="left" if col in ("endpoint", "gate A", "gate B") else "right")
    for r in rows:
        table.add_row(
            str(r["endpoint"]),
            _n(r["n_a"], r["n_cases_a"]),
            _auc(r["auc_a"]),  # type: ignore[arg-type]
            _n(r["n_b"], r["n_cases_b"]),
            _auc(r["auc_b"]),  # type: ignore[arg-type]
            _delta(r["delta"]),  # type: ignore[arg-type]
            str(r["verdict_a"] or "-"),
            str(r["verdict_b"] or "-"),
        )
    out.print(table)
    if policy:
        out.print("policy: " + "; ".join(f"{k} {va} -> {vb}" for k, (va, vb) in policy.items()))
    else:
        out.print("policy: the same in both runs" if a.policy else "policy: not recorded")
    if recipe:
        out.print("recipe: " + "; ".join(f"{k} {va} -> {vb}" for k, (va, vb) in recipe.items()))
    else:
        out.print("recipe: the same in both runs" if a.recipe and b.recipe else "recipe: not recorded")
    out.print(f"verdict: A {a.verdict} ({a.candidate} vs {a.champion})")
    out.print(f"         B {b.verdict} ({b.candidate} vs {b.champion})")
    for w in warnings:
        console.print(f"warning: {w}")
