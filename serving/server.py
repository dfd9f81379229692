"""Entry point of the model server: parse arguments, load the model, start KServe's ModelServer.

    python -m serving.server --bundle models/ra_iorra/champion --http-port 8080
    cohortlm serve --bundle models/ra_iorra/champion          # the same, from the CLI

The process exits non-zero, with one line naming the problem, when the bundle
is refused (changed after promotion, unpromoted, unloadable, failed its
self-check); it never starts serving a model it could not check.

Privacy defaults: KServe's per-request latency log line is off, payload logging
does not exist in this server (it is an InferenceService ``logger`` setting,
which :mod:`serving.isvc` never sets), and no request body reaches a log line.
"""

from __future__ import annotations

import argparse
import gc
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cohortlm.errors import CohortlmError, UsageError

log = logging.getLogger("cohortlm.serving")


def _import_kserve_server() -> Any:
    """Import kserve's model_server without letting it parse our command line.

    ``kserve.model_server`` runs ``argparse.parse_known_args()`` on ``sys.argv``
    at import; options of ours that look like its own would be taken by it.
    """
    saved = sys.argv
    sys.argv = saved[:1]
    try:
        import kserve.model_server as model_server
    finally:
        sys.argv = saved
    return model_server


def served_name(bundle: str | Path) -> str:
    """The default served model name: the bundle's study name (stable across promoted versions)."""
    import os

    from cohortlm.bundle import read_bundle_metadata

    meta = read_bundle_metadata(os.path.realpath(bundle))
    return str(meta["study"]["name"])


def serve(
    bundle: str | Path,
    *,
    http_port: int = 8080,
    grpc_port: int | None = None,
    model_name: str | None = None,
    feature_repo: str | Path | None = None,
    watch_interval: float = 5.0,
    require_manifest: bool = True,
    max_batch: int = 1024,
) -> None:
    """Load a bundle and serve it until the process is stopped (SIGTERM/SIGINT).

    Args:
        bundle: a promoted bundle folder, or the store's ``<study>/champion``
            pointer (then a new champion is picked up without restart).
        http_port: REST port (V1 and V2) on all interfaces.
        grpc_port: V2 gRPC port; None turns gRPC off.
        model_name: the served name; the bundle's study name by default.
        feature_repo: a Feast repository, for requests that carry only ``patient_id``.
        watch_interval: seconds between checks of the champion pointer (0: off); SIGHUP checks at once.
        require_manifest: refuse an unpromoted bundle (no MANIFEST.json).
        max_batch: the most instances one request may carry.

    Raises:
        CohortlmError: the bundle was refused; nothing was started.
    """
    model_server = _import_kserve_server()
    from serving.metrics import RequestMetricsMiddleware
    from serving.model import CohortModel

    if not Path(bundle).exists():
        raise UsageError(f"bundle {bundle} does not exist")
    name = model_name or served_name(bundle)
    from serving.features import feast_lookup, lookup_from_env

    lookup = feast_lookup(feature_repo, bundle) if feature_repo is not None else lookup_from_env(bundle)
    model = CohortModel(
        name,
        bundle,
        lookup=lookup,
        watch_interval=watch_interval,
        require_manifest=require_manifest,
        max_batch=max_batch,
    )
    model.load()
    # Everything loaded so far (libraries, the model) lives as long as the process: keep the
    # cyclic GC from walking it again and again, which shows up as 10-20 ms pauses at p99.
    gc.collect()
    gc.freeze()
    model_server.app.add_middleware(RequestMetricsMiddleware, version_of=lambda: model.version)
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, lambda *_: model.reload_now.set())
    server = model_server.ModelServer(
        http_port=http_port,
        grpc_port=grpc_port or 8081,
        enable_grpc=grpc_port is not None,
        enable_latency_logging=False,
        workers=1,
    )
    log.info(
        "serving %s version %s (%s) on port %d",
        name,
        model.version,
        model.served.kind if model.served else "?",
        http_port,
    )
    server.start([model])


def build_parser() -> argparse.ArgumentParser:
    """The server's command-line options."""
    p = argparse.ArgumentParser(prog="serving.server", description=__doc__.splitlines()[0])
    p.add_argument("--bundle", required=True, help="promoted bundle folder, or the store's <study>/champion")
    p.add_argument("--http-port", type=int, default=8080)
    p.add_argument("--grpc-port", type=int, default=None, help="V2 gRPC port (off when not given)")
    p.add_argument("--model-name", default=None, help="served name (default: the study name)")
    p.add_argument("--feature-repo", default=None, help="Feast repository for patient_id-only requests")
    p.add_argument(
        "--watch-interval", type=float, default=5.0, help="seconds between champion checks (0: off)"
    )
    p.add_argument("--allow-unpromoted", action="store_true", help="serve a bundle without MANIFEST.json")
    p.add_argument("--max-batch", type=int, default=1024)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments and serve; exit 1 or 2 with one line when the bundle is refused."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        serve(
            args.bundle,
            http_port=args.http_port,
            grpc_port=args.grpc_port,
            model_name=args.model_name,
            feature_repo=args.feature_repo,
            watch_interval=args.watch_interval,
            require_manifest=not args.allow_unpromoted,
            max_batch=args.max_batch,
        )
    except CohortlmError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
