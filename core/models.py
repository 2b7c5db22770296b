"""ModelCatalog: the models the gateway can reach, as `provider/model` ids.

Built by the backend from OpenCode's provider list; read by the protocols (to resolve a
requested id, and to know a model's limits and inputs) and by the models handler.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from opencode_openai.core.errors import InvalidRequest

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

    def output_tokens(self, requested: int | None, *, param: str, clamp: bool) -> int | None:
        """The output token limit to set for a request asking for `requested`.

        Above the model's own limit it is clamped to that limit (clients such as OpenCode and
        Claude Code ask for 32000 or 64000 whatever the model), or, with `clamp` off, refused
        with a 400 naming `param`. A clamped call that reaches the limit still ends with the
        protocol's `length` reason: the provider reports it.
        """
        if requested is None or not self.output_limit or requested <= self.output_limit:
            return requested
        if clamp:
            return self.output_limit
        raise InvalidRequest(
            f"{param} is too large: {requested}. This model supports at most "
            f"{self.output_limit} completion tokens.",
            param=param,
        )


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
