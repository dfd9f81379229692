"""CLI commands: ``validate`` and the ``features`` group (Feast, imported lazily).

Exit codes follow the CLI policy: 0 valid, 1 the data failed a check, 2 usage
or spec error. Messages and reports carry names and counts, never a patient's
values or identifiers.
"""

from __future__ import annotations

import importlib
import sys
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import typer

from cohortlm.cli._app import JSON_HELP, app, echo_json
from cohortlm.cli._app import err_console as console
from cohortlm.cli.paths import check_output_dir, check_output_file
from cohortlm.errors import DataError, UsageError

if TYPE_CHECKING:
    from cohortlm.cohort.validation import ValidationResult
    from cohortlm.spec.study import StudySpec

features_app = typer.Typer(
    help="The Feast feature store: apply, materialize, training tables, drift checks.",
    no_args_is_help=True,
)
app.add_typer(features_app, name="features")

_REPO_HELP = "Feature repository folder (default: feature_repo/ of the checkout)."
_CONFIG_HELP = "Feast YAML to use instead of feature_store.yaml (e.g. feature_store.cluster.yaml)."


def _validate_file(study: str, data: Path, *, conform: bool = True) -> tuple[StudySpec, ValidationResult]:
    """Validate ``data`` against the study; with ``conform``, as the featuriser would read it.

    Conforming (mapped columns, codes to labels, yes/no to 1/0) is what
    ``cohortlm featurise`` does to a flat file, and a no-op on its output, so the
    file as exported and the featurised table validate alike.
    """
    from cohortlm.cohort.conform import conform_table
    from cohortlm.cohort.io import read_table
    from cohortlm.cohort.validation import validate_table
    from cohortlm.spec.study import load_study

    spec = load_study(study)
    table = read_table(data, what="--data")
    if conform:
        conformed = conform_table(table, spec, what=f"--data {data.name}")
        table = conformed.table
        for line in conformed.notes:
            console.print(f"note: {line}", highlight=False)
    return spec, validate_table(table, spec, data_name=data.name)


# The fix for each kind of failed expectation: in the data, in the spec, or either (said which when).
_FIXES = {
    "exists": "if the file names the column otherwise, map it in the spec (column: 'its header'); "
    "if the column is absent, the fix is in the data",
    "unique": "the fix is in the data: one row per patient",
    "not_null": "if values may be missing, allow it in the spec (max_missing: 0.1 allows 10 %); "
    "otherwise the fix is in the data",
    "in_range": "if these values are errors the fix is in the data; if the range is wrong, widen min/max",
    "in_set": "if these values are errors the fix is in the data; if they are real categories, "
    "add them to categories (codes: categories: {1: label, ...})",
    "binary": "declare what the column holds for yes and no (true_values: [yes], false_values: [no]; "
    "or [1] and [2]); anything else is fixed in the data",
    "whole_numbers": "if fractions are valid make the feature type: numeric; "
    "otherwise the fix is in the data",
    "date": "the fix is in the data: write dates as YYYY-MM-DD",
    "rule": "the fix is in the data: the values contradict each other",
}


def _fix_for(outcome: object, spec: StudySpec) -> str:
    kind, column = outcome.kind, outcome.column  # type: ignore[attr-defined]
    if kind == "type":
        if column in spec.endpoint_columns:
            return "the fix is in the data: an outcome column holds numbers or true/false"
        feature = next((f for f in spec.features if f.name == column), None)
        if feature is not None and feature.type == "categorical":
            return "if the column holds codes, declare them: categories: {1: label, 2: label} (or [1, 2, 3])"
        if feature is not None and feature.type == "binary":
            return _FIXES["binary"]
        return "the fix is in the data (numbers expected), or change the feature's type in the spec"
    return _FIXES.get(kind, "")


def _show_failures(result: ValidationResult, spec: StudySpec | None = None) -> None:
    from rich.table import Table

    table = Table(title=f"failed expectations ({len(result.failed)} of {len(result.outcomes)})")
    table.add_column("expectation")
    table.add_column("expects")
    table.add_column("rows breaking it", justify="right")
    if spec is not None:
        table.add_column("how to fix it")
    for o in result.failed:
        count = o.note or ("" if o.unexpected_count is None else f"{o.unexpected_count:,}")
        row = [o.name, o.description, count]
        if spec is not None:
            row.append(_fix_for(o, spec))
        table.add_row(*row)
    console.print(table)


