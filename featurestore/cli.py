"""``cohortlm features``: the Feast feature store (apply, materialize, training tables, drift checks).

A ``cohortlm.commands`` plugin (``pyproject.toml``): the domain core never
imports Feast. Feast is imported when a command runs, so ``cohortlm --help``
stays fast. Exit codes follow the CLI's: 1 the data failed a check, 2 usage.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import typer

from cohortlm.cli._app import app
from cohortlm.cli._app import err_console as console
from cohortlm.cli.paths import check_output_file
from cohortlm.cli.validation import _show_failures, _validate_file
from cohortlm.errors import DataError, UsageError

features_app = typer.Typer(
    help="The Feast feature store: apply, materialize, training tables, drift checks.",
    no_args_is_help=True,
)
app.add_typer(features_app, name="features")

_REPO_HELP = "Feature repository folder (default: feature_repo/ of the checkout)."
_CONFIG_HELP = "Feast YAML to use instead of feature_store.yaml (e.g. feature_store.cluster.yaml)."


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
    import featurestore as fs

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
    import featurestore as fs

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
    from cohortlm.cohort.features import OFFLINE_DATA_PATH, entity_frame
    from cohortlm.cohort.io import read_table, write_table
    from cohortlm.cohort.study import load_study

    check_output_file(out, "--out")
    import featurestore as fs

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
    import featurestore as fs
    from cohortlm.cohort.study import load_study

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
