"""CLI commands for models: ``train-baseline``, ``train-llm``, ``score``.

Without ``--data`` the commands use the synthetic RA cohort (15,004 patients,
seed 0), generated and featurised in memory in a few seconds, so that
``cohortlm train-llm --profile quick`` and ``cohortlm score`` work out of the box.
A table with a ``split`` column keeps its split; otherwise the study's seeded
split is applied.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from cohortlm.cli._app import JSON_HELP, MAX_PATIENTS, MAX_SEED, STATE, app, bounded, echo_json
from cohortlm.cli._app import err_console as console
from cohortlm.cli.options import CohortTable, Study
from cohortlm.errors import UsageError

if TYPE_CHECKING:
    import pandas as pd

    from cohortlm.cohort.study import StudySpec
MODES = ("baseline", "zero-shot", "fine-tuned")
DEFAULT_BASELINE_BUNDLE = Path("models/baseline")


def _llm_bundle_default(profile: str) -> Path:
    return Path(f"models/llm-{profile}")


def _setup_logging() -> None:
    logger = logging.getLogger("cohortlm")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.WARNING if STATE["quiet"] else logging.INFO)


def _load_data(data: Path | None, study: str) -> tuple[pd.DataFrame, StudySpec]:
    from cohortlm.cohort.io import read_table
    from cohortlm.cohort.split import split_table
    from cohortlm.cohort.study import load_study

    spec = load_study(study)
    if data is None:
        if spec.featuriser != "ra_visits":
            raise UsageError(f"study '{spec.name}' has no synthetic cohort; pass --data TABLE")
        import tempfile

        from cohortlm.cohort.featurise import featurise
        from cohortlm.cohort.synthetic import generate_cohort

        status = console.status("no --data: generating the synthetic cohort (15,004 patients, seed 0)")
        with status, tempfile.TemporaryDirectory() as tmp:
            generate_cohort(n=15004, seed=0).write(tmp)
            table = featurise(tmp, spec).table
    else:
        from cohortlm.cohort.conform import conform_table

        # A flat file as exported or the featurised table: conforming is a no-op on the latter.
        table = conform_table(read_table(data, what="--data"), spec, what=f"--data {data.name}").table
    if "split" not in table.columns:
        table = split_table(table, spec)
    return table, spec


def _report_bundle(path: Path, note: str) -> None:
    """A bundle written: the note for people on stderr, its folder on stdout (what a script reads)."""
    console.print(f"{note} -> {path}")
    typer.echo(str(path))


def _split_rows(table: pd.DataFrame, split: str) -> pd.DataFrame:
    if split == "all":
        return table
    rows = table[table["split"] == split]
    if rows.empty:
        raise UsageError(f"the table has no rows in split '{split}'")
    return rows


@app.command("train-baseline")
def train_baseline_cmd(
    data: CohortTable = None,
    study: Study = "ra_iorra",
    out: Path = typer.Option(DEFAULT_BASELINE_BUNDLE, "--out", help="Bundle folder to write."),
    class_weight: str = typer.Option("none", "--class-weight", help="'none' or 'balanced'."),
    seed: int = typer.Option(0, "--seed", callback=bounded(0, MAX_SEED), help="Solver random state."),
) -> None:
    """Train the logistic-regression baseline (one pipeline per endpoint) on the train split."""
    from cohortlm.models.baseline import train_baseline

    if class_weight not in ("none", "balanced"):
        raise UsageError(f"--class-weight must be 'none' or 'balanced', got '{class_weight}'")
    table, spec = _load_data(data, study)
    train = _split_rows(table, "train")
    weight = None if class_weight == "none" else class_weight
    model = train_baseline(train, spec, class_weight=weight, seed=seed)
    _report_bundle(model.save(out), f"baseline trained on {len(train):,} patients")


@app.command("train-llm")
def train_llm_cmd(
    profile: str = typer.Option("quick", "--profile", help="smoke, quick (CPU default) or paper."),
    base_model: str | None = typer.Option(
        None, "--base-model", help="HF folder or .gguf file; default: the profile's (SmolLM2-135M for quick)."
    ),
    data: CohortTable = None,
    study: Study = "ra_iorra",
    out: Path | None = typer.Option(None, "--out", help="Bundle folder; default models/llm-<profile>."),
    max_steps: int | None = typer.Option(
        None, "--max-steps", callback=bounded(1, 1_000_000), help="Override the profile's steps."
    ),
    max_train_rows: int | None = typer.Option(
        None,
        "--max-train-rows",
        callback=bounded(1, MAX_PATIENTS),
        help="Override the profile's training subset size.",
    ),
    quantization: str | None = typer.Option(None, "--quantization", help="auto, nf4 or none."),
    device: str | None = typer.Option(None, "--device", help="cpu or cuda (default: cuda if available)."),
    resume: bool = typer.Option(True, "--resume/--no-resume", help="Continue from a checkpoint in --out."),
) -> None:
    """Fine-tune a base LLM with (Q)LoRA on the train split and write an LLM bundle."""
    from cohortlm.models.llm.qlora import train_qlora
    from cohortlm.run.profiles import get_profile

    _setup_logging()
    prof = get_profile(profile)
    changes: dict[str, object] = {}
    if max_steps is not None:
        changes["max_steps"] = max_steps
    if max_train_rows is not None:
        changes["max_train_rows"] = max_train_rows
    if quantization is not None:
        changes["quantization"] = quantization
    if device is not None:
        changes["device"] = device
    try:
        config = prof.qlora.with_overrides(**changes)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    table, spec = _load_data(data, study)
    target = out or _llm_bundle_default(profile)
    path = train_qlora(
        _split_rows(table, "train"),
        spec,
        config,
        out_dir=target,
        base_model=prof.base_model_or(base_model),
        resume=resume,
    )
    _report_bundle(path, f"LLM bundle ({prof.name} profile)")


@app.command("score")
def score_cmd(
    mode: str = typer.Option("fine-tuned", "--mode", help="baseline, zero-shot or fine-tuned."),
    bundle: Path | None = typer.Option(
        None,
        "--bundle",
        help="Bundle folder (baseline / fine-tuned); default models/baseline or models/llm-<profile>.",
    ),
    base_model: str | None = typer.Option(
        None, "--base-model", help="Zero-shot: HF folder or .gguf; default: the profile's."
    ),
    profile: str = typer.Option("quick", "--profile", help="Sets LLM batch size and the test subset size."),
    data: CohortTable = None,
    study: Study = "ra_iorra",
    split: str = typer.Option("test", "--split", help="train, validation, test or all."),
    limit: int | None = typer.Option(
        None,
        "--limit",
        callback=bounded(1, MAX_PATIENTS),
        help="Score a seeded subset of this many rows (LLM default: the profile's).",
    ),
    out: Path | None = typer.Option(
        None, "--out", help="Scores table (.parquet/.csv); default scores-<mode>.parquet."
    ),
    batch_size: int | None = typer.Option(
        None, "--batch-size", callback=bounded(1, 4096), help="Patients per forward pass."
    ),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Score patients: a scores table (id, split, one probability per endpoint) and AUCs when labels exist."""
    from cohortlm.cohort.io import write_table
    from cohortlm.models.llm.scoring import zero_shot_scorer
    from cohortlm.models.loaders import score_table
    from cohortlm.run.profiles import get_profile

    _setup_logging()
    if mode not in MODES:
        raise UsageError(f"--mode must be one of {', '.join(MODES)}, got '{mode}'")
    if split not in ("train", "validation", "test", "all"):
        raise UsageError(f"--split must be train, validation, test or all, got '{split}'")
    prof = get_profile(profile)
    table, spec = _load_data(data, study)
    rows = _split_rows(table, split)
    n_rows = limit if limit is not None else (None if mode == "baseline" else prof.eval_rows)
    if n_rows is not None and len(rows) > n_rows:
        rows = rows.sample(n=n_rows, random_state=spec.split.seed).sort_index()
    model: object
    if mode == "zero-shot":
        model = zero_shot_scorer(prof.base_model_or(base_model), spec)
    else:
        from cohortlm.models.bundle import read_bundle_metadata
        from cohortlm.models.loaders import load_bundle

        path = bundle or (DEFAULT_BASELINE_BUNDLE if mode == "baseline" else _llm_bundle_default(profile))
        want = "baseline" if mode == "baseline" else "llm"
        kind = read_bundle_metadata(path)["kind"]
        if kind != want:
            raise UsageError(f"--mode {mode} needs a {want} bundle, but {path} is a {kind} bundle")
        model = load_bundle(path, spec=spec)
    progress = not (as_json or console.quiet)
    scores = score_table(model, rows, spec, batch_size=batch_size or prof.score_batch_size, progress=progress)
    target = out or Path(f"scores-{mode}.parquet")
    write_table(scores, target)
    aucs = _aucs(rows, scores, spec)
    if as_json:
        echo_json({"mode": mode, "split": split, "n": len(rows), "scores": str(target), "endpoints": aucs})
        return
    _print_aucs(aucs, title=f"{mode} scores, split {split}, {len(rows):,} patients")
    typer.echo(str(target))


