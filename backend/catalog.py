"""catalog_from_opencode: OpenCode's `/config/providers` and `/config` as a ModelCatalog."""

from __future__ import annotations

import datetime as dt
from typing import Any

from opencode_openai.core.models import CatalogModel, ModelCatalog, ModelRef

__all__ = ["catalog_from_opencode"]


def catalog_from_opencode(providers: dict[str, Any], config: dict[str, Any]) -> ModelCatalog:
    models: dict[str, CatalogModel] = {}
    for provider in providers.get("providers", []):
        for model_id, model in (provider.get("models") or {}).items():
            ref = ModelRef(provider["id"], model_id)
            caps = model.get("capabilities") or {}
            limit = model.get("limit") or {}
            models[ref.id] = CatalogModel(
                ref=ref,
                name=model.get("name") or model_id,
                created=_release_timestamp(model.get("release_date")),
                image_input=bool((caps.get("input") or {}).get("image")),
                reasoning=bool(caps.get("reasoning")),
                context_limit=limit.get("context"),
                output_limit=limit.get("output"),
            )
    return ModelCatalog(models=models, default=_default_model(models, providers, config))


def _default_model(
    models: dict[str, CatalogModel], providers: dict[str, Any], config: dict[str, Any]
) -> ModelRef | None:
    configured = config.get("model")
    if isinstance(configured, str) and configured in models:
        return models[configured].ref
    for provider_id, model_id in (providers.get("default") or {}).items():
        ref = ModelRef(provider_id, model_id)
        if ref.id in models:
            return ref
    return None


def _release_timestamp(release_date: Any) -> int:
    """OpenAI's `created` is a Unix time; OpenCode knows a release date, when it knows one."""
    try:
        day = dt.date.fromisoformat(str(release_date)[:10])
    except ValueError:
        return 0
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp())
