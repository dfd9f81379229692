"""CLI command ``validate`` (Great Expectations, imported when it runs).

The ``features`` group needs Feast: it lives in ``featurestore/cli.py`` and
registers through the ``cohortlm.commands`` entry points.

Exit codes follow the CLI policy: 0 valid, 1 the data failed a check, 2 usage
or spec error. Messages and reports carry names and counts, never a patient's
values or identifiers.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from cohortlm.cli._app import JSON_HELP, app, echo_json
from cohortlm.cli._app import err_console as console
from cohortlm.cli.paths import check_output_dir
from cohortlm.errors import DataError

if TYPE_CHECKING:
    from cohortlm.cohort.study import StudySpec
    from cohortlm.cohort.validation import ValidationResult


def _validate_file(study: str, data: Path, *, conform: bool = True) -> tuple[StudySpec, ValidationResult]:
    """Validate ``data`` against the study; with ``conform``, as the featuriser would read it.

    Conforming (mapped columns, codes to labels, yes/no to 1/0) is what
    ``cohortlm featurise`` does to a flat file, and a no-op on its output, so the
    file as exported and the featurised table validate alike.
    """
    from cohortlm.cohort.conform import conform_table
    from cohortlm.cohort.io import read_table
    from cohortlm.cohort.study import load_study
    from cohortlm.cohort.validation import validate_table

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
            return (
                "an outcome column holds numbers or true/false; if it holds two words, declare them on "
                "the endpoint (true_values: [Yes], false_values: [No]); otherwise the fix is in the data"
            )
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
