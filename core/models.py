"""ModelCatalog: the models the gateway can reach, as `provider/model` ids.

Built by the backend from OpenCode's provider list; read by the protocols (to resolve a
requested id, and to know a model's limits and inputs) and by the models handler.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from opencode_openai.core.errors import InvalidRequest, ModelNotFound

__all__ = ["DEFAULT_ALIAS", "MODALITIES", "CatalogModel", "ModelCatalog", "ModelRef"]

#: Names OpenCode's own default model (its config `model`, else its first provider's default).
DEFAULT_ALIAS = "opencode/default"


@dataclass(frozen=True)
class ModelRef:
    provider_id: str
    model_id: str

    @property
    def id(self) -> str:
        return f"{self.provider_id}/{self.model_id}"


#: What a model takes and gives besides text, as OpenCode's catalog names them.
MODALITIES = ("text", "image", "audio", "video", "pdf")


@dataclass(frozen=True)
class CatalogModel:
    ref: ModelRef
    name: str
    created: int
    image_input: bool
    reasoning: bool
    context_limit: int | None
    output_limit: int | None
    tool_call: bool = True
    input_modalities: tuple[str, ...] = ("text",)
    output_modalities: tuple[str, ...] = ("text",)

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


def _every_name(name: str) -> bool:
    return True


@dataclass(frozen=True)
class ModelCatalog:
    """The models, and the aliases that name them (`opencode/default` first).

    `allows` says which names (ids and aliases, as a client sends them) a client may use: a
    name it may not use is neither resolved nor listed, so it looks exactly like one that does
    not exist.
    """

    models: dict[str, CatalogModel] = field(default_factory=dict)
    #: Alias name -> the `provider/model` id it stands for, in the order they are listed.
    aliases: dict[str, str] = field(default_factory=dict)
    allows: Callable[[str], bool] = _every_name
    #: OpenCode's own default model, which `opencode/default` names unless an alias renames it.
    opencode_default: str | None = None

    def with_aliases(self, configured: Sequence[tuple[str, str]]) -> ModelCatalog:
        """The catalog named by `opencode/default` and then the `configured` aliases (start-up,
        and a reload that changes them)."""
        named = {DEFAULT_ALIAS: self.opencode_default} if self.opencode_default else {}
        return replace(self, aliases={**named, **dict(configured)})

    def visible_to(self, allows: Callable[[str], bool]) -> ModelCatalog:
        """The catalog as a client that may use only the names `allows` accepts sees it."""
        return replace(self, allows=allows)

    @property
    def default(self) -> ModelRef | None:
        """OpenCode's default model (what `opencode/default` names), if it has one."""
        target = self.aliases.get(DEFAULT_ALIAS)
        return self.models[target].ref if target in self.models else None

    def resolve(self, model: str) -> CatalogModel | None:
        """The catalog entry for a requested id or alias (an alias wins over an id)."""
        if not self.allows(model):
            return None
        return self.models.get(self.aliases.get(model, model))

    def require(self, model: str) -> CatalogModel:
        """`resolve`, or OpenAI's 404 `model_not_found` for a name it does not resolve."""
        entry = self.resolve(model)
        if entry is None:
            raise ModelNotFound(model)
        return entry

    def ids(self) -> list[str]:
        """The models' ids, then the aliases whose model is here (those it allows)."""
        names = sorted(self.models) + [
            name for name, target in self.aliases.items() if target in self.models
        ]
        return [name for name in names if self.allows(name)]

    def unknown_aliases(self) -> dict[str, str]:
        """Aliases that name no model of the catalog (start-up refuses them)."""
        return {name: target for name, target in self.aliases.items() if target not in self.models}
