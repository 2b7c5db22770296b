"""TurnEvents -> OpenAI chunks, and the non-stream completion as the fold of the same events."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from opencode_openai.core.events import (
    ReasoningDelta,
    ReasoningSignature,
    TextDelta,
    ToolCallDelta,
    TurnEvent,
    TurnFinished,
    Usage,
)

__all__ = [
    "CompletionMeta",
    "chunk_from_event",
    "completion_from_events",
    "finish_chunk",
    "new_meta",
    "role_chunk",
    "usage_chunk",
    "usage_dict",
]


@dataclass(frozen=True)
class CompletionMeta:
    id: str
    created: int
    model: str


def new_meta(model: str) -> CompletionMeta:
    return CompletionMeta(f"chatcmpl-{secrets.token_hex(12)}", int(time.time()), model)


def usage_dict(usage: Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
    }


def _chunk(meta: CompletionMeta, choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "id": meta.id,
        "object": "chat.completion.chunk",
        "created": meta.created,
        "model": meta.model,
        "choices": choices,
        **extra,
    }


def _choice(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
    return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}


def role_chunk(meta: CompletionMeta) -> dict[str, Any]:
    return _chunk(meta, [_choice({"role": "assistant", "content": ""})])


Delta = TextDelta | ReasoningDelta | ToolCallDelta


def _tool_call_delta(event: ToolCallDelta) -> dict[str, Any]:
    if event.id is not None:  # the first delta of a call names it, arguments follow
        return {
            "index": event.index,
            "id": event.id,
            "type": "function",
            "function": {"name": event.name, "arguments": event.arguments},
        }
    return {"index": event.index, "function": {"arguments": event.arguments}}


def _delta(event: Delta) -> dict[str, Any]:
    if isinstance(event, TextDelta):
        return {"content": event.text}
    if isinstance(event, ToolCallDelta):
        return {"tool_calls": [_tool_call_delta(event)]}
    # `reasoning_content` is the de-facto field (DeepSeek, vLLM); some clients read `reasoning`.
    return {"reasoning_content": event.text, "reasoning": event.text}


def chunk_from_event(meta: CompletionMeta, event: Delta) -> dict[str, Any]:
    return _chunk(meta, [_choice(_delta(event))])


def finish_chunk(meta: CompletionMeta, finished: TurnFinished) -> dict[str, Any]:
    return _chunk(meta, [_choice({}, finished.finish_reason)])


def usage_chunk(meta: CompletionMeta, usage: Usage) -> dict[str, Any]:
    return _chunk(meta, [], usage=usage_dict(usage))


def completion_from_events(meta: CompletionMeta, events: Iterable[TurnEvent]) -> dict[str, Any]:
    """The non-stream reply: the same deltas a stream would carry, concatenated."""
    message: dict[str, Any] = {"role": "assistant", "content": "", "refusal": None}
    calls: dict[int, dict[str, Any]] = {}
    finished = TurnFinished("stop", Usage())
    for event in events:
        if isinstance(event, TurnFinished):
            finished = event
        elif isinstance(event, ReasoningSignature):
            continue  # Chat Completions has no field for it
        elif isinstance(event, ToolCallDelta):
            call = calls.setdefault(
                event.index,
                {
                    "id": event.id,
                    "type": "function",
                    "function": {"name": event.name, "arguments": ""},
                },
            )
            call["function"]["arguments"] += event.arguments
        else:
            for key, text in _delta(event).items():
                message[key] = (message.get(key) or "") + text
    if calls:
        message["tool_calls"] = [calls[i] for i in sorted(calls)]
        message["content"] = message["content"] or None
    return {
        "id": meta.id,
        "object": "chat.completion",
        "created": meta.created,
        "model": meta.model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": finished.finish_reason,
            }
        ],
        "usage": usage_dict(finished.usage),
    }
