"""GET /v1/models and GET /v1/models/{model}."""

from __future__ import annotations

from typing import Any

from connexion import request

from opencode_openai.backend import OpenCodeBackend
from opencode_openai.core.errors import ModelNotFound
from opencode_openai.core.models import DEFAULT_ALIAS, CatalogModel


def _model(model_id: str, entry: CatalogModel) -> dict[str, Any]:
    owner = "opencode" if model_id == DEFAULT_ALIAS else entry.ref.provider_id
    return {"id": model_id, "object": "model", "created": entry.created, "owned_by": owner}


async def list_models() -> Any:
    backend: OpenCodeBackend = request.state.backend
    backend.ensure_ready()
    catalog = backend.catalog
    data = [
        _model(model_id, entry)
        for model_id in catalog.ids()
        if (entry := catalog.resolve(model_id))
    ]
    return {"object": "list", "data": data}, 200


async def retrieve_model(model: str) -> Any:
    backend: OpenCodeBackend = request.state.backend
    backend.ensure_ready()
    entry = backend.catalog.resolve(model)
    if entry is None:
        raise ModelNotFound(model)
    return _model(model, entry), 200
