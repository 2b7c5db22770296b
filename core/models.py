"""ModelCatalog: the models the gateway can reach, as `provider/model` ids.

Built by the backend from OpenCode's provider list; read by the protocols (to resolve a
requested id, and to know a model's limits and inputs) and by the models handler.
"""

from __future__ import annotations

from dataclasses import dataclass, field

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

    def resolve(self, model: str) -> CatalogModel | None:
        """The catalog entry for a requested id, following the `opencode/default` alias."""
        if model == DEFAULT_ALIAS and self.default is not None:
            return self.models.get(self.default.id)
        return self.models.get(model)

    def ids(self) -> list[str]:
        return sorted(self.models) + ([DEFAULT_ALIAS] if self.default else [])
