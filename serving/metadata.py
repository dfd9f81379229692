"""The model's metadata routes, with what KServe's response models would drop: version and model card.

KServe builds ``GET /v2/models/<name>`` from ``get_input_types`` and
``get_output_types`` and validates it into a response model that keeps only
``name``, ``versions``, ``platform``, ``inputs`` and ``outputs``; V1's
``GET /v1/models/<name>`` answers ``{"name", "ready"}``. These routes answer the
same, plus the model's :meth:`serving.model.CohortModel.metadata_extension`:
``versions`` and ``model_version`` (the bundle version serving) and
``model_card`` (the promoted bundle's ``model_card.json``, which its manifest and
signature cover). They are registered before KServe's, so they take those paths;
errors (unknown model, V1 not ready) go through the same handlers as before.

gRPC's ``ModelMetadataResponse`` has no field for a card (name, versions,
platform, inputs, outputs): a gRPC client reads the card over REST.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from kserve.errors import ModelNotReady
from kserve.protocol.rest.v2_datamodels import ModelMetadataResponse

__all__ = ["metadata_router"]


def _extension(dataplane: Any, name: str) -> dict[str, Any]:
    model = dataplane.get_model_from_registry(name)
    extension = getattr(model, "metadata_extension", None)
    return dict(extension()) if callable(extension) else {}


def metadata_router(dataplane: Any) -> APIRouter:
    """``GET /v1/models/{name}`` and ``GET /v2/models/{name}`` answering the version and model card too."""
    router = APIRouter()

    async def v2_model_metadata(model_name: str) -> dict[str, Any]:
        metadata = await dataplane.model_metadata(model_name)  # ModelNotFound: the same 404
        body = ModelMetadataResponse.model_validate(metadata).model_dump(exclude_none=True)
        body.update(_extension(dataplane, model_name))
        return body

    async def v1_model_ready(model_name: str) -> dict[str, Any]:
        ready = await dataplane.model_ready(model_name)
        if not ready:
            raise ModelNotReady(model_name)
        return {"name": model_name, "ready": ready, **_extension(dataplane, model_name)}

    router.add_api_route("/v2/models/{model_name}", v2_model_metadata, methods=["GET"])
    router.add_api_route("/v1/models/{model_name}", v1_model_ready, methods=["GET"])
    return router
