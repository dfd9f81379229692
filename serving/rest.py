"""The HTTP side of the model server as cohortlm runs it: errors, credentials, routes, log lines.

KServe 0.21 builds one FastAPI app (``kserve.model_server.app``) and, in
``RESTServer.create_application``, registers its routes and exception handlers.
Left as they are, they break the serving contract (DESIGN.md, Serving contract):

* FastAPI's ``RequestValidationError`` handler answers a V2 body that fails the
  pydantic model (no ``inputs``, a tensor without ``shape``, a list as the
  body, invalid JSON) with **422 and the whole request echoed** as ``input``;
* KServe's handlers put ``str(exc)`` in the response and log a traceback per
  4xx, and several of those messages quote the request (an input's name, the
  model name from the URL, the JSON parser's excerpt);
* ``/v2/repository/models/<name>/unload`` works without any credential, and
  ``/v2/health/ready`` says ready even when no model is loaded;
* uvicorn listens on 0.0.0.0 and its access log writes every request path.

:class:`CohortRESTServer` is KServe's ``RESTServer`` with those parts
replaced, on the same app:

* every error answer is ``{"error": "<where>: <what> (rule: <rule>)"}`` with
  the path of the offending field (``inputs[0].shape: required``), never the
  value and never an unknown key's text; structural errors are 400;
* one log line per rejected request, no traceback, at most
  :data:`LOG_LINES_PER_SECOND` a second (the rest are counted and reported);
* model load/unload routes answer 404 unless enabled (and then need the token);
  enabled, they move the model between loaded and unloaded without ever removing
  it from the registry (:class:`ModelControl`), the same on gRPC;
* with a bearer token, the predict/infer/explain routes need
  ``Authorization: Bearer <token>`` (health, metadata and /metrics stay open
  for probes and Prometheus);
* request bodies over ``max_body_bytes`` get 413 before they are read whole;
* readiness is true only while every registered model is loaded and ready.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import socket
import time
from collections.abc import Callable, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from kserve.errors import (
    InferenceError,
    InvalidInput,
    ModelNotFound,
    ModelNotReady,
    ServerNotLive,
    ServerNotReady,
    UnsupportedProtocol,
)
from kserve.protocol.dataplane import DataPlane
from kserve.protocol.model_repository_extension import ModelRepositoryExtension
from kserve.protocol.rest.server import RESTServer
from starlette.exceptions import HTTPException as StarletteHTTPException

from cohortlm.errors import CohortlmError
from serving.metadata import metadata_router
from serving.metrics import ASGIApp, Message, Receive, RequestMetricsMiddleware, Scope, Send, protocol_of

log = logging.getLogger("cohortlm.serving")

LOG_LINES_PER_SECOND = 5.0
LOG_BURST = 20
DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024

# The field names of the V2 request model (kserve.protocol.rest.v2_datamodels): the only
# keys an error message may name. Anything else is "an unknown field" at its position.
_V2_FIELDS = frozenset({"id", "parameters", "inputs", "outputs", "name", "shape", "datatype", "data"})
# pydantic puts the member of a Union it tried into the location; they are not fields.
_UNION_MEMBERS = frozenset(
    {"InferenceRequest", "RequestInput", "RequestOutput", "float", "int", "bool", "str"}
)
_RULE_TEXT = {
    "missing": ("required", "required"),
    "list_type": ("type", "must be a list"),
    "dict_type": ("type", "must be an object"),
    "model_type": ("type", "must be an object"),
    "model_attributes_type": ("type", "must be an object"),
    "string_type": ("type", "must be text"),
    "int_type": ("type", "must be an integer"),
    "int_parsing": ("type", "must be an integer"),
    "int_from_float": ("type", "must be an integer"),
    "float_type": ("type", "must be a number"),
    "float_parsing": ("type", "must be a number"),
    "bool_type": ("type", "must be true or false"),
    "bool_parsing": ("type", "must be true or false"),
    "extra_forbidden": ("unknown", "is not a field of the request"),
    "json_invalid": ("json", "is not valid JSON"),
}


# ---------------------------------------------------------------------------- errors


class SafeInvalidInput(InvalidInput):
    """A 400 whose message cohortlm wrote: a field path and a rule, no request content."""


class SafeInferenceError(InferenceError):
    """A server-side failure whose message cohortlm wrote (no request content)."""

    def __init__(self, reason: str, status: int = 500):
        super().__init__(reason, status=status)


def describe_validation_errors(errors: Sequence[Any]) -> str:
    """One safe message from pydantic/FastAPI validation errors of a request body.

    Args:
        errors: ``RequestValidationError.errors()``: dicts with ``loc`` and ``type``
            (their ``input`` and ``msg`` are never used: they can quote the request).

    Returns:
        e.g. ``inputs[0].shape: required (rule: required)``; at most three errors, joined by ``; ``.
    """
    parts: list[str] = []
    for err in errors:
        loc = list(err.get("loc", ()))
        if loc[:1] == ["body"]:
            loc = loc[1:]
        if loc[:1] == ["bytes"]:
            continue  # the other member of Union[InferenceRequest, bytes]; its failure says nothing
        kind = str(err.get("type", ""))
        rule, text = _RULE_TEXT.get(kind, ("type", "is not valid"))
        if kind == "json_invalid":
            where = "body"
        else:
            where, unknown = _field_path(loc)
            if unknown:
                # The field's name is not repeated: it is not one of the protocol's own.
                text = "has a field that is not valid (its name is not repeated)"
                where = "body" if where == "the top level" else where
        part = f"{where}: {text} (rule: {rule})"
        if part not in parts:
            parts.append(part)
        if len(parts) == 3:
            break
    return "; ".join(parts) or "body: is not a valid inference request (rule: protocol)"


def _field_path(loc: Sequence[Any]) -> tuple[str, bool]:
    """(path, True if it stopped at a key it may not name): ``inputs[0].shape``."""
    path = ""
    parent: Any = None
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part in _UNION_MEMBERS or (isinstance(part, str) and part.startswith(("list[", "function-"))):
            continue
        elif isinstance(part, str) and part in _V2_FIELDS and parent != "parameters":
            path += f".{part}" if path else part
        else:
            return path or "the top level", True
        parent = part
    return path or "body", False


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": message}, headers=headers)


class RejectionLog:
    """One log line per rejected request, at most ``per_second`` a second (a bucket of ``burst``).

    Lines beyond the rate are counted, and the count is written with the next line
    that is let through, so a flood of bad requests cannot fill the disk.
    """

    def __init__(
        self,
        logger: logging.Logger = log,
        *,
        per_second: float = LOG_LINES_PER_SECOND,
        burst: int = LOG_BURST,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.logger = logger
        self.per_second = per_second
        self.burst = float(burst)
        self.clock = clock
        self._tokens = float(burst)
        self._last = clock()
        self.suppressed = 0

    def record(self, status: int, route: str, message: str) -> bool:
        """Log one rejection if the rate allows; return whether it was written."""
        now = self.clock()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.per_second)
        self._last = now
        if self._tokens < 1.0:
            self.suppressed += 1
            return False
        self._tokens -= 1.0
        extra = ""
        if self.suppressed:
            extra = f" ({self.suppressed} more rejected requests not logged)"
            self.suppressed = 0
        level = logging.ERROR if status >= 500 else logging.WARNING
        self.logger.log(level, "%d %s: %s%s", status, route, message, extra)
        return True


REJECTIONS = RejectionLog()


def _route(path: str) -> str:
    """The kind of route, for a log line (the path itself can hold a value)."""
    protocol = protocol_of(path)
    if protocol is not None:
        return f"{protocol} {'predict' if protocol == 'v1' else 'infer'}"
    if path.startswith("/v2/repository/"):
        return "model control"
    return "other"


def safe_rejection(exc: BaseException, served_names: Callable[[], list[str]]) -> tuple[int, str]:
    """The HTTP status of a failed call and a message cohortlm wrote (no request content), REST or gRPC.

    Args:
        exc: what the call raised (KServe's errors, cohortlm's safe ones, anything else).
        served_names: the served model names, for the not-found message.
    """
    if isinstance(exc, SafeInvalidInput):
        return 400, str(exc)
    if isinstance(exc, InvalidInput):
        # KServe's own messages quote the request (input and model names).
        return 400, "body: does not follow the inference protocol (rule: protocol)"
    if isinstance(exc, ModelNotFound):
        names = ", ".join(served_names()) or "none"
        return 404, f"model: no model of that name is served here (served: {names})"
    if isinstance(exc, ModelNotReady):
        return 503, "model: not ready (the bundle is not loaded)"
    if isinstance(exc, SafeInferenceError):
        return (exc.status if isinstance(exc.status, int) else 500), str(exc.reason)
    if isinstance(exc, InferenceError):
        return 500, "server: inference failed (InferenceError)"
    if isinstance(exc, (NotImplementedError, UnsupportedProtocol)):
        return 501, "route: not supported by this server"
    if isinstance(exc, (ServerNotReady, ServerNotLive)):
        return 503, "server: not ready (no model is loaded)"
    # The message of an unexpected error can quote anything; its type is enough to look further.
    return 500, f"server: unexpected {type(exc).__name__}"


def exception_handlers(served_names: Callable[[], list[str]]) -> dict[Any, Callable[..., Any]]:
    """The app's exception handlers: safe messages, one rate-limited log line, no traceback."""

    def reject(request: Request, status: int, message: str) -> JSONResponse:
        REJECTIONS.record(status, _route(request.url.path), message)
        return _error(status, message)

    async def validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return reject(request, 400, describe_validation_errors(exc.errors()))

    async def invalid_input(request: Request, exc: InvalidInput) -> JSONResponse:
        # KServe's JSON decoding of a REST body: say what kind of problem it is, not the parser's excerpt.
        if not isinstance(exc, SafeInvalidInput) and str(exc).startswith("Unrecognized request format"):
            return reject(request, 400, "body: is not valid JSON (rule: json)")
        return reject(request, *safe_rejection(exc, served_names))

    async def failed(request: Request, exc: Exception) -> JSONResponse:
        return reject(request, *safe_rejection(exc, served_names))

    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # Starlette's texts ("Not Found", "Method Not Allowed") quote nothing from the request.
        return reject(request, exc.status_code, f"route: {exc.detail}")

    return {
        RequestValidationError: validation,
        InvalidInput: invalid_input,
        ModelNotFound: failed,
        ModelNotReady: failed,
        InferenceError: failed,
        NotImplementedError: failed,
        UnsupportedProtocol: failed,
        ServerNotReady: failed,
        ServerNotLive: failed,
        StarletteHTTPException: http_error,
        Exception: failed,
    }


