"""Entry point of the model server: parse arguments, load the model, start KServe's ModelServer.

    python -m serving.server --bundle models/ra_iorra/champion --http-port 8080
    cohortlm serve --bundle models/ra_iorra/champion          # the same, from the CLI

The process exits non-zero, with one line naming the problem, when the bundle
is refused (changed after promotion, unpromoted, unloadable, failed its
self-check); it never starts serving a model it could not check.

Exit codes: 0 stopped normally, 1 the bundle was refused (changed after
promotion, bad signature, failed self-check), 2 a usage problem (the port is in
use or outside 0-65535, the host does not resolve, a key or token file is
missing, a token file other users can read), each within seconds and with one
line on stderr. A port of 0 (``--http-port`` or ``--grpc-port``) picks a free
port; the log line says which one was bound.

The token file must be private, as ssh requires of a key: a file that every user
of the machine can read (or write) is refused, with the fix (``chmod 600 FILE``);
one the file's group can read gets a warning, since a Kubernetes Secret mounted
with ``defaultMode: 0440`` for the pod's ``fsGroup`` is readable by that group only.

Safe defaults: the server listens on 127.0.0.1 unless ``--host`` says
otherwise (the cluster manifests pass ``--host 0.0.0.0`` explicitly); the
model load/unload routes are off unless ``--enable-model-control`` (which
needs ``--auth-token-file``); with ``--auth-token-file`` the predict routes
need ``Authorization: Bearer <token>``; readiness is false whenever the model
is not loaded; with ``--verify-key`` (or ``$COHORTLM_VERIFY_KEY``) only
bundles signed with the matching private key are served. Errors never quote
the request (:mod:`serving.rest`); KServe's per-request latency line and
uvicorn's access log are off; payload logging does not exist in this server
(it is an InferenceService ``logger`` setting, which :mod:`serving.isvc` never
sets). V2 gRPC is off unless ``--grpc-port`` (the cluster manifests turn it on);
it listens on the same host, needs the same bearer token on ModelInfer and answers
errors as safely (:mod:`serving.grpcv2`).

The parser extends kserve's (``kserve.model_server.parser``, which kserve also runs on
``sys.argv`` at import and which takes none of our options): ``--http_port``,
``--grpc_port`` and ``--model_name`` are aliases of ours; ``--max_threads``,
``--max_asyncio_workers``, ``--event-loop`` and ``--timeout-keep-alive`` reach the
ModelServer; any other kserve option given is refused (exit 2).
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import gc
import logging
import os
import signal
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cohortlm.errors import CohortlmError, UsageError

DEFAULT_HOST = "127.0.0.1"
VERIFY_KEY_ENV = "COHORTLM_VERIFY_KEY"

log = logging.getLogger("cohortlm.serving")


#: kserve's model-server options (``kserve.model_server.parser``) passed on to its ModelServer.
KSERVE_OPTIONS = ("max_threads", "max_asyncio_workers", "timeout_keep_alive", "event_loop")
#: kserve's options that are also ours (the same destination): either spelling sets it, with our default.
SHARED_OPTIONS = {"http_port": 8080, "grpc_port": None, "model_name": None}


def _kserve_model_server() -> Any:
    """``kserve.model_server``, imported when needed (the CLI's other commands never load kserve).

    kserve runs ``parse_known_args`` on ``sys.argv`` at import. Our options take none of its
    (tests/serving/test_server_parser.py checks every one), and its own spellings are part of
    :func:`build_parser`, so both read the same command line the same way.
    """
    import kserve.model_server as model_server

    return model_server


def served_name(bundle: str | Path) -> str:
    """The default served model name: the bundle's study name (stable across promoted versions)."""
    from cohortlm.models.bundle import read_bundle_metadata

    meta = read_bundle_metadata(os.path.realpath(bundle))
    return str(meta["study"]["name"])


def read_token(path: str | Path) -> str:
    """The bearer token from a file (one line; surrounding whitespace dropped).

    Raises:
        UsageError: the file is missing, unreadable, empty, holds more than one line, or
            other users can read or write it; the message names the file, never its content.
    """
    p = Path(path)
    try:
        mode = p.stat().st_mode
        text = p.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"--auth-token-file {p} cannot be read ({type(exc).__name__})") from None
    if not text or "\n" in text or len(text) < 16:
        raise UsageError(
            f"--auth-token-file {p} must hold one token of at least 16 characters on one line "
            "(e.g. `openssl rand -hex 32`)"
        )
    if mode & 0o007:
        raise UsageError(
            f"--auth-token-file {p} is open to every user of this machine (mode {mode & 0o777:04o}); "
            f"a bearer token must be private: run `chmod 600 {p}`"
        )
    if mode & 0o070:
        log.warning(
            "--auth-token-file %s can be read by its group (mode %04o); unless that group is only this "
            "server (a Secret mounted for the pod's fsGroup), run `chmod 600 %s`",
            p,
            mode & 0o777,
            p,
        )
    return text


