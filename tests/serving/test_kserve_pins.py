"""What the server copies from (or hooks into) kserve 0.21 is pinned: an upgrade that changes it fails here.

kserve's ``ModelServer.start`` builds its REST server inline, with no hook to give it another
class or a socket bound beforehand, so :mod:`serving.server` overrides ``start`` with a copy of
kserve's (our REST server, our gRPC server, one worker) that calls two private methods;
:mod:`serving.rest` and :mod:`serving.grpcv2` extend private hooks of kserve's REST server and
copy the gRPC server's ``start``. If kserve changes any of these, our copies may silently drop
what kserve added, or our guard (token, body limit, safe errors) may silently stop being
installed. Each pin says what to re-check; after re-checking, record the new hash printed by
the failure.
"""

from __future__ import annotations

import hashlib
import inspect
import pkgutil
from importlib import metadata

import pytest

PINS: dict[str, tuple[str, str]] = {
    # qualified name in kserve: (sha256 of its source, first 16 hex digits; what to re-check)
    "kserve.model_server.ModelServer.start": (
        "efa96502018b04e9",
        "serving/server.py CohortModelServer.start is a copy of it: carry over what changed "
        "(new servers, new arguments to RESTServer or GRPCServer, new set-up steps)",
    ),
    "kserve.model_server.ModelServer._register_and_check_atleast_one_model_is_ready": (
        "ea1c6e647744e3fd",
        "CohortModelServer.start calls it: check it still registers the ready models and calls "
        "model.start() (CohortModel.start keeps readiness from load and starts the champion watcher)",
    ),
    "kserve.model_server.ModelServer._serve": (
        "ff3ff3ccb85e49d3",
        "CohortModelServer.start runs it: check it still awaits every server in self.servers",
    ),
    "kserve.protocol.rest.server.RESTServer.start": (
        "5889df83b6d57baa",
        "serving/rest.py CohortRESTServer.start is a copy of it that serves on the socket bound beforehand",
    ),
    "kserve.protocol.rest.server.RESTServer.create_application": (
        "f821f63b402457eb",
        "CohortRESTServer.start calls it: check it still calls _add_middlewares, _register_endpoints "
        "and _add_exception_handlers (the guard, the metadata routes and the safe errors hang on them)",
    ),
    "kserve.protocol.rest.server.RESTServer._add_middlewares": (
        "eb71860ac9500c56",
        "CohortRESTServer._add_middlewares adds the bearer-token and body-size guard after it",
    ),
    "kserve.protocol.rest.server.RESTServer._register_endpoints": (
        "841b714394633cb5",
        "CohortRESTServer._register_endpoints puts serving.metadata's routes before it and the "
        "repository index after it: check no route of kserve's now answers the same paths first",
    ),
    "kserve.protocol.rest.server.RESTServer._add_exception_handlers": (
        "ca0a28c1b356a6eb",
        "CohortRESTServer._add_exception_handlers replaces its handlers with ones that never quote "
        "the request: check every exception kserve handles is still covered by "
        "serving.rest.exception_handlers",
    ),
    "kserve.protocol.grpc.server.GRPCServer.start": (
        "f4ea7b4eb6f0d9f7",
        "serving/grpcv2.py HostGRPCServer.start is a copy of it with the listen address, the "
        "interceptor and the message-size limit changed: carry over what changed",
    ),
}


@pytest.mark.parametrize("qualname", sorted(PINS))
def test_what_the_server_copies_from_kserve_is_unchanged(qualname: str) -> None:
    pinned, recheck = PINS[qualname]
    version = metadata.version("kserve")
    try:
        source = inspect.getsource(pkgutil.resolve_name(qualname))
    except (AttributeError, ImportError):
        pytest.fail(f"kserve {version} has no {qualname} any more; {recheck}")
    digest = hashlib.sha256(source.encode("utf-8")).hexdigest()[:16]
    assert digest == pinned, (
        f"kserve {version} changed {qualname} (pinned against kserve 0.21.0): {recheck}; "
        f"then pin its new hash {digest} in tests/serving/test_kserve_pins.py"
    )


def test_the_server_overrides_only_what_is_pinned() -> None:
    """The override list of CohortModelServer and CohortRESTServer is what PINS covers."""
    import kserve.model_server as model_server
    from kserve.protocol.rest.server import RESTServer

    from serving.rest import CohortRESTServer
    from serving.server import _model_server_class

    server_class = _model_server_class(model_server)
    overridden = {n for n in vars(server_class) if callable(vars(server_class)[n]) and n != "__init__"}
    assert overridden == {"start"}
    rest = {n for n in vars(CohortRESTServer) if callable(vars(CohortRESTServer)[n]) and n != "__init__"}
    pinned = {q.rsplit(".", 1)[1] for q in PINS if ".RESTServer." in q}
    assert rest <= pinned and all(hasattr(RESTServer, n) for n in rest)
