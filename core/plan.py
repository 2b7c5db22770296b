"""TurnPlan: what one turn asks of the model, built by a protocol, run by the backend.

It says what the client asked for in the gateway's own terms: no OpenAI or Anthropic field
names and no OpenCode part objects. Each protocol builds one from its request; the backend
encodes it for OpenCode (backend/prompt.py). A second OpenCode version would be one more
encoder of the same plan.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from opencode_openai.core.models import ModelRef

__all__ = [
    "AssistantMessage",
    "ClientTool",
    "FilePart",
    "ForcedTool",
    "ImagePart",
    "Message",
    "OutputFormat",
    "Sampling",
    "TextPart",
    "ToolCall",
    "TurnPlan",
    "UserMessage",
]


@dataclass(frozen=True)
class TextPart:
    text: str


@dataclass(frozen=True)
class ImagePart:
    """An image the model should see: a `data:` URL or an http(s) URL, and its media type."""

    url: str
    media_type: str


@dataclass(frozen=True)
class FilePart:
    """A document the model should read (a PDF): a `data:` URL or an http(s) URL, its media
    type and a file name. Whether the model can read it is its provider's business."""

    url: str
    media_type: str
    filename: str


UserPart = TextPart | ImagePart | FilePart


@dataclass(frozen=True)
class ToolCall:
    """A call the assistant made earlier in the conversation, with the client's result.

    `arguments` is the call's input object; `result` the text the client's tool returned;
    `is_error`: the client says the tool failed (`result` is then the error's text).
    """

    id: str
    name: str
    arguments: dict[str, Any]
    result: str
    is_error: bool = False


@dataclass(frozen=True)
class UserMessage:
    parts: tuple[UserPart, ...]


@dataclass(frozen=True)
class AssistantMessage:
    """An earlier answer of the model: its text, and the tool calls it made (with results)."""

    text: str = ""
    tool_calls: tuple[ToolCall, ...] = ()


Message = UserMessage | AssistantMessage


@dataclass(frozen=True)
class ClientTool:
    """A function tool the API client defined (and will run itself)."""

    name: str
    description: str
    parameters: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "parameters": self.parameters}


@dataclass(frozen=True)
class Sampling:
    """Settings of the model call. None: the provider's default.

    The first four are set on the call itself; the rest are provider options, which reach
    providers that know them (their effect is the provider's).
    """

    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    max_output_tokens: int | None = None
    stop: tuple[str, ...] | str | None = None
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    user: str | None = None
    reasoning_effort: str | None = None
    parallel_tool_calls: bool | None = None
    #: Extended thinking asked for explicitly (Anthropic's `thinking`): "enabled", with at most
    #: `thinking_budget_tokens` tokens of it, or "disabled"; None: the model's own default.
    thinking: Literal["enabled", "disabled"] | None = None
    thinking_budget_tokens: int | None = None


@dataclass(frozen=True)
class ForcedTool:
    """The model must call a tool: the one named, or any of the client's tools (None)."""

    name: str | None = None


@dataclass(frozen=True)
class OutputFormat:
    """The answer must be JSON matching `schema` (OpenCode's structured output)."""

    schema: dict[str, Any]


@dataclass(frozen=True)
class TurnPlan:
    """What to ask: the model, the exact system texts, the conversation, and how to answer.

    `system` are the client's system texts, verbatim and in order; `messages` the
    conversation, oldest first. `tools` are the client's, offered upstream, never run (a
    protocol's "none" choice offers none); `tool_choice` forces a call of them, None lets the
    model choose.
    """

    model: ModelRef
    system: tuple[str, ...]
    messages: tuple[Message, ...]
    sampling: Sampling = field(default_factory=Sampling)
    output: OutputFormat | None = None
    tools: tuple[ClientTool, ...] = ()
    tool_choice: ForcedTool | None = None
