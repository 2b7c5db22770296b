"""catalog_from_opencode: OpenCode's `/config/providers` and `/config` as a ModelCatalog."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from opencode_openai.core.models import (
    MODALITIES,
    CatalogModel,
    ModelCatalog,
    ModelRef,
)

__all__ = ["catalog_from_opencode", "unknown_aliases_complaint"]


def catalog_from_opencode(
    providers: dict[str, Any], config: dict[str, Any], aliases: Sequence[tuple[str, str]] = ()
) -> ModelCatalog:
    """The models of OpenCode's connected providers; `opencode/default` (OpenCode's default
    model, when it has one) and then the configured aliases name some of them. Only names
    and capabilities are kept: OpenCode also returns each provider's options, keys included."""
    models: dict[str, CatalogModel] = {}
    for provider in providers.get("providers", []):
        for model_id, model in (provider.get("models") or {}).items():
            ref = ModelRef(provider["id"], model_id)
            caps = model.get("capabilities") or {}
            limit = model.get("limit") or {}
            inputs, outputs = _modalities(caps.get("input")), _modalities(caps.get("output"))
            models[ref.id] = CatalogModel(
                ref=ref,
                name=model.get("name") or model_id,
                created=_release_timestamp(model.get("release_date")),
                image_input="image" in inputs,
                reasoning=bool(caps.get("reasoning")),
                # OpenCode says 0 for a limit it does not know.
                context_limit=limit.get("context") or None,
                output_limit=limit.get("output") or None,
                tool_call=bool(caps.get("toolcall", True)),
                input_modalities=inputs,
                output_modalities=outputs,
            )
    default = _default_model(models, providers, config)
    catalog = ModelCatalog(models=models, opencode_default=default.id if default else None)
    return catalog.with_aliases(aliases)


def unknown_aliases_complaint(unknown: dict[str, str]) -> str:
    """What start-up and a reload say of aliases that name no model OpenCode offers."""
    named = ", ".join(f"{name}={target}" for name, target in unknown.items())
    return (
        f"--model-alias names a model OpenCode does not offer: {named} (GET /v1/models lists "
        "the models; fix the alias or OpenCode's providers)"
    )


def _modalities(flags: Any) -> tuple[str, ...]:
    """OpenCode's `{text: true, image: false, ...}` as the names of those it has."""
    flags = flags if isinstance(flags, dict) else {"text": True}
    return tuple(name for name in MODALITIES if flags.get(name))


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
