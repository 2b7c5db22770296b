"""POST /v1/chat/completions."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from connexion import request
from starlette.responses import StreamingResponse

from opencode_openai.backend import OpenCodeBackend, run_turn
from opencode_openai.core.events import TurnEvent
from opencode_openai.core.metrics import observe_turn
from opencode_openai.core.settings import GatewayConfig
from opencode_openai.handlers._disconnect import cancel_on_disconnect
from opencode_openai.protocols.openai_chat import (
    completion_from_events,
    new_meta,
    plan_from_request,
    sse_stream,
)

JSON = {"Content-Type": "application/json"}
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


async def create_chat_completion(body: dict[str, Any]) -> Any:
    backend: OpenCodeBackend = request.state.backend
    config: GatewayConfig = request.state.config
    backend.ensure_ready()
    plan, options = plan_from_request(body, backend.catalog)
    meta = new_meta(options.model)
    events = observe_turn(
        run_turn(backend, plan, timeout_s=config.timeout_s), request.state.metrics
    )
    if options.stream:
        # Until the first event, a failure (capacity, provider error, timeout) still gets its
        # own status; after it, only an error event in the stream.
        primed = await cancel_on_disconnect(request, _primed(events))
        stream = sse_stream(meta, primed, include_usage=options.include_usage)
        return StreamingResponse(stream, media_type="text/event-stream", headers=SSE_HEADERS)
    collected = await cancel_on_disconnect(request, _collect(events))
    return completion_from_events(meta, collected), 200, JSON


async def _collect(events: AsyncIterator[TurnEvent]) -> list[TurnEvent]:
    async with contextlib.aclosing(events):  # type: ignore[type-var]
        return [event async for event in events]


async def _primed(events: AsyncIterator[TurnEvent]) -> AsyncIterator[TurnEvent]:
    """Wait for the first event, then hand back an iterator that still starts with it."""
    try:
        first = await anext(events)
    except BaseException:
        await events.aclose()  # type: ignore[attr-defined]
        raise

    async def chained() -> AsyncIterator[TurnEvent]:
        async with contextlib.aclosing(events):  # type: ignore[type-var]
            yield first
            async for event in events:
                yield event

    return chained()
