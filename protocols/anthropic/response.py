"""TurnEvents -> Anthropic stream events, and the non-stream message as the fold of them.

`MessageEvents` turns a turn's events into the events of an Anthropic stream: `message_start`,
one content block per run of reasoning (`thinking`), text (`text`) or one tool call
(`tool_use`), each opened by `content_block_start`, grown by `content_block_delta` and closed by
`content_block_stop`, then `message_delta` (stop reason, usage) and `message_stop`. A tool
call's block opens once its arguments are known (OpenCode reports a call's id first, its whole
input later, and calls may interleave), so each block stays contiguous. The JSON answer is
`message_from_events`: the same stream events, accumulated the way Anthropic's SDKs build a
message from a stream.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from opencode_openai.core.events import (
    FinishReason,
    ReasoningDelta,
    ReasoningSignature,
    TextDelta,
    ToolCallDelta,
    TurnEvent,
    TurnFinished,
    Usage,
)

__all__ = [
    "MessageEvents",
    "MessageMeta",
    "message_from_events",
    "new_meta",
    "stop_reason",
    "tool_use_id",
    "usage_dict",
]

_STOP_REASONS: dict[FinishReason, str] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
}
_ID_CHARS = re.compile(r"[^A-Za-z0-9_-]")


@dataclass(frozen=True)
class MessageMeta:
    id: str
    #: The model id the client asked for.
    model: str


def new_meta(model: str) -> MessageMeta:
    return MessageMeta(f"msg_{secrets.token_hex(12)}", model)


def stop_reason(finish: FinishReason) -> str:
    return _STOP_REASONS[finish]


def tool_use_id(call_id: str) -> str:
    """Anthropic's `toolu_…` id for the provider's call id (the characters Anthropic allows)."""
    if not call_id:
        return f"toolu_{secrets.token_hex(12)}"
    safe = _ID_CHARS.sub("_", call_id)
    return safe if safe.startswith("toolu_") else f"toolu_{safe}"


def usage_dict(usage: Usage) -> dict[str, Any]:
    """Anthropic's usage: `input_tokens` without the cache reads, which are counted apart."""
    return {
        "input_tokens": max(usage.prompt_tokens - usage.cached_tokens, 0),
        "output_tokens": usage.completion_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": usage.cached_tokens,
    }


@dataclass
class _Call:
    id: str
    name: str
    arguments: str | None = None  # the whole JSON text, once OpenCode reported it


@dataclass
class MessageEvents:
    """The stream events of one message, fed a turn's events in order."""

    meta: MessageMeta
    _open: str | None = None  # the kind of the open text or thinking block
    _index: int = -1
    _calls: dict[int, _Call] = field(default_factory=dict)
    _started: set[int] = field(default_factory=set)  # calls whose block was sent

    def start(self) -> dict[str, Any]:
        message: dict[str, Any] = {
            "id": self.meta.id,
            "type": "message",
            "role": "assistant",
            "model": self.meta.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": usage_dict(Usage()),
        }
        return {"type": "message_start", "message": message}

    def feed(self, event: TurnEvent) -> list[dict[str, Any]]:
        if isinstance(event, TextDelta):
            return self._text("text", {"type": "text_delta", "text": event.text})
        if isinstance(event, ReasoningDelta):
            return self._text("thinking", {"type": "thinking_delta", "thinking": event.text})
        if isinstance(event, ReasoningSignature):
            return self._text("thinking", {"type": "signature_delta", "signature": event.signature})
        if isinstance(event, ToolCallDelta):
            return self._tool_call(event)
        return self._finish(event)

    def _text(self, kind: str, delta: dict[str, Any]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        if self._open != kind:
            out += self._close()
            block: dict[str, Any] = {"type": "text", "text": ""}
            if kind == "thinking":
                block = {"type": "thinking", "thinking": "", "signature": ""}
            out.append(self._open_block(block))
            self._open = kind
        out.append({"type": "content_block_delta", "index": self._index, "delta": delta})
        return out

    def _tool_call(self, event: ToolCallDelta) -> list[dict[str, Any]]:
        call = self._calls.get(event.index)
        if call is None:
            call = self._calls[event.index] = _Call(tool_use_id(event.id or ""), event.name or "")
        if event.arguments:
            call.arguments = (call.arguments or "") + event.arguments
        if call.arguments is None:
            return []  # its block opens once its input is known
        return self._send_call(event.index, call)

    def _send_call(self, index: int, call: _Call) -> list[dict[str, Any]]:
        out = self._close()
        block = {"type": "tool_use", "id": call.id, "name": call.name, "input": {}}
        out.append(self._open_block(block))
        self._started.add(index)
        if call.arguments:
            delta = {"type": "input_json_delta", "partial_json": call.arguments}
            out.append({"type": "content_block_delta", "index": self._index, "delta": delta})
        out.append({"type": "content_block_stop", "index": self._index})
        return out

    def _open_block(self, block: dict[str, Any]) -> dict[str, Any]:
        self._index += 1
        return {"type": "content_block_start", "index": self._index, "content_block": block}

    def _close(self) -> list[dict[str, Any]]:
        if self._open is None:
            return []
        self._open = None
        return [{"type": "content_block_stop", "index": self._index}]

    def _finish(self, finished: TurnFinished) -> list[dict[str, Any]]:
        out = self._close()
        for index in sorted(self._calls):
            if index not in self._started:
                out += self._send_call(index, self._calls[index])
        delta = {"stop_reason": stop_reason(finished.finish_reason), "stop_sequence": None}
        out.append({"type": "message_delta", "delta": delta, "usage": usage_dict(finished.usage)})
        out.append({"type": "message_stop"})
        return out


def accumulate(events: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The message a stream of Anthropic events describes (as the SDKs accumulate one)."""
    message: dict[str, Any] = {}
    partial: dict[int, str] = {}
    for event in events:
        kind = event["type"]
        if kind == "message_start":
            message = json.loads(json.dumps(event["message"]))
        elif kind == "content_block_start":
            message["content"].append(dict(event["content_block"]))
        elif kind == "content_block_delta":
            block, delta = message["content"][event["index"]], event["delta"]
            if delta["type"] == "text_delta":
                block["text"] += delta["text"]
            elif delta["type"] == "thinking_delta":
                block["thinking"] += delta["thinking"]
            elif delta["type"] == "signature_delta":
                block["signature"] += delta["signature"]
            elif delta["type"] == "input_json_delta":
                partial[event["index"]] = partial.get(event["index"], "") + delta["partial_json"]
        elif kind == "content_block_stop" and event["index"] in partial:
            message["content"][event["index"]]["input"] = json.loads(partial.pop(event["index"]))
        elif kind == "message_delta":
            message.update(event["delta"])
            message["usage"].update(event["usage"])
    return message


def message_from_events(meta: MessageMeta, events: Iterable[TurnEvent]) -> dict[str, Any]:
    """The non-stream reply: the stream's events for `events`, accumulated."""
    render = MessageEvents(meta)
    stream = [render.start()]
    for event in events:
        stream += render.feed(event)
    return accumulate(stream)