@app.command()
def validate(
    study: str = typer.Option("ra_iorra", "--study", help="Study name or YAML file."),
    data: Path = typer.Option(..., "--data", help="Featurised table (.parquet or .csv); never modified."),
    report: Path | None = typer.Option(
        None, "--report", help="Folder for validation.json and validation.html (counts only)."
    ),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Validate a featurised table with the Great Expectations suite generated from the study.

    With ``--json`` the result (every expectation, counts only) is printed as
    JSON whether or not the data passes; the exit code still says which.
    """
    from cohortlm.cohort.validation import write_report

    if report is not None:
        check_output_dir(report, "--report")
    spec, result = _validate_file(study, data)
    if report is not None:
        paths = write_report(result, report)
        console.print(f"report: {paths['html']}")
    if as_json:
        out = result.to_dict()
        for item, o in zip(out["expectations"], result.outcomes, strict=True):
            if not o.success:
                item["fix"] = _fix_for(o, spec)
        echo_json(out)
        if not result.success:
            raise DataError(result.summary())
        return
    if not result.success:
        _show_failures(result, spec)
        raise DataError(result.summary())
    typer.echo(result.summary())


# ---------------------------------------------------------------------------- features


def _featurestore() -> ModuleType:
    """Import the Feast integration only when a features command runs."""
    try:
        return importlib.import_module("featurestore")
    except ModuleNotFoundError as exc:
        if exc.name != "featurestore":
            raise
    # A source checkout holds featurestore/ next to cohortlm/.
    root = Path(__file__).resolve().parents[2]
    if not (root / "featurestore" / "__init__.py").is_file():
        raise UsageError("the featurestore package is not installed; install cohortlm from its checkout")
    sys.path.insert(0, str(root))
    return importlib.import_module("featurestore")


def _parse_time(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(f"{option} must be an ISO date or time such as 2024-01-31") from None


@features_app.command("apply")
def features_apply(
    repo: Path | None = typer.Option(None, "--repo", help=_REPO_HELP),
    config: Path | None = typer.Option(None, "--config", help=_CONFIG_HELP),
    data: Path | None = typer.Option(
        None, "--data", help="Featurised Parquet to validate and install as the offline source first."
    ),
    study: str = typer.Option("ra_iorra", "--study", help="Study the data is validated against."),
) -> None:
    """Register entities, feature views and services (like `feast apply`)."""
    fs = _featurestore()
    if data is not None:
        # The offline store gets the file as it is: it must be the featurised table already.
        _, result = _validate_file(study, data, conform=False)
        if not result.success:
            _show_failures(result)
            raise DataError(result.summary() + "; the feature store was not changed")
        dest = fs.install_offline_data(data, repo)
        console.print(f"offline data: {dest}")
    store = fs.open_store(repo, config_file=config)
    summary = fs.apply(repo, store=store)
    typer.echo(
        f"applied project {summary.project}: entities {', '.join(summary.entities)}; "
        f"feature views {', '.join(summary.feature_views)}; "
        f"feature services {', '.join(summary.feature_services)}"
        + (f"; deleted {', '.join(summary.deleted)}" if summary.deleted else "")
    )


@features_app.command("materialize")
def features_materialize(
    repo: Path | None = typer.Option(None, "--repo", help=_REPO_HELP),
    config: Path | None = typer.Option(None, "--config", help=_CONFIG_HELP),
    start: str | None = typer.Option(
        None, "--start", help="Earliest event time (default: earliest in data)."
    ),
    end: str | None = typer.Option(None, "--end", help="Latest event time (default: now)."),
) -> None:
    """Load the latest feature values per patient into the online store."""
    fs = _featurestore()
    store = fs.open_store(repo, config_file=config)
    lo, hi = fs.materialize(
        repo, start=_parse_time(start, "--start"), end=_parse_time(end, "--end"), store=store
    )
    typer.echo(f"materialized {lo.isoformat()} .. {hi.isoformat()} into the online store")


@features_app.command("training-table")
def features_training_table(
    out: Path = typer.Option(..., "--out", help="Output table (.parquet or .csv)."),
    repo: Path | None = typer.Option(None, "--repo", help=_REPO_HELP),
    config: Path | None = typer.Option(None, "--config", help=_CONFIG_HELP),
    study: str = typer.Option("ra_iorra", "--study", help="Study name or YAML file."),
    entities: Path | None = typer.Option(
        None,
        "--entities",
        help="Table with the id column and event_timestamp (plus labels); "
        "default: every patient of the offline data as of its baseline.",
    ),
    service: str = typer.Option("ra_baseline_v1", "--service", help="Feature service to retrieve."),
) -> None:
    """Write a point-in-time correct training table from the offline store."""
    from cohortlm.cohort.io import read_table, write_table
    from cohortlm.spec.features import OFFLINE_DATA_PATH, entity_frame
    from cohortlm.spec.study import load_study

    check_output_file(out, "--out")
    fs = _featurestore()
    spec = load_study(study)
    store = fs.open_store(repo, config_file=config)
    if entities is not None:
        entity_df = read_table(entities, what="--entities")
    else:
        entity_df = entity_frame(
            read_table(Path(store.repo_path) / OFFLINE_DATA_PATH, what="offline data"), spec
        )
    table = fs.get_training_table(entity_df, service=service, store=store)
    write_table(table, out)
    typer.echo(f"{out}: {len(table):,} rows, {table.shape[1]} columns (service {service})")


@features_app.command("check")
def features_check(
    repo: Path | None = typer.Option(None, "--repo", help=_REPO_HELP),
    config: Path | None = typer.Option(None, "--config", help=_CONFIG_HELP),
    study: str = typer.Option("ra_iorra", "--study", help="Study name or YAML file."),
) -> None:
    """Check that the repository's definitions and the applied registry match the study spec."""
    from cohortlm.spec.study import load_study

    fs = _featurestore()
    spec = load_study(study)
    problems = [f"definitions: {p}" for p in fs.definition_drift(spec, repo)]
    store = fs.open_store(repo, config_file=config)
    problems += [f"registry: {p}" for p in fs.registry_drift(spec, store)]
    if problems:
        for p in problems:
            console.print(p)
        raise DataError(
            f"the feature store differs from study '{spec.name}' in {len(problems)} place(s); "
            "fix feature_repo/ or run `cohortlm features apply`"
        )
    typer.echo(f"feature store matches study '{spec.name}' (spec {spec.spec_hash[:12]})")
