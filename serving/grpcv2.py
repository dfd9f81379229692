"""The V2 gRPC side of the model server, with the defences of :mod:`serving.rest`.

KServe 0.21's gRPC server (``kserve.protocol.grpc.server.GRPCServer``) listens
on every interface, logs one line per call (``LoggingInterceptor``) and, in its
``ExceptionToStatusInterceptor``, logs every failure with a traceback and sends
``str(exc)`` as the status details: several of KServe's messages quote the
request (an input's name, the model name). :func:`build_grpc_server` replaces
that with :class:`GuardInterceptor`:

* a failure becomes a gRPC status whose details cohortlm wrote: the same
  ``<where>: <what> (rule: <rule>)`` text the REST side answers (never a value,
  never an unknown input's name), with one rate-limited log line
  (:data:`serving.rest.REJECTIONS`), no traceback;
* with a bearer token, ``ModelInfer`` and the repository (load/unload) methods
  need the metadata ``authorization: Bearer <token>`` (constant-time compare),
  else ``UNAUTHENTICATED``; health and metadata stay open, as on REST;
* messages over ``max_body_bytes`` are refused by gRPC itself (``RESOURCE_EXHAUSTED``);
* it listens on the server's ``--host`` only.

Not covered on gRPC (documented in docs/platform.md): the request metrics of
:mod:`serving.metrics` (``cohortlm_requests_total`` and the latency histogram count
REST requests only; the predicted-probability histogram counts both).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from concurrent import futures
from typing import Any

import grpc
from grpc import aio
from grpc_interceptor.server import AsyncServerInterceptor

from serving.rest import DEFAULT_MAX_BODY_BYTES, REJECTIONS, log, safe_rejection

_SERVICE = "/inference.GRPCInferenceService/"
# Methods that carry patient data or change the server (the REST side's protected routes).
PROTECTED_METHODS = frozenset(
    _SERVICE + m for m in ("ModelInfer", "ModelStreamInfer", "RepositoryModelLoad", "RepositoryModelUnload")
)
AUTH_MESSAGE = "authorization: a valid bearer token is required (rule: auth)"


#: The gRPC code of the HTTP status REST answers for the same failure (other 4xx: INVALID_ARGUMENT).
_GRPC_CODES = {
    404: grpc.StatusCode.NOT_FOUND,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    501: grpc.StatusCode.UNIMPLEMENTED,
    503: grpc.StatusCode.UNAVAILABLE,
}


def safe_status(
    exc: BaseException, served_names: Callable[[], list[str]]
) -> tuple[grpc.StatusCode, int, str]:
    """(gRPC code, the HTTP status REST would answer, a message without request content)."""
    status, message = safe_rejection(exc, served_names)
    fallback = grpc.StatusCode.INVALID_ARGUMENT if 400 <= status < 500 else grpc.StatusCode.INTERNAL
    return _GRPC_CODES.get(status, fallback), status, message


def _route(method_name: str) -> str:
    """The kind of call, for a log line (the method name is fixed by the proto, not the client)."""
    short = method_name.rsplit("/", 1)[-1]
    if short in ("ModelInfer", "ModelStreamInfer"):
        return "v2 grpc infer"
    if short.startswith("Repository"):
        return "grpc model control"
    return "grpc other"


class GuardInterceptor(AsyncServerInterceptor):
    """Bearer authentication on the protected methods and safe statuses for every failure.

    Args:
        token: the bearer token the protected methods need, or None (no authentication).
        served_names: the served model names, for the not-found message.
    """

    def __init__(self, *, token: str | None, served_names: Callable[[], list[str]]):
        self.token = token.encode() if token else None
        self.served_names = served_names

    def _authorised(self, context: aio.ServicerContext) -> bool:
        assert self.token is not None
        for key, value in context.invocation_metadata() or ():
            if key.lower() == "authorization":
                raw = value.encode() if isinstance(value, str) else bytes(value)
                scheme, _, given = raw.partition(b" ")
                return scheme.lower() == b"bearer" and hmac.compare_digest(given.strip(), self.token)
        return False

    async def _reject(
        self, context: aio.ServicerContext, method_name: str, code: grpc.StatusCode, status: int, message: str
    ) -> None:
        REJECTIONS.record(status, _route(method_name), message)
        await context.abort(code, message)

    async def intercept(
        self,
        method: Callable[..., Any],
        request_or_iterator: Any,
        context: aio.ServicerContext,
        method_name: str,
    ) -> Any:
        if self.token is not None and method_name in PROTECTED_METHODS and not self._authorised(context):
            await self._reject(context, method_name, grpc.StatusCode.UNAUTHENTICATED, 401, AUTH_MESSAGE)
        try:
            response = method(request_or_iterator, context)
            if hasattr(response, "__aiter__"):
                return response  # no streaming method is implemented by KServe's servicer
            return await response
        except aio.AbortError:
            raise
        except Exception as exc:
            code, status, message = safe_status(exc, self.served_names)
            await self._reject(context, method_name, code, status, message)


def grpc_address(host: str, port: int) -> str:
    """``host:port`` for gRPC (IPv6 literals in brackets)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def build_grpc_server(
    server: Any,
    *,
    host: str,
    token: str | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> Any:
    """KServe's ``GRPCServer`` for ``server`` on ``host``, behind :class:`GuardInterceptor`."""
    from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc
    from kserve.protocol.grpc.server import GRPCServer
    from kserve.protocol.grpc.servicer import InferenceServicer

    address = grpc_address(host, server.grpc_port)
    registry = server.dataplane.model_registry

    class HostGRPCServer(GRPCServer):
        # kserve 0.21's GRPCServer.start with the listen address, the interceptor and the size limit changed.
        # Pinned in tests/serving/test_kserve_pins.py: that test fails when kserve changes its start().
        async def start(self, max_workers: int) -> None:
            servicer = InferenceServicer(self._data_plane, self._model_repository_extension)
            self._server = aio.server(
                futures.ThreadPoolExecutor(max_workers=max_workers),
                interceptors=(
                    GuardInterceptor(token=token, served_names=lambda: sorted(registry.get_models())),
                ),
                options=[
                    ("grpc.max_receive_message_length", max_body_bytes),
                    ("grpc.so_reuseport", 0),
                ],
            )
            grpc_predict_v2_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(servicer, self._server)
            # The port bound (it differs from the one asked for only when that was 0: a free one).
            bound = self._server.add_insecure_port(address)
            log.info("gRPC on %s%s", grpc_address(host, bound), ", bearer token required" if token else "")
            await self._server.start()
            await self._server.wait_for_termination()

    return HostGRPCServer(
        server.grpc_port,
        server.dataplane,
        server.model_repository_extension,
        kwargs={},
        grace_period=server.grace_period,
    )
