"""CLI commands for the model store: ``signing-key``, ``promote``, ``champion``.

``serve`` and ``rollback`` (which can roll back an InferenceService) need
kserve and the Kubernetes client; they live in ``serving/cli.py`` and register
on this app through the ``cohortlm.commands`` entry points.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from cohortlm.cli._app import app
from cohortlm.cli.options import ModelStore, SigningKey
from cohortlm.contracts import BUNDLE_FILE


@app.command("signing-key")
def signing_key_cmd(
    out: Path = typer.Option(..., "--out", help="Folder for signing-key.pem (private) and verify-key.pem."),
) -> None:
    """Make a key pair for signing promoted bundles (P-256, PEM); keys are never overwritten.

    Keep signing-key.pem where promotions run (--signing-key or $COHORTLM_SIGNING_KEY);
    give verify-key.pem to the servers (--verify-key, the cohortlm-bundle-verify-key Secret).
    """
    from cohortlm.cli.paths import check_output_dir
    from cohortlm.models.bundle import generate_signing_key

    check_output_dir(out, "--out")
    generate_signing_key(out / "signing-key.pem", out / "verify-key.pem")
    typer.echo(str(out / "signing-key.pem"))
    typer.echo(str(out / "verify-key.pem"))


@app.command()
def promote(
    bundle: Path = typer.Option(..., "--bundle", help="The bundle folder to make the champion."),
    store: ModelStore = None,
    decision: Path | None = typer.Option(
        None, "--decision", help="Gate decision record (JSON) to keep with the promoted version."
    ),
    check: bool = typer.Option(
        True, "--check/--no-check", help="Load the bundle and predict a synthetic row before promoting."
    ),
    signing_key: SigningKey = None,
) -> None:
    """Make BUNDLE the champion of its study in the local model store, atomically."""
    from cohortlm.store import registry

    if check:
        _self_check(bundle)
    version = registry.promote(bundle, store, decision=decision, signing_key=signing_key)
    study = json.loads((bundle / BUNDLE_FILE).read_text(encoding="utf-8"))["study"]["name"]
    typer.echo(f"champion of {study}: {version}")
    typer.echo(str(registry.champion(store, study)))


def _self_check(bundle: Path) -> None:
    """Load a bundle and predict one synthetic row built from its spec (no patient data)."""
    from cohortlm.errors import DataError
    from cohortlm.models.loaders import load_bundle

    predictor = load_bundle(bundle)
    spec = predictor.spec
    row: dict[str, object] = {}
    for f in spec.features:
        if f.type == "categorical":
            row[f.name] = (f.categories or ("",))[0]
        elif f.type == "binary":
            row[f.name] = 0.0
        else:
            lo = f.min if f.min is not None else 0.0
            hi = f.max if f.max is not None else lo + 1.0
            row[f.name] = float(round((lo + hi) / 2)) if f.type == "integer" else (lo + hi) / 2
    import pandas as pd

    proba = predictor.predict_proba(pd.DataFrame([row]))
    if list(proba.columns) != spec.endpoint_names or not ((proba >= 0) & (proba <= 1)).all().all():
        raise DataError(f"bundle {bundle} failed its self-check: no probability per endpoint; not promoted")


@app.command()
def champion(
    study: str = typer.Option("ra_iorra", "--study", help="Study whose champion to show."),
    store: ModelStore = None,
) -> None:
    """Print the folder of the current champion of a study (exit 1 when there is none)."""
    from cohortlm.store import registry

    path = registry.champion(store, study)
    if path is None:
        raise registry.PromotionError(
            f"study '{study}' has no champion in {store or registry.default_store()}"
        )
    typer.echo(str(path))