def _aucs(rows: pd.DataFrame, scores: pd.DataFrame, spec: StudySpec) -> list[dict[str, object]]:
    """Per endpoint: cases, patients with a label, and the AUC (None with one class only)."""
    from sklearn.metrics import roc_auc_score

    if not set(spec.endpoint_columns) <= set(rows.columns):
        return []
    labels = spec.labels(rows).reset_index(drop=True)
    out: list[dict[str, object]] = []
    for name in spec.endpoint_names:
        y = labels[name]
        keep = y.notna().to_numpy()
        yk, sk = y[keep].to_numpy(), scores[name].to_numpy()[keep]
        auc = float(roc_auc_score(yk, sk)) if len(set(yk)) == 2 else None
        out.append({"endpoint": name, "n": len(yk), "n_cases": int(yk.sum()), "auc": auc})
    return out


def _print_aucs(aucs: list[dict[str, object]], *, title: str) -> None:
    from rich.table import Table

    if not aucs:
        return
    table = Table(title=title)
    for col in ("endpoint", "cases", "AUC"):
        table.add_column(col, justify="left" if col == "endpoint" else "right")
    for row in aucs:
        auc = "n/a" if row["auc"] is None else f"{row['auc']:.3f}"
        table.add_row(str(row["endpoint"]), f"{row['n_cases']}/{row['n']}", auc)
    console.print(table)
