"""POST /v1/chat/completions."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from connexion import request
from starlette.responses import StreamingResponse

from ..backend import OpenCodeBackend, TurnEvent, run_turn
from ..config import GatewayConfig
from ..openai_map import completion_from_events, new_meta, plan_from_request, sse_stream
from ._disconnect import cancel_on_disconnect

JSON = {"Content-Type": "application/json"}
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


async def create_chat_completion(body: dict[str, Any]) -> Any:
    backend: OpenCodeBackend = request.state.backend
    config: GatewayConfig = request.state.config
    backend.ensure_ready()
    plan, options = plan_from_request(body, backend.catalog)
    meta = new_meta(options.model)
    events = run_turn(backend, plan, timeout_s=config.timeout_s)
    if options.stream:
        stream = sse_stream(meta, events, include_usage=options.include_usage)
        return StreamingResponse(stream, media_type="text/event-stream", headers=SSE_HEADERS)
    collected = await cancel_on_disconnect(request, _collect(events))
    return completion_from_events(meta, collected), 200, JSON


async def _collect(events: AsyncIterator[TurnEvent]) -> list[TurnEvent]:
    async with contextlib.aclosing(events):  # type: ignore[type-var]
        return [event async for event in events]
