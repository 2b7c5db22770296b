"""Checks the Messages API's responses and stream events against Anthropic's official types.

Anthropic publishes no OpenAPI document; its official Python SDK (`anthropic`, pinned in the
test extra) carries the API's types as pydantic models, which is what its clients are built on.
Each JSON body and each stream event is validated in strict mode (`validate_json(strict=True)`:
no `"1"` for an integer, no missing required field), and any field the SDK's types do not
declare is reported too (they allow extra fields, so the walk over `__pydantic_extra__` stands
in for `extra="forbid"`). Stream events are picked by their `type`, as the SDK does; `ping`
and `error` are not in the SDK's event union (its stream reader handles them by event name),
so `ping` is checked as `{"type": "ping"}` and `error` as an `ErrorResponse`. One documented
error type is missing from the SDK's error union (2.15.0): `request_too_large`, Anthropic's
413; such a body is checked with that one value read as `invalid_request_error`.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import httpx
import pydantic
from anthropic.pagination import SyncPage
from anthropic.types import (
    Message,
    MessageTokensCount,
    ModelInfo,
    RawContentBlockDeltaEvent,
    RawContentBlockStartEvent,
    RawContentBlockStopEvent,
    RawMessageDeltaEvent,
    RawMessageStartEvent,
    RawMessageStopEvent,
)
from anthropic.types.shared import ErrorResponse
from pydantic import TypeAdapter

__all__ = ["AnthropicTypes", "anthropic_types", "is_anthropic_request"]

MESSAGES_PREFIX = "/v1/messages"

_EVENTS: dict[str, Any] = {
    "message_start": RawMessageStartEvent,
    "content_block_start": RawContentBlockStartEvent,
    "content_block_delta": RawContentBlockDeltaEvent,
    "content_block_stop": RawContentBlockStopEvent,
    "message_delta": RawMessageDeltaEvent,
    "message_stop": RawMessageStopEvent,
    "error": ErrorResponse,
}


def is_anthropic_request(request: httpx.Request) -> bool:
    """A request of Anthropic's API: a Messages route, or the models with `anthropic-version`."""
    path = request.url.path
    if path.startswith(MESSAGES_PREFIX):
        return True
    return path.startswith("/v1/models") and "anthropic-version" in request.headers


def _extras(value: Any, path: str = "") -> list[str]:
    """Where `value` holds fields its SDK type does not declare."""
    found: list[str] = []
    if isinstance(value, pydantic.BaseModel):
        found += [f"{path}/{key}" for key in value.__pydantic_extra__ or {}]
        for name in type(value).model_fields:
            found += _extras(getattr(value, name), f"{path}/{name}")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            found += _extras(item, f"{path}/{i}")
    elif isinstance(value, dict):
        for key, item in value.items():
            found += _extras(item, f"{path}/{key}")
    return found


def _413_as_invalid_request(raw: str | bytes) -> str | bytes:
    try:
        value = json.loads(raw)
    except ValueError:
        return raw
    error = value.get("error") if isinstance(value, dict) else None
    if isinstance(error, dict) and error.get("type") == "request_too_large":
        return json.dumps({**value, "error": {**error, "type": "invalid_request_error"}})
    return raw


def _response_type(request: httpx.Request, status: int) -> Any:
    method, path = request.method, request.url.path
    if path.startswith(MESSAGES_PREFIX):
        if status >= 400:
            return ErrorResponse
        if (method, path) == ("POST", "/v1/messages"):
            return Message
        if (method, path) == ("POST", "/v1/messages/count_tokens"):
            return MessageTokensCount
        return None
    if is_anthropic_request(request) and status < 400 and method == "GET":
        return SyncPage[ModelInfo] if path == "/v1/models" else ModelInfo
    return None


class AnthropicTypes:
    """The anthropic SDK's types as a contract (see the module docstring)."""

    def __init__(self) -> None:
        self._adapters: dict[Any, TypeAdapter[Any]] = {}

    def validate(self, kind: Any, raw: str | bytes) -> list[str]:
        """Problems of the JSON text `raw` as an instance of the SDK type `kind`."""
        if kind is ErrorResponse:
            raw = _413_as_invalid_request(raw)
        adapter = self._adapters.get(kind)
        if adapter is None:
            adapter = self._adapters[kind] = TypeAdapter(kind)
        name = getattr(kind, "__name__", str(kind))
        try:
            value = adapter.validate_json(raw, strict=True)
        except pydantic.ValidationError as exc:
            return [
                f"not a valid anthropic {name}: at {'/'.join(map(str, e['loc'])) or '(root)'}: "
                f"{e['msg'][:300]}"
                for e in exc.errors()
            ]
        return [f"not a valid anthropic {name}: unknown field {p}" for p in _extras(value)]

    def response(self, request: httpx.Request, response: httpx.Response, body: bytes) -> list[str]:
        kind = _response_type(request, response.status_code)
        if kind is None or response.headers.get("content-type", "").startswith("text/event-stream"):
            return []
        return [f"status {response.status_code}: {p}" for p in self.validate(kind, body)]

    def event(self, payload: Any) -> list[str]:
        return []  # chat completion chunks are OpenAI's business

    def response_event(self, payload: Any) -> list[str]:
        return []  # OpenAI's Responses events are not Anthropic's

    def message_event(self, payload: Any) -> list[str]:
        kind = payload.get("type") if isinstance(payload, dict) else None
        if kind == "ping":
            return [] if payload == {"type": "ping"} else [f"not a plain ping: {payload}"]
        if kind not in _EVENTS:
            return [f"not an Anthropic stream event type: {kind!r}"]
        return self.validate(_EVENTS[kind], json.dumps(payload))


@cache
def anthropic_types() -> AnthropicTypes:
    return AnthropicTypes()
