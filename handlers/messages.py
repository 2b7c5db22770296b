"""POST /v1/messages and POST /v1/messages/count_tokens (Anthropic's Messages API), HEAD /."""

from __future__ import annotations

from typing import Any

from opencode_openai.handlers._turn import (
    JSON,
    catalog,
    clamp_max_tokens,
    collected,
    json_answer,
    primed,
    stream_response,
    turn_events,
)
from opencode_openai.protocols.anthropic import (
    count_plan_tokens,
    message_from_events,
    new_meta,
    plan_from_request,
    sse_stream,
)


async def create_message(body: dict[str, Any], beta: bool | None = None) -> Any:
    models = catalog()
    plan, options = plan_from_request(body, models, clamp_max_tokens=clamp_max_tokens())
    meta = new_meta(options.model)
    events = turn_events(plan)
    if options.stream:
        return stream_response(sse_stream(meta, await primed(events)), plan)
    return json_answer(message_from_events(meta, await collected(events)), plan)


async def count_message_tokens(body: dict[str, Any], beta: bool | None = None) -> Any:
    plan, _ = plan_from_request(body, catalog())
    return {"input_tokens": count_plan_tokens(plan)}, 200, JSON


async def probe_root() -> Any:
    """Claude Code's `HEAD /` connectivity probe: the gateway is there (no auth)."""
    return None, 200
