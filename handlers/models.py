"""GET /v1/models and GET /v1/models/{model}: OpenAI's fields, and what each model can do."""

from __future__ import annotations

from typing import Any

from opencode_openai.core.errors import ModelNotFound
from opencode_openai.core.models import DEFAULT_ALIAS, CatalogModel, ModelCatalog
from opencode_openai.handlers._turn import JSON, backend


def _model(model_id: str, entry: CatalogModel, catalog: ModelCatalog) -> dict[str, Any]:
    alias_for = catalog.aliases.get(model_id)
    owner = (
        "opencode"
        if model_id == DEFAULT_ALIAS
        else "opencode-openai"
        if alias_for
        else entry.ref.provider_id
    )
    listed: dict[str, Any] = {
        "id": model_id,
        "object": "model",
        "created": entry.created,
        "owned_by": owner,
        "name": entry.name,
        "input_modalities": list(entry.input_modalities),
        "output_modalities": list(entry.output_modalities),
        "capabilities": {
            "tools": entry.tool_call,
            "vision": entry.image_input,
            "reasoning": entry.reasoning,
            # OpenCode answers structured output through a tool call.
            "structured_output": entry.tool_call,
        },
    }
    if entry.context_limit:
        # LM Studio's and OpenRouter's name, and vLLM's.
        listed["context_length"] = listed["max_model_len"] = entry.context_limit
    if entry.output_limit:
        listed["max_output_tokens"] = entry.output_limit
    if alias_for:
        listed["alias_for"] = alias_for
    return listed


async def list_models() -> Any:
    catalog = backend().catalog
    data = [
        _model(model_id, entry, catalog)
        for model_id in catalog.ids()
        if (entry := catalog.resolve(model_id))
    ]
    return {"object": "list", "data": data}, 200, JSON


async def retrieve_model(model: str) -> Any:
    catalog = backend().catalog
    entry = catalog.resolve(model)
    if entry is None:
        raise ModelNotFound(model)
    return _model(model, entry, catalog), 200, JSON
