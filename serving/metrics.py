"""The model server's Prometheus metrics, served on its ``/metrics``.

KServe's REST server exposes ``prometheus_client.REGISTRY`` (the default
registry) on ``/metrics``, so the metrics are registered there and appear beside
KServe's own ``request_predict_seconds`` and friends.

====================================  =========  ====================================================
``cohortlm_request_latency_seconds``  histogram  ``model_version``, ``protocol`` (v1, v2)
``cohortlm_requests_total``           counter    ``model_version``, ``status`` (HTTP code, "200", "400")
``cohortlm_predicted_probability``    histogram  ``endpoint``, ``model_version``
``cohortlm_model_info``               gauge      ``model_version``, ``kind``, ``study``; 1 while serving
``cohortlm_prediction_log_dropped``   counter    ``reason`` (queue_full, write_failed, writer_died)
``cohortlm_prediction_log_written``   counter    predictions written to the prediction log
====================================  =========  ====================================================

Latency and counts are taken by an ASGI middleware around the predict routes,
so that requests refused before the model sees them (400, 503) are counted too.
No label ever holds a patient identifier or a feature value: label values are
the model version (12 hex digits), the protocol, an HTTP status, an endpoint
name from the spec.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

REQUEST_LATENCY = Histogram(
    "cohortlm_request_latency_seconds",
    "Time from request received to response sent, for predict requests",
    ["model_version", "protocol"],
    buckets=(
        0.001,
        0.002,
        0.003,
        0.005,
        0.0075,
        0.01,
        0.015,
        0.02,
        0.03,
        0.05,
        0.1,
        0.25,
        0.5,
        1,
        2.5,
        5,
        10,
        30,
    ),
)
REQUESTS = Counter(
    "cohortlm_requests",
    "Predict requests by model version and HTTP status",
    ["model_version", "status"],
)
PREDICTED_PROBABILITY = Histogram(
    "cohortlm_predicted_probability",
    "Predicted probability per endpoint (one observation per instance)",
    ["endpoint", "model_version"],
    buckets=tuple(round(0.05 * i, 2) for i in range(1, 21)),
)
PREDICTION_LOG_DROPPED = Counter(
    "cohortlm_prediction_log_dropped",
    "Predictions the prediction log could not keep (queue_full, write_failed, writer_died); "
    "the predictions were served",
    ["reason"],
)
PREDICTION_LOG_WRITTEN = Counter(
    "cohortlm_prediction_log_written",
    "Predictions written to the prediction log",
)
MODEL_INFO = Gauge(
    "cohortlm_model_info",
    "1 for the model version now serving, 0 for versions served before",
    ["model_version", "kind", "study"],
)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def protocol_of(path: str) -> str | None:
    """``v1`` or ``v2`` for a predict route, None for anything else (health, metadata, /metrics)."""
    if path.startswith("/v1/models/") and path.endswith(":predict"):
        return "v1"
    if path.startswith("/v2/models/") and path.endswith("/infer"):
        return "v2"
    return None


class RequestMetricsMiddleware:
    """Pure ASGI middleware: latency and status of every predict request.

    Args:
        app: the wrapped ASGI app.
        version_of: returns the model version now serving (``"none"`` before load).
    """

    def __init__(self, app: ASGIApp, version_of: Callable[[], str]):
        self.app = app
        self.version_of = version_of

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        protocol = protocol_of(scope.get("path", "")) if scope["type"] == "http" else None
        if protocol is None:
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            version = self.version_of()
            REQUEST_LATENCY.labels(model_version=version, protocol=protocol).observe(
                time.perf_counter() - start
            )
            REQUESTS.labels(model_version=version, status=str(status)).inc()
