"""TurnPlan: what one turn asks of the model, built by a protocol, run by the backend."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from opencode_openai.core.models import ModelRef

__all__ = ["ClientTool", "TurnPlan"]


@dataclass(frozen=True)
class ClientTool:
    """A function tool the API client defined (and will run itself)."""

    name: str
    description: str
    parameters: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "parameters": self.parameters}


@dataclass(frozen=True)
class TurnPlan:
    """What to ask: the model, the exact system texts, messages and sampling settings.

    `messages` are in the plugin's format: `{"role": "user"|"assistant", "parts": [...]}` with
    OpenCode part objects (text, file, tool). `output_schema` asks OpenCode's structured output
    for JSON matching that JSON Schema; `tools` are the client's, offered upstream, never run.
    """

    model: ModelRef
    system: list[str]
    messages: list[dict[str, Any]]
    params: dict[str, Any] = field(default_factory=dict)
    output_schema: dict[str, Any] | None = None
    tools: tuple[ClientTool, ...] = ()
