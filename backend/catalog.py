"""ModelCatalog: the models OpenCode's connected providers offer, as `provider/model` ids."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

__all__ = ["DEFAULT_ALIAS", "CatalogModel", "ModelCatalog", "ModelRef"]

#: Names OpenCode's own default model (its config `model`, else its first provider's default).
DEFAULT_ALIAS = "opencode/default"


@dataclass(frozen=True)
class ModelRef:
    provider_id: str
    model_id: str

    @property
    def id(self) -> str:
        return f"{self.provider_id}/{self.model_id}"


@dataclass(frozen=True)
class CatalogModel:
    ref: ModelRef
    name: str
    created: int
    image_input: bool
    reasoning: bool
    context_limit: int | None
    output_limit: int | None


@dataclass(frozen=True)
class ModelCatalog:
    models: dict[str, CatalogModel] = field(default_factory=dict)
    default: ModelRef | None = None

    @classmethod
    def from_opencode(cls, providers: dict[str, Any], config: dict[str, Any]) -> ModelCatalog:
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
        return cls(models=models, default=_default_model(models, providers, config))

    def resolve(self, model: str) -> CatalogModel | None:
        """The catalog entry for a requested id, following the `opencode/default` alias."""
        if model == DEFAULT_ALIAS and self.default is not None:
            return self.models.get(self.default.id)
        return self.models.get(model)

    def ids(self) -> list[str]:
        return sorted(self.models) + ([DEFAULT_ALIAS] if self.default else [])


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
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.timezone.utc).timestamp())
