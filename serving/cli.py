"""CLI commands that need the model server or the cluster: ``serve`` and ``rollback``
(and, from :mod:`serving.monitor_cli`, ``outcomes add`` and ``monitor``).

They register on ``cohortlm``'s app through the ``cohortlm.commands`` entry
point (``pyproject.toml``), so that the domain core never imports kserve; kserve
and the Kubernetes client are imported inside the commands, so that the rest of
the CLI never loads them.
"""

from __future__ import annotations

from pathlib import Path

import typer

from cohortlm.cli._app import app, bounded
from cohortlm.cli.options import ModelStore, VerifyKey


@app.command()
def serve(
    bundle: Path = typer.Option(
        ..., "--bundle", help="Promoted bundle folder, or the store's <study>/champion pointer (followed)."
    ),
    http_port: int = typer.Option(
        8080, "--http-port", min=0, max=65535, help="HTTP port (V1 and V2 REST); 0 picks a free one (logged)."
    ),
    host: str = typer.Option(
        "127.0.0.1", "--host", help="Address to listen on (0.0.0.0: every interface, as in a pod)."
    ),
    feature_repo: Path | None = typer.Option(
        None, "--feature-repo", help="Feast repository for requests that carry only patient_id."
    ),
    model_name: str | None = typer.Option(
        None, "--model-name", help="Served name (default: the study name)."
    ),
    grpc_port: int | None = typer.Option(
        None,
        "--grpc-port",
        min=0,
        max=65535,
        help="V2 gRPC port (off when not given); 0 picks a free one (logged).",
    ),
    watch_interval: float = typer.Option(
        5.0,
        "--watch-interval",
        callback=bounded(0, 86400),
        help="Seconds between checks for a new champion (0: off).",
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
    verify_key: VerifyKey = None,
    max_body_mb: float = typer.Option(
        16.0, "--max-body-mb", min=0.001, max=1024, help="Largest request body accepted, in MiB (413 above)."
    ),
    prediction_log: str | None = typer.Option(
        None,
        "--prediction-log",
        envvar="COHORTLM_PREDICTION_LOG",
        help="Record every prediction, pseudonymised, in this database: sqlite:///path or postgresql://...",
    ),
    pseudonym_key_file: Path | None = typer.Option(
        None,
        "--pseudonym-key-file",
        envvar="COHORTLM_PSEUDONYM_KEY_FILE",
        help="Secret key file for the log's patient pseudonyms (HMAC); the mounted Secret on the cluster.",
    ),
) -> None:
    """Serve a promoted bundle with KServe (V1 + V2 REST, /metrics) until stopped.

    The bundle's MANIFEST.json (and, with --verify-key, its signature) is
    verified, the model loaded and self-checked before the server starts; a
    bundle changed after promotion is refused. Exit 2 at once when the port is
    in use.
    """
    # kserve, imported when the server starts, parses sys.argv too and takes none of these options
    # (tests/serving/test_server_parser.py checks every one of them).
    from serving.server import serve as run_server

    log = None
    if prediction_log:
        from serving.log_writer import PredictionLog
        from serving.prediction_log import read_pseudonym_key

        log = PredictionLog(prediction_log, read_pseudonym_key(pseudonym_key_file))
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
        prediction_log=log,
    )


@app.command()
def rollback(
    study: str = typer.Option("ra_iorra", "--study", help="Study whose champion to roll back."),
    store: ModelStore = None,
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


# The prediction log's commands register on the same app (the module imports no kserve).
from serving import monitor_cli as _monitor_cli  # noqa: E402, F401