def check_port(port: int, option: str) -> int:
    """``port`` if it is one (0 picks a free port); else a UsageError naming the option.

    gRPC would take 70000 as 70000 - 65536 and say nothing: every port is checked here.
    """
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise UsageError(f"{option} {port} is not a port: give 1-65535, or 0 to pick a free one")
    return port


def _bind(host: str, port: int, *, option: str = "--http-port") -> socket.socket:
    from serving.rest import bind_socket

    try:
        return bind_socket(host, port)
    except socket.gaierror:
        raise UsageError(f"--host {host} is not an address of this machine or a name that resolves") from None
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise UsageError(
                f"port {port} on {host} in use; stop the other server, or choose another {option}"
            ) from None
        raise UsageError(
            f"cannot listen on {host}:{port} ({exc.strerror or type(exc).__name__}); "
            f"ports below 1024 need privileges, choose another {option}"
        ) from None


def _model_server_class(model_server: Any) -> Any:
    """kserve's ModelServer with cohortlm's REST server, data plane and model-control switch."""
    from kserve.constants.constants import FASTAPI_APP_IMPORT_STRING

    from serving.rest import CohortDataPlane, CohortRESTServer, ModelControl, ModelControlOff

    class CohortModelServer(model_server.ModelServer):
        """ModelServer whose REST server is :class:`serving.rest.CohortRESTServer` on a bound socket."""

        def __init__(self, *, listen_socket: socket.socket, options: dict[str, Any], **kwargs: Any):
            super().__init__(**kwargs)  # configures KServe's logging: quieten it afterwards
            # uvicorn's access log writes each request's path (which can hold a value) and KServe's
            # timing line adds one more line to every request; rejected requests get one line of
            # ours instead (serving.rest.RejectionLog).
            logging.getLogger("uvicorn.access").disabled = True
            logging.getLogger("kserve.trace").setLevel(logging.WARNING)
            self.listen_socket = listen_socket
            self.options = options
            self.dataplane = CohortDataPlane(model_registry=self.registered_models)
            control = ModelControl if options["model_control"] else ModelControlOff
            self.model_repository_extension = control(model_registry=self.registered_models)

        def start(self, models: list[Any]) -> None:
            # kserve's start() builds its RESTServer inline (no hook for another class or a bound
            # socket): this is its copy with ours, one worker. It and the private methods it calls
            # are pinned in tests/serving/test_kserve_pins.py, which fails when kserve changes them.
            self._register_and_check_atleast_one_model_is_ready(models)
            self._rest_server = CohortRESTServer(
                FASTAPI_APP_IMPORT_STRING,
                self.dataplane,
                self.model_repository_extension,
                self.http_port,
                workers=1,
                grace_period=self.grace_period,
                event_loop=self.event_loop,
                timeout_keep_alive=self.timeout_keep_alive,
                listen_socket=self.listen_socket,
                token=self.options["token"],
                model_control=self.options["model_control"],
                max_body_bytes=self.options["max_body_bytes"],
                version_of=self.options["version_of"],
            )
            self.servers.append(self._rest_server.start())
            if self.enable_grpc:
                from serving.grpcv2 import build_grpc_server

                self._grpc_server = build_grpc_server(
                    self,
                    host=self.options["host"],
                    token=self.options["token"],
                    max_body_bytes=self.options["max_body_bytes"],
                )
                self.servers.append(self._grpc_server.start(self.max_threads))
            self.setup_event_loop()
            self.register_signal_handler()
            asyncio.run(self._serve())

    return CohortModelServer