# ---------------------------------------------------------------------------- data plane


class CohortDataPlane(DataPlane):
    """KServe's data plane with readiness from the models and request decoding that never leaks."""

    async def ready(self) -> bool:
        """True only while at least one model is registered and every registered model is ready."""
        models = list(self.model_registry.get_models().values())
        return bool(models) and all(getattr(m, "ready", False) for m in models)

    async def get_model(self, name: str) -> Any:
        """The registered model; 503 while it is not loaded.

        KServe's own ``get_model`` calls ``model.load()`` on a model that is not ready, so a
        predict after an unload would quietly load the bundle again, on the event loop, in the
        middle of a request; only the load route (:class:`ModelControl`) loads.
        """
        model = self.get_model_from_registry(name)
        if not await self._model_registry.is_model_ready(name):
            raise ModelNotReady(name)
        return model

    def decode(self, body: Any, headers: Any, *args: Any, **kwargs: Any) -> Any:
        """KServe's decoding; a failure other than InvalidInput (binary V2 bodies) is a 400 too."""
        try:
            return super().decode(body, headers, *args, **kwargs)
        except InvalidInput:
            raise
        except Exception:
            raise SafeInvalidInput(
                "body: could not be decoded as an inference request (rule: protocol)"
            ) from None


class ModelControl(ModelRepositoryExtension):
    """Model load and unload as a state machine on the registered model (REST and gRPC).

    KServe 0.21's extension unloads by removing the model from the registry (it is then
    404 for good: its ``ModelRepository.load`` is a stub) and returns nothing, which its
    own gRPC servicer indexes (a TypeError). Here the model stays registered and moves
    between the states of :data:`serving.model.STATES`: unload drops the bundle (503, not
    ready), load reads, verifies and self-checks it from disk again. Both answer what the
    REST endpoint and the gRPC servicer expect, ``{"name", "load"|"unload"}``. The work runs
    in a worker thread, so the event loop keeps answering health and other models.
    """

    async def index(self, filter_ready: bool | None = False) -> list[dict[str, str]]:
        """Every registered model with its state (``READY`` or ``UNAVAILABLE``) and why."""
        out = []
        for name, model in sorted(self._model_registry.get_models().items()):
            ready = await self._model_registry.is_model_ready(name)
            if ready or not filter_ready:
                state = getattr(model, "state", "loaded" if ready else "unloaded")
                reason = getattr(model, "state_reason", "")
                out.append(
                    {
                        "name": name,
                        "state": "READY" if ready else "UNAVAILABLE",
                        "reason": f"{state}: {reason}" if reason else state,
                    }
                )
        return out

    def _model(self, model_name: str) -> Any:
        model = self._model_registry.get_model(model_name)
        if model is None:
            raise ModelNotFound(model_name)
        return model

    async def load(self, model_name: str) -> dict[str, Any]:
        """Load (or reload) the model's bundle from disk; the version serving stays on failure.

        Raises:
            ModelNotFound: no model of that name is registered (404).
            SafeInferenceError: the bundle was refused (503); the log says why.
        """
        model = self._model(model_name)
        try:
            await asyncio.to_thread(model.load)
        except Exception as exc:
            # cohortlm's message names the bundle's files: for the server's log, not the answer.
            detail = f": {exc}" if isinstance(exc, CohortlmError) else ""
            log.error("model control: load refused (%s)%s", type(exc).__name__, detail)
            state = getattr(model, "state", "unknown")
            raise SafeInferenceError(
                f"model: load refused ({type(exc).__name__}; state: {state}); the server log says why",
                status=503,
            ) from None
        log.info("model control: loaded version %s", getattr(model, "version", "?"))
        return {"name": model_name, "load": True}

    async def unload(self, model_name: str) -> dict[str, Any]:
        """Stop serving the model (it stays registered; load brings it back).

        Raises:
            ModelNotFound: no model of that name is registered (404).
        """
        model = self._model(model_name)
        unload = getattr(model, "unload", None)
        if unload is None:
            raise NotImplementedError("this model cannot be unloaded")
        await asyncio.to_thread(unload)
        log.info("model control: unloaded; not ready until loaded again")
        return {"name": model_name, "unload": True}


