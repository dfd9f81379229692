"""CLI commands for serving and promotion: ``serve``, ``promote``, ``rollback``, ``champion``.

The server and the cluster code live in ``serving/`` and import kserve; they
are imported inside the commands so that the rest of the CLI never loads them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from cohortlm.cli._app import app


@app.command()
def serve(
    bundle: Path = typer.Option(
        ..., "--bundle", help="Promoted bundle folder, or the store's <study>/champion pointer (followed)."
    ),
    http_port: int = typer.Option(8080, "--http-port", min=1, max=65535, help="HTTP port (V1 and V2 REST)."),
    host: str = typer.Option(
        "127.0.0.1", "--host", help="Address to listen on (0.0.0.0: every interface, as in a pod)."
    ),
    feature_repo: Path | None = typer.Option(
        None, "--feature-repo", help="Feast repository for requests that carry only patient_id."
    ),
    model_name: str | None = typer.Option(
        None, "--model-name", help="Served name (default: the study name)."
    ),
    grpc_port: int | None = typer.Option(None, "--grpc-port", help="V2 gRPC port (off when not given)."),
    watch_interval: float = typer.Option(
        5.0, "--watch-interval", min=0, help="Seconds between checks for a new champion (0: off)."
    ),
    allow_unpromoted: bool = typer.Option(
        False, "--allow-unpromoted", help="Serve a bundle without MANIFEST.json (development only)."
    ),
    auth_token_file: Path | None = typer.Option(
        None, "--auth-token-file", help="File with the bearer token the predict routes then require."
    ),
    enable_model_control: bool = typer.Option(
        False, "--enable-model-control", help="Keep the model load/unload routes (needs --auth-token-file)."
    ),
    verify_key: Path | None = typer.Option(
        None,
        "--verify-key",
        envvar="COHORTLM_VERIFY_KEY",
        help="Public key (PEM): serve only bundles signed with its private key at promotion.",
    ),
    max_body_mb: float = typer.Option(
        16.0, "--max-body-mb", min=0.001, max=1024, help="Largest request body accepted, in MiB (413 above)."
    ),
) -> None:
    """Serve a promoted bundle with KServe (V1 + V2 REST, /metrics) until stopped.

    The bundle's MANIFEST.json (and, with --verify-key, its signature) is
    verified, the model loaded and self-checked before the server starts; a
    bundle changed after promotion is refused. Exit 2 at once when the port is
    in use.
    """
    # kserve parses sys.argv when imported; hide our options from it.
    saved, sys.argv = sys.argv, sys.argv[:1]
    try:
        from serving.server import serve as run_server
    finally:
        sys.argv = saved
    run_server(
        bundle,
        http_port=http_port,
        host=host,
        grpc_port=grpc_port,
        model_name=model_name,
        feature_repo=feature_repo,
        watch_interval=watch_interval,
        require_manifest=not allow_unpromoted,
        auth_token_file=auth_token_file,
        model_control=enable_model_control,
        verify_key=verify_key,
        max_body_bytes=int(max_body_mb * 1024 * 1024),
    )


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
    store: Path | None = typer.Option(
        None, "--store", help="Model store (default: $COHORTLM_MODEL_STORE or ./models)."
    ),
    decision: Path | None = typer.Option(
        None, "--decision", help="Gate decision record (JSON) to keep with the promoted version."
    ),
    check: bool = typer.Option(
        True, "--check/--no-check", help="Load the bundle and predict a synthetic row before promoting."
    ),
    signing_key: Path | None = typer.Option(
        None,
        "--signing-key",
        envvar="COHORTLM_SIGNING_KEY",
        help="Private key (PEM) to sign the promoted copy with (MANIFEST.sig).",
    ),
) -> None:
    """Make BUNDLE the champion of its study in the local model store, atomically."""
    from cohortlm.store import registry

    if check:
        _self_check(bundle)
    version = registry.promote(bundle, store, decision=decision, signing_key=signing_key)
    study = json.loads((bundle / "bundle.json").read_text(encoding="utf-8"))["study"]["name"]
    typer.echo(f"champion of {study}: {version}")
    typer.echo(str(registry.champion(store, study)))


def _self_check(bundle: Path) -> None:
    """Load a bundle and predict one synthetic row built from its spec (no patient data)."""
    from cohortlm.errors import DataError
    from cohortlm.models.bundle import load_bundle

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
def rollback(
    study: str = typer.Option("ra_iorra", "--study", help="Study whose champion to roll back."),
    store: Path | None = typer.Option(
        None, "--store", help="Model store (default: $COHORTLM_MODEL_STORE or ./models)."
    ),
    isvc: str | None = typer.Option(
        None, "--isvc", help="Roll back this InferenceService on the cluster instead of the local store."
    ),
    namespace: str = typer.Option("cohortlm", "--namespace", help="Namespace of --isvc."),
) -> None:
    """Return to the previous champion (local store), or to the previous revision (--isvc)."""
    if isvc is not None:
        from serving.isvc import rollback as isvc_rollback

        isvc_rollback(isvc, namespace=namespace)
        typer.echo(f"{namespace}/{isvc}: canary traffic set to 0, the previous revision serves")
        return
    from cohortlm.store import registry

    version = registry.rollback(store, study)
    typer.echo(f"champion of {study}: {version}")


@app.command()
def champion(
    study: str = typer.Option("ra_iorra", "--study", help="Study whose champion to show."),
    store: Path | None = typer.Option(
        None, "--store", help="Model store (default: $COHORTLM_MODEL_STORE or ./models)."
    ),
) -> None:
    """Print the folder of the current champion of a study (exit 1 when there is none)."""
    from cohortlm.store import registry

    path = registry.champion(store, study)
    if path is None:
        raise registry.PromotionError(
            f"study '{study}' has no champion in {store or registry.default_store()}"
        )
    typer.echo(str(path))
