"""TurnEvents -> the Responses stream events, and the Response object they add up to.

`ResponseBuilder` is the one fold of a turn: each TurnEvent becomes the stream events OpenAI
sends for it (with `sequence_number`), and the builder's `response()` is the Response those
events describe. A stream sends the events (sse.py); a JSON answer feeds the same events
through the same builder and sends its `response()`, so the two cannot drift apart.

Output items open as the turn produces them: a `reasoning` item (only when the request asked
for `reasoning.summary`) whose summary is the model's reasoning text, a `message` item with one
`output_text` part, a `function_call` item per call of the client's tools. A text or reasoning
item is done when another text or reasoning item begins, or at the end; function calls are
done at the end of the turn (their arguments may come after other items began).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from opencode_openai.core.errors import GatewayError
from opencode_openai.core.events import (
    ReasoningDelta,
    ReasoningSignature,
    TextDelta,
    ToolCallDelta,
    TurnEvent,
    TurnFinished,
    Usage,
)
from opencode_openai.protocols.openai_responses.items import item_id
from opencode_openai.protocols.openai_responses.request import ResponseOptions

__all__ = ["ResponseBuilder", "ResponseMeta", "new_meta", "response_from_events", "usage_dict"]

Event = dict[str, Any]

_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


@dataclass(frozen=True)
class ResponseMeta:
    id: str
    created_at: int


def new_meta() -> ResponseMeta:
    return ResponseMeta(f"resp_{secrets.token_hex(24)}", int(time.time()))


def usage_dict(usage: Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {
            "cached_tokens": usage.cached_tokens,
            "cache_write_tokens": usage.cache_write_tokens,
        },
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": usage.total_tokens,
    }


def _text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


@dataclass
class _Open:
    """The text or reasoning item being written: its place, and its text so far."""

    item: dict[str, Any]
    index: int
    kind: str  # "message" or "reasoning"
    pieces: list[str]


class ResponseBuilder:
    """The fold of one turn into Responses events and a Response (see the module docstring)."""

    def __init__(self, meta: ResponseMeta, options: ResponseOptions) -> None:
        self.meta = meta
        self.options = options
        self.output: list[dict[str, Any]] = []
        self.status = "in_progress"
        self.usage = Usage()
        self.error: dict[str, Any] | None = None
        self.incomplete_details: dict[str, Any] | None = None
        self.completed_at: int | None = None
        self._sequence = 0
        self._open: _Open | None = None
        self._calls: dict[int, tuple[dict[str, Any], int, list[str]]] = {}

    # -- the events ----------------------------------------------------------------------

    def _event(self, kind: str, fields: dict[str, Any]) -> Event:
        event = {"type": kind, **fields, "sequence_number": self._sequence}
        self._sequence += 1
        return event

    def started(self) -> list[Event]:
        """`response.created` and `response.in_progress`: the first events of a stream."""
        return [
            self._event("response.created", {"response": self.response()}),
            self._event("response.in_progress", {"response": self.response()}),
        ]

    def feed(self, event: TurnEvent) -> list[Event]:
        if isinstance(event, TextDelta):
            return self._text(event.text)
        if isinstance(event, ReasoningDelta):
            return self._reasoning(event.text) if self.options.reasoning_summary else []
        if isinstance(event, ReasoningSignature):
            return []  # an Anthropic signature: the Responses API has no field for it
        if isinstance(event, ToolCallDelta):
            return self._tool_call(event)
        return self._finished(event)

    def failed(self, error: GatewayError) -> list[Event]:
        """After a failure mid-stream: an `error` event, then `response.failed`.

        The error event carries OpenAI's flat fields and, for clients that read it so (Open
        Responses), the same error nested under `error`.
        """
        self.status = "failed"
        # The response's error code is one of OpenAI's few (the event carries ours).
        code = "rate_limit_exceeded" if error.status == 429 else "server_error"
        self.error = {"code": code, "message": error.message}
        nested = {
            "type": error.type,
            "code": error.code,
            "message": error.message,
            "param": error.param,
        }
        return [
            self._event(
                "error",
                {
                    "code": error.code,
                    "message": error.message,
                    "param": error.param,
                    "error": nested,
                },
            ),
            self._event("response.failed", {"response": self.response()}),
        ]

    # -- text and reasoning --------------------------------------------------------------

    def _open_item(self, kind: str) -> tuple[_Open, list[Event]]:
        """The open item of `kind`, opening it (and closing another) when needed."""
        current = self._open
        if current is not None and current.kind == kind:
            return current, []
        events = self._close_open()
        index = len(self.output)
        if kind == "message":
            item: dict[str, Any] = {
                "id": item_id("message"),
                "type": "message",
                "status": "in_progress",
                "role": "assistant",
                "content": [],
            }
            added = {**item, "content": []}
        else:
            item = {"id": item_id("reasoning"), "type": "reasoning", "summary": []}
            added = {**item, "summary": []}
        self.output.append(item)
        self._open = _Open(item, index, kind, [])
        events.append(
            self._event("response.output_item.added", {"output_index": index, "item": added})
        )
        if kind == "message":
            item["content"].append(_text_part(""))
            part = {
                "item_id": item["id"],
                "output_index": index,
                "content_index": 0,
                "part": _text_part(""),
            }
            events.append(self._event("response.content_part.added", part))
        else:
            item["summary"].append({"type": "summary_text", "text": ""})
            part = {
                "item_id": item["id"],
                "output_index": index,
                "summary_index": 0,
                "part": {"type": "summary_text", "text": ""},
            }
            events.append(self._event("response.reasoning_summary_part.added", part))
        return self._open, events

    def _text(self, text: str) -> list[Event]:
        current, events = self._open_item("message")
        current.pieces.append(text)
        events.append(
            self._event(
                "response.output_text.delta",
                {
                    "item_id": current.item["id"],
                    "output_index": current.index,
                    "content_index": 0,
                    "delta": text,
                    "logprobs": [],
                },
            )
        )
        return events

    def _reasoning(self, text: str) -> list[Event]:
        current, events = self._open_item("reasoning")
        current.pieces.append(text)
        events.append(
            self._event(
                "response.reasoning_summary_text.delta",
                {
                    "item_id": current.item["id"],
                    "output_index": current.index,
                    "summary_index": 0,
                    "delta": text,
                },
            )
        )
        return events

    def _close_open(self) -> list[Event]:
        current, self._open = self._open, None
        if current is None:
            return []
        item, text = current.item, "".join(current.pieces)
        where = {"item_id": item["id"], "output_index": current.index}
        if current.kind == "message":
            part = _text_part(text)
            item["content"][0] = part
            item["status"] = "completed"
            events = [
                self._event(
                    "response.output_text.done",
                    {**where, "content_index": 0, "text": text, "logprobs": []},
                ),
                self._event(
                    "response.content_part.done",
                    {**where, "content_index": 0, "part": _text_part(text)},
                ),
            ]
        else:
            summary = {"type": "summary_text", "text": text}
            item["summary"][0] = summary
            events = [
                self._event(
                    "response.reasoning_summary_text.done",
                    {**where, "summary_index": 0, "text": text},
                ),
                self._event(
                    "response.reasoning_summary_part.done",
                    {**where, "summary_index": 0, "part": dict(summary)},
                ),
            ]
        events.append(
            self._event("response.output_item.done", {"output_index": current.index, "item": item})
        )
        return events

    # -- function calls ------------------------------------------------------------------

    def _tool_call(self, event: ToolCallDelta) -> list[Event]:
        events: list[Event] = []
        call = self._calls.get(event.index)
        if call is None:
            events += self._close_open()
            namespace, name = self.options.tools.client_name(event.name or "")
            item: dict[str, Any] = {
                "id": item_id("function_call"),
                "type": "function_call",
                "status": "in_progress",
                "arguments": "",
                "call_id": event.id or item_id("function_call"),
                "name": name,
            }
            if namespace is not None:
                item["namespace"] = namespace
            call = self._calls[event.index] = (item, len(self.output), [])
            self.output.append(item)
            events.append(
                self._event(
                    "response.output_item.added", {"output_index": call[1], "item": dict(item)}
                )
            )
        if event.arguments:
            item, index, pieces = call
            pieces.append(event.arguments)
            events.append(
                self._event(
                    "response.function_call_arguments.delta",
                    {"item_id": item["id"], "output_index": index, "delta": event.arguments},
                )
            )
        return events

    def _close_calls(self) -> list[Event]:
        events: list[Event] = []
        for item, index, pieces in sorted(self._calls.values(), key=lambda call: call[1]):
            item["arguments"] = "".join(pieces) or "{}"
            item["status"] = "completed"
            events.append(
                self._event(
                    "response.function_call_arguments.done",
                    {
                        "item_id": item["id"],
                        "name": item["name"],
                        "output_index": index,
                        "arguments": item["arguments"],
                    },
                )
            )
            events.append(
                self._event("response.output_item.done", {"output_index": index, "item": item})
            )
        self._calls.clear()
        return events

    # -- the end -------------------------------------------------------------------------

    def _finished(self, finished: TurnFinished) -> list[Event]:
        events = self._close_open() + self._close_calls()
        self.usage = finished.usage
        self.completed_at = int(time.time())
        reason = _INCOMPLETE.get(finished.finish_reason)
        if reason is None:
            self.status = "completed"
            kind = "response.completed"
        else:
            self.status, self.incomplete_details = "incomplete", {"reason": reason}
            kind = "response.incomplete"
        events.append(self._event(kind, {"response": self.response()}))
        return events

    def response(self) -> dict[str, Any]:
        """The Response as the events so far describe it."""
        echo = self.options.echo
        response = {
            "id": self.meta.id,
            "object": "response",
            "created_at": self.meta.created_at,
            "status": self.status,
            "completed_at": self.completed_at,
            "error": self.error,
            "incomplete_details": self.incomplete_details,
            "instructions": echo["instructions"],
            "max_output_tokens": echo["max_output_tokens"],
            "model": self.options.model,
            "output": list(self.output),
            "parallel_tool_calls": echo["parallel_tool_calls"],
            "previous_response_id": echo["previous_response_id"],
            "reasoning": echo["reasoning"],
            "store": echo["store"],
            "temperature": echo["temperature"],
            "text": echo["text"],
            "tool_choice": echo["tool_choice"],
            "tools": echo["tools"],
            "top_p": echo["top_p"],
            "truncation": echo["truncation"],
            "metadata": echo["metadata"],
            "presence_penalty": 0,
            "frequency_penalty": 0,
            "top_logprobs": 0,
            "max_tool_calls": None,
            "background": False,
            "service_tier": "default",
            "safety_identifier": echo["safety_identifier"],
            "prompt_cache_key": echo["prompt_cache_key"],
            "usage": usage_dict(self.usage),
        }
        if echo["user"] is not None:
            response["user"] = echo["user"]
        return response


def response_from_events(builder: ResponseBuilder, events: Iterable[TurnEvent]) -> dict[str, Any]:
    """The non-stream reply: the response the stream's events add up to."""
    builder.started()
    for event in events:
        builder.feed(event)
    return builder.response()
