"""The model list in Anthropic's shape, for clients that send `anthropic-version`."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from opencode_openai.core.models import CatalogModel

__all__ = ["model_info", "model_page"]


def model_info(model_id: str, entry: CatalogModel) -> dict[str, Any]:
    created = dt.datetime.fromtimestamp(entry.created, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    info: dict[str, Any] = {
        "type": "model",
        "id": model_id,
        "display_name": entry.name,
        "created_at": created,
        "lifecycle": "active",
    }
    if entry.context_limit:
        info["max_input_tokens"] = entry.context_limit
    if entry.output_limit:
        info["max_tokens"] = entry.output_limit
    return info


def model_page(models: Iterable[tuple[str, CatalogModel]]) -> dict[str, Any]:
    """Every model on one page: `has_more` is false, `first_id` / `last_id` name its ends."""
    data = [model_info(model_id, entry) for model_id, entry in models]
    return {
        "data": data,
        "has_more": False,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
    }
