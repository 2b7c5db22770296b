"""TurnEvent: what a turn tells, in the gateway's own terms; each protocol renders these."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = [
    "FinishReason",
    "ReasoningDelta",
    "ReasoningSignature",
    "TextDelta",
    "ToolCallDelta",
    "TurnEvent",
    "TurnFinished",
    "Usage",
]


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    #: Prompt tokens written to the provider's cache (in `prompt_tokens`; the Responses API
    #: reports them apart).
    cache_write_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class ReasoningDelta:
    text: str


@dataclass(frozen=True)
class ReasoningSignature:
    """The provider signed the reasoning just told (Anthropic's thinking `signature`), so a
    client can send it back verbatim; protocols without such a field leave it out."""

    signature: str


@dataclass(frozen=True)
class ToolCallDelta:
    """The model calls a client tool: first `id` and `name`, then the `arguments` JSON text."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


#: Why the answer ended: it was complete, hit the output limit, was filtered by the provider,
#: or is a call of the client's tools (each protocol names these its own way).
FinishReason = Literal["stop", "length", "content_filter", "tool_calls"]


@dataclass(frozen=True)
class TurnFinished:
    finish_reason: FinishReason
    usage: Usage


TurnEvent = TextDelta | ReasoningDelta | ReasoningSignature | ToolCallDelta | TurnFinished