def serve(
    bundle: str | Path,
    *,
    http_port: int = 8080,
    host: str = DEFAULT_HOST,
    grpc_port: int | None = None,
    model_name: str | None = None,
    feature_repo: str | Path | None = None,
    watch_interval: float = 5.0,
    require_manifest: bool = True,
    max_batch: int = 1024,
    auth_token_file: str | Path | None = None,
    model_control: bool = False,
    verify_key: str | Path | None = None,
    max_body_bytes: int | None = None,
    prediction_log: Any = None,
    kserve_options: dict[str, Any] | None = None,
) -> None:
    """Load a bundle and serve it until the process is stopped (SIGTERM/SIGINT).

    Args:
        bundle: a promoted bundle folder, or the store's ``<study>/champion``
            pointer (then a new champion is picked up without restart).
        http_port: REST port (V1 and V2).
        host: the address to listen on; 127.0.0.1 unless told (``0.0.0.0``: every interface).
        grpc_port: V2 gRPC port on the same host; None turns gRPC off.
        model_name: the served name; the bundle's study name by default.
        feature_repo: a Feast repository, for requests that carry only ``patient_id``.
        watch_interval: seconds between checks of the champion pointer (0: off); SIGHUP checks at once.
        require_manifest: refuse an unpromoted bundle (no MANIFEST.json).
        max_batch: the most instances one request may carry.
        auth_token_file: a file holding the bearer token the predict routes need; None: no token.
        model_control: keep KServe's model load/unload routes (needs ``auth_token_file``).
        verify_key: public key (PEM) that must have signed the bundle; default ``$COHORTLM_VERIFY_KEY``.
        max_body_bytes: the largest request body accepted (default 16 MiB).
        prediction_log: a :class:`serving.log_writer.PredictionLog` recording every prediction, or None.
        kserve_options: kserve ModelServer arguments named in :data:`KSERVE_OPTIONS`.

    Raises:
        CohortlmError: the bundle or an option was refused; nothing was started.
    """
    from serving.rest import DEFAULT_MAX_BODY_BYTES

    if not logging.getLogger().handlers:  # `cohortlm serve`: the CLI configures no logging
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if model_control and auth_token_file is None:
        raise UsageError(
            "--enable-model-control needs --auth-token-file: no control route without credentials"
        )
    check_port(http_port, "--http-port")
    if grpc_port is not None:
        check_port(grpc_port, "--grpc-port")
    if grpc_port is not None and grpc_port == http_port != 0:
        raise UsageError(f"--grpc-port {grpc_port} is the --http-port too; give gRPC its own port")
    token = read_token(auth_token_file) if auth_token_file is not None else None
    verify_key = verify_key if verify_key is not None else (os.environ.get(VERIFY_KEY_ENV) or None)
    if verify_key is not None and not Path(verify_key).is_file():
        raise UsageError(f"--verify-key {verify_key} does not exist")
    if not Path(bundle).exists():
        raise UsageError(f"bundle {bundle} does not exist")
    if grpc_port:
        # gRPC binds only once the model is loaded: find a port in use now, with exit 2.
        _bind(host, grpc_port, option="--grpc-port").close()
    listen_socket = _bind(host, http_port)
    try:
        _serve_on(
            listen_socket,
            bundle,
            host=host,
            grpc_port=grpc_port,
            model_name=model_name,
            feature_repo=feature_repo,
            watch_interval=watch_interval,
            require_manifest=require_manifest,
            max_batch=max_batch,
            options={
                "token": token,
                "model_control": model_control,
                "max_body_bytes": max_body_bytes or DEFAULT_MAX_BODY_BYTES,
                "host": host,
            },
            verify_key=verify_key,
            prediction_log=prediction_log,
            kserve_options=kserve_options,
        )
    finally:
        listen_socket.close()
        if prediction_log is not None:
            prediction_log.close()


def _serve_on(
    listen_socket: socket.socket,
    bundle: str | Path,
    *,
    host: str,
    grpc_port: int | None,
    model_name: str | None,
    feature_repo: str | Path | None,
    watch_interval: float,
    require_manifest: bool,
    max_batch: int,
    options: dict[str, Any],
    verify_key: str | Path | None,
    prediction_log: Any = None,
    kserve_options: dict[str, Any] | None = None,
) -> None:
    unknown = sorted(set(kserve_options or {}) - set(KSERVE_OPTIONS))
    if unknown:
        raise UsageError(
            f"kserve options {', '.join(unknown)} are not passed on; use {', '.join(KSERVE_OPTIONS)}"
        )
    model_server = _kserve_model_server()
    from serving.features import feast_lookup, lookup_from_env
    from serving.model import CohortModel

    name = model_name or served_name(bundle)
    lookup = feast_lookup(feature_repo, bundle) if feature_repo is not None else lookup_from_env(bundle)
    model = CohortModel(
        name,
        bundle,
        lookup=lookup,
        watch_interval=watch_interval,
        require_manifest=require_manifest,
        max_batch=max_batch,
        verify_key=verify_key,
        prediction_log=prediction_log,
    )
    model.load()
    # Everything loaded so far (libraries, the model) lives as long as the process: keep the
    # cyclic GC from walking it again and again, which shows up as 10-20 ms pauses at p99.
    gc.collect()
    gc.freeze()
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, lambda *_: model.reload_now.set())
    server = _model_server_class(model_server)(
        listen_socket=listen_socket,
        options={**options, "version_of": lambda: model.version},
        http_port=listen_socket.getsockname()[1],
        grpc_port=grpc_port if grpc_port is not None else 8081,  # 8081: unused with gRPC off
        enable_grpc=grpc_port is not None,
        enable_latency_logging=False,
        workers=1,
        **(kserve_options or {}),
    )
    log.info(
        "serving %s version %s (%s) on %s:%d%s%s%s",
        name,
        model.version,
        model.served.kind if model.served else "?",
        host,
        listen_socket.getsockname()[1],
        ", bearer token required" if options["token"] else "",
        ", model control on" if options["model_control"] else "",
        ", signature verified" if verify_key else ", signature not checked (no --verify-key)",
    )
    server.start([model])


