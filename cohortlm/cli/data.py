"""CLI commands for data: ``synth``, ``featurise``, ``split``, ``studies``, ``init-study``."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from cohortlm.cli._app import MAX_SEED, app, bounded
from cohortlm.cli._app import err_console as console
from cohortlm.cli.paths import check_output_dir, check_output_file
from cohortlm.errors import UsageError


def _print_counts(title: str, counts: dict[str, int]) -> None:
    from rich.table import Table

    table = Table(title=title)
    table.add_column("item")
    table.add_column("patients", justify="right")
    for k, v in counts.items():
        table.add_row(k, f"{v:,}")
    console.print(table)


@app.command()
def synth(
    out: Path = typer.Option(..., "--out", help="Folder for patients/visits/medications Parquet tables."),
    n: int = typer.Option(
        15004, "--n", callback=bounded(10, 1_000_000), help="Number of patients (the seed study has 15,004)."
    ),
    seed: int = typer.Option(
        0, "--seed", callback=bounded(0, MAX_SEED), help="Random seed; the same seed gives identical data."
    ),
) -> None:
    """Write a synthetic IORRA-like RA registry (raw tables) to OUT."""
    from cohortlm.cohort.synthetic import dropout_count, generate_cohort

    check_output_dir(out, "--out")
    with console.status(f"generating {n:,} synthetic patients"):
        cohort = generate_cohort(n=n, seed=seed)
        paths = cohort.write(out)
    _print_counts(
        f"synthetic cohort (seed {seed}) -> {out}",
        {
            "patients": len(cohort.patients),
            "of whom under two years of follow-up": dropout_count(n),
            "visits (rows)": len(cohort.visits),
            "medication episodes (rows)": len(cohort.medications),
        },
    )
    for p in paths.values():
        typer.echo(str(p))


@app.command()
def featurise(
    study: str = typer.Option("ra_iorra", "--study", help="Study name or YAML file."),
    raw: Path = typer.Option(
        ..., "--raw", help="Raw tables folder (or the flat file for a study without featuriser)."
    ),
    out: Path = typer.Option(
        ..., "--out", help="Output table (.parquet or .csv), one row per eligible patient."
    ),
) -> None:
    """Turn raw registry tables into one row per eligible patient."""
    from cohortlm.cohort.featurise import featurise as run_featurise
    from cohortlm.cohort.io import write_table
    from cohortlm.cohort.study import load_study

    check_output_file(out, "--out")
    spec = load_study(study)
    with console.status("featurising"):
        result = run_featurise(raw, spec)
    write_table(result.table, out, provenance=result.provenance)  # Parquet keeps whether it is synthetic
    summary = {"patients in raw data": result.n_input}
    summary.update({f"excluded: {k}": v for k, v in result.exclusions.items()})
    summary["included"] = result.n_included
    _print_counts(f"featurise ({spec.name})", summary)
    for line in result.notes:
        console.print(f"note: {line}", highlight=False)
    exclusions_path = out.with_name(out.name + ".exclusions.json")
    exclusions_path.write_text(
        json.dumps(
            {"n_input": result.n_input, "n_included": result.n_included, **result.exclusions}, indent=2
        )
    )
    typer.echo(str(out))


@app.command("split")
def split_cmd(
    study: str = typer.Option("ra_iorra", "--study", help="Study name or YAML file."),
    data: Path = typer.Option(..., "--data", help="Featurised table (.parquet or .csv)."),
    out: Path | None = typer.Option(None, "--out", help="Write the table with a `split` column here."),
) -> None:
    """Assign each patient to train/validation/test (seeded, by patient) and print the counts."""
    from cohortlm.cohort.io import read_table, write_table
    from cohortlm.cohort.split import split_table
    from cohortlm.cohort.study import load_study

    if out is not None:
        check_output_file(out, "--out")
    spec = load_study(study)
    table = split_table(read_table(data, what="--data"), spec)
    counts = table["split"].value_counts()
    _print_counts(
        f"split (seed {spec.split.seed})", {k: int(counts.get(k, 0)) for k in ("train", "validation", "test")}
    )
    if out is not None:
        if out.resolve() == data.resolve():
            raise UsageError("--out must differ from --data: the input file is never modified")
        write_table(table, out)
        typer.echo(str(out))


@app.command()
def studies() -> None:
    """List the built-in studies."""
    from cohortlm.cohort.study import builtin_studies, load_study

    for name in builtin_studies():
        spec = load_study(name)
        typer.echo(f"{name}\t{len(spec.features)} features\t{len(spec.endpoints)} endpoints")


@app.command("init-study")
def init_study(
    data: Path = typer.Option(..., "--data", help="The cohort file (.csv or .parquet), one row per patient."),
    out: Path | None = typer.Option(None, "--out", help="Spec to write; default <data name>.study.yaml."),
    name: str | None = typer.Option(None, "--name", help="Study name; default from the file name."),
    outcome: list[str] = typer.Option(
        [], "--outcome", help="Column holding (or defining) an outcome; repeatable. Becomes an endpoint."
    ),
    id_column: str | None = typer.Option(
        None, "--id-column", help="The patient id column; default: guessed."
    ),
    force: bool = typer.Option(False, "--force", help="Overwrite --out if it exists."),
) -> None:
    """Draft a study spec from a cohort file: types, ranges, categories and missing shares, to edit.

    Nothing from the file is printed; the draft holds ranges rounded outwards and
    only categories with several patients each.
    """
    from cohortlm.cohort.draft import draft_study, snake_name
    from cohortlm.cohort.io import read_table
    from cohortlm.cohort.study import study_from_dict
    from cohortlm.errors import SpecError
    from cohortlm.yamlsafe import load_yaml_text

    target = out or data.with_name(f"{data.stem}.study.yaml")
    if target.exists() and not force:
        raise UsageError(f"--out {target} exists; choose another path or pass --force")
    check_output_file(target, "--out")
    study_name = snake_name(name or data.stem)
    if name is not None and study_name != name:
        raise UsageError(f"--name must be lower snake_case such as '{study_name}', got {name!r}")
    table = read_table(data, what="--data")
    draft = draft_study(table, name=study_name, source=data.name, outcomes=outcome, id_column=id_column)
    if draft.endpoints:  # without endpoints the draft is not a spec yet: the user adds them
        try:
            study_from_dict(load_yaml_text(draft.text, source=str(target)), source=str(target))
        except SpecError as exc:  # pragma: no cover - a drafting bug, said plainly
            raise SpecError(f"the draft does not load ({exc}); please report this") from None
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(draft.text, encoding="utf-8")
    kinds = ", ".join(f"{v} {k}" for k, v in sorted(draft.kinds.items()))
    _print_counts(
        f"drafted study {study_name} from {data.name} -> {target}",
        {
            "patients (rows)": len(table),
            "features drafted": sum(draft.kinds.values()),
            "columns left out": len(draft.left_out),
            "endpoints": draft.endpoints,
        },
    )
    console.print(f"features: {kinds or 'none'}")
    for line in draft.warnings:
        console.print(f"warning: {line}", highlight=False)
    if not draft.endpoints:
        console.print("note: no --outcome given: add at least one endpoint before the spec loads")
    console.print(f"next: check the draft, then `cohortlm validate --study {target} --data {data}`")
    typer.echo(str(target))