class ModelControlOff(ModelRepositoryExtension):
    """The model repository extension with load and unload refused (REST and gRPC)."""

    async def load(self, model_name: str) -> None:
        """Refused: model control is off."""
        raise NotImplementedError("model control is off")

    async def unload(self, model_name: str) -> None:
        """Refused: model control is off."""
        raise NotImplementedError("model control is off")


# ---------------------------------------------------------------------------- middleware


def _is_protected(path: str) -> bool:
    """Routes that carry patient data or change the server: predict, infer, explain, model control."""
    return (
        protocol_of(path) is not None
        or (path.startswith("/v1/models/") and path.endswith(":explain"))
        or path.startswith("/v2/repository/")
    )


class GuardMiddleware:
    """Pure ASGI middleware: model control off, bearer authentication, body size limit.

    Args:
        app: the wrapped ASGI app.
        token: the bearer token the protected routes need, or None (no authentication).
        model_control: let requests reach the model repository (load/unload) routes.
        max_body_bytes: the largest request body accepted (413 above it).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        token: str | None,
        model_control: bool = False,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ):
        self.app = app
        self.model_control = model_control
        self.token = token.encode() if token else None
        self.max_body_bytes = max_body_bytes

    async def _answer(self, send: Send, path: str, status: int, message: str, extra: list[Any]) -> None:
        REJECTIONS.record(status, _route(path), message)
        body = json.dumps({"error": message}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers + extra})
        await send({"type": "http.response.body", "body": body})

    def _authorised(self, scope: Scope) -> bool:
        assert self.token is not None
        for name, value in scope.get("headers", []):
            if name == b"authorization":
                scheme, _, given = value.partition(b" ")
                return scheme.lower() == b"bearer" and hmac.compare_digest(given.strip(), self.token)
        return False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        if not self.model_control and path.startswith("/v2/repository/"):
            # KServe registers these routes unconditionally; off, they do not exist.
            await self._answer(send, path, 404, "route: Not Found", [])
            return
        if self.token is not None and _is_protected(path) and not self._authorised(scope):
            await self._answer(
                send,
                path,
                401,
                "authorization: a valid bearer token is required (rule: auth)",
                [(b"www-authenticate", b'Bearer realm="cohortlm"')],
            )
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared < 0 or declared > self.max_body_bytes:
                    await self._answer(send, path, 413, self._too_large(), [])
                    return
        received = 0
        limit = self.max_body_bytes
        started = False

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _BodyTooLargeError
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except _BodyTooLargeError:
            if not started:
                await self._answer(send, path, 413, self._too_large(), [])
        except Exception as exc:
            # Starlette's last-resort handler re-raises, and uvicorn then logs a traceback whose
            # frames can hold request values: answer here, with the error's type only.
            if not started:
                await self._answer(send, path, 500, f"server: unexpected {type(exc).__name__}", [])

    def _too_large(self) -> str:
        mb = self.max_body_bytes / (1024 * 1024)
        return f"body: larger than {mb:g} MiB (rule: size)"


class _BodyTooLargeError(Exception):
    """The body passed the size limit while it was read."""


# ---------------------------------------------------------------------------- the REST server


class CohortRESTServer(RESTServer):
    """KServe's REST server on a socket bound beforehand, with the app made safe (module docstring).

    Args:
        *args: as ``kserve.protocol.rest.server.RESTServer``.
        listen_socket: a bound (not yet listening) socket; uvicorn serves on it.
        token: bearer token for the protected routes, or None.
        model_control: keep the model repository (load/unload) routes.
        max_body_bytes: the largest request body accepted.
        version_of: the model version now serving, for the request metrics.
        **kwargs: as ``RESTServer``.
    """

    def __init__(
        self,
        *args: Any,
        listen_socket: socket.socket,
        token: str | None = None,
        model_control: bool = False,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        version_of: Callable[[], str] = lambda: "none",
        **kwargs: Any,
    ):
        super().__init__(*args, **kwargs)
        self.listen_socket = listen_socket
        self.token = token
        self.model_control = model_control
        self.max_body_bytes = max_body_bytes
        self.version_of = version_of
        # uvicorn's access log writes each request's path, which can hold a value (a model name,
        # a query string); rejected requests get one line of ours instead (RejectionLog).
        self.config.access_log = False
        host, port = listen_socket.getsockname()[:2]
        self.config.host, self.config.port = host, port

    def _add_middlewares(self, app: FastAPI) -> None:
        super()._add_middlewares(app)
        app.add_middleware(
            GuardMiddleware,
            token=self.token,
            model_control=self.model_control,
            max_body_bytes=self.max_body_bytes,
        )
        app.add_middleware(RequestMetricsMiddleware, version_of=self.version_of)

    def _register_endpoints(self, app: FastAPI) -> None:
        # Before KServe's: the metadata routes answer the version and model card too (serving.metadata).
        app.include_router(metadata_router(self.dataplane))
        super()._register_endpoints(app)
        # The model repository extension's index (KServe 0.21 registers only load and unload):
        # each model's state and why, behind the same guard as load and unload.
        extension = self.model_repository_extension

        async def index() -> list[dict[str, str]]:
            return await extension.index()

        app.add_api_route("/v2/repository/index", index, methods=["POST"])

    def _add_exception_handlers(self, app: FastAPI) -> None:
        super()._add_exception_handlers(app)
        registry = self.dataplane.model_registry
        for exc_class, handler in exception_handlers(lambda: sorted(registry.get_models())).items():
            app.add_exception_handler(exc_class, handler)

    async def start(self) -> None:
        """Build the app and serve on the socket bound beforehand."""
        self.create_application()
        await self._server.serve(sockets=[self.listen_socket])


def bind_socket(host: str, port: int) -> socket.socket:
    """Bind the HTTP socket now, so that a port in use is a clear error before any model loads.

    Raises:
        OSError: the address cannot be resolved or bound (the caller turns it into a usage error).
    """
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock
