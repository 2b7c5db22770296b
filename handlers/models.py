"""GET /v1/models and GET /v1/models/{model}: OpenAI's shape, or Anthropic's for a client that
sends `anthropic-version` (as Anthropic's SDKs and Claude Code do)."""

from __future__ import annotations

from typing import Any

from connexion import request

from opencode_openai.core.models import DEFAULT_ALIAS, CatalogModel, ModelCatalog
from opencode_openai.handlers._turn import JSON, catalog
from opencode_openai.protocols.anthropic import model_info, model_page


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


def _anthropic_client() -> bool:
    return "anthropic-version" in request.headers


def _anthropic_list(catalog: ModelCatalog) -> Any:
    models = [(model_id, e) for model_id in catalog.ids() if (e := catalog.resolve(model_id))]
    return model_page(models), 200, JSON


async def list_models() -> Any:
    models = catalog()
    if _anthropic_client():
        return _anthropic_list(models)
    data = [
        _model(model_id, entry, models)
        for model_id in models.ids()
        if (entry := models.resolve(model_id))
    ]
    return {"object": "list", "data": data}, 200, JSON


async def retrieve_model(model: str) -> Any:
    models = catalog()
    entry = models.require(model)
    if _anthropic_client():
        return model_info(model, entry), 200, JSON
    return _model(model, entry, models), 200, JSON