def _port(text: str) -> int:
    """argparse type: a port number 0-65535 (argparse then exits 2 with the message)."""
    try:
        return check_port(int(text), "port")
    except (ValueError, UsageError):
        raise argparse.ArgumentTypeError(
            f"{text} is not a port: give 1-65535, or 0 to pick a free one"
        ) from None


def build_parser() -> argparse.ArgumentParser:
    """The server's options, added to kserve's model-server options (``kserve.model_server.parser``).

    Of kserve's, those in :data:`KSERVE_OPTIONS` are passed on to the ModelServer and those in
    :data:`SHARED_OPTIONS` are aliases of ours (``--http_port`` for ``--http-port``); any other
    given with a value other than its default is refused by :func:`parse_args` (exit 2).
    """
    p = argparse.ArgumentParser(
        prog="serving.server",
        description=__doc__.splitlines()[0],
        parents=[_kserve_model_server().parser],
    )
    g = p.add_argument_group("cohortlm")
    g.add_argument("--bundle", required=True, help="promoted bundle folder, or the store's <study>/champion")
    g.add_argument("--http-port", type=_port, default=8080, help="REST port (0: pick a free one)")
    g.add_argument("--host", default=DEFAULT_HOST, help="address to listen on (0.0.0.0: every interface)")
    g.add_argument(
        "--grpc-port", type=_port, default=None, help="V2 gRPC port (off when not given; 0: pick a free one)"
    )
    g.add_argument("--model-name", default=None, help="served name (default: the study name)")
    g.add_argument("--feature-repo", default=None, help="Feast repository for patient_id-only requests")
    g.add_argument(
        "--watch-interval", type=float, default=5.0, help="seconds between champion checks (0: off)"
    )
    g.add_argument("--allow-unpromoted", action="store_true", help="serve a bundle without MANIFEST.json")
    g.add_argument("--max-batch", type=int, default=1024)
    g.add_argument("--auth-token-file", default=None, help="file with the bearer token predict routes need")
    g.add_argument(
        "--enable-model-control", action="store_true", help="keep model load/unload routes (needs a token)"
    )
    g.add_argument("--verify-key", default=None, help="public key (PEM) the bundle must be signed with")
    return p


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line with :func:`build_parser`; exit 2 on a kserve option this server ignores."""
    parser = build_parser()
    # Our defaults for the options kserve shares (its grpc_port default 8081 would turn gRPC on).
    args = parser.parse_args(argv, namespace=argparse.Namespace(**SHARED_OPTIONS))
    kserve_defaults = vars(_kserve_model_server().parser.parse_args([]))
    ignored = [
        f"--{dest}"  # kserve spells every option this server ignores --<dest>
        for dest, default in kserve_defaults.items()
        if dest not in KSERVE_OPTIONS and dest not in SHARED_OPTIONS and getattr(args, dest) != default
    ]
    if ignored:
        parser.error(
            f"{', '.join(ignored)}: kserve option(s) this server does not use (it runs one worker, gRPC "
            "only with --grpc-port, no latency or access log, TLS at the mesh); of kserve's options it "
            "takes --http_port, --grpc_port, --model_name, --max_threads, --max_asyncio_workers, "
            "--event-loop and --timeout-keep-alive"
        )
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments and serve; exit 1 or 2 with one line when the bundle or an option is refused."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        serve(
            args.bundle,
            http_port=args.http_port,
            host=args.host,
            grpc_port=args.grpc_port,
            model_name=args.model_name,
            feature_repo=args.feature_repo,
            watch_interval=args.watch_interval,
            require_manifest=not args.allow_unpromoted,
            max_batch=args.max_batch,
            auth_token_file=args.auth_token_file,
            model_control=args.enable_model_control,
            verify_key=args.verify_key,
            kserve_options={o: getattr(args, o) for o in KSERVE_OPTIONS},
        )
    except CohortlmError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
