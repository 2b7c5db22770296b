"""POST /v1/chat/completions."""

from __future__ import annotations

from typing import Any

from opencode_openai.handlers._turn import (
    catalog,
    clamp_max_tokens,
    collected,
    json_answer,
    primed,
    stream_response,
    turn_events,
)
from opencode_openai.protocols.openai_chat import (
    completion_from_events,
    new_meta,
    plan_from_request,
    sse_stream,
)


async def create_chat_completion(body: dict[str, Any]) -> Any:
    models = catalog()
    plan, options = plan_from_request(body, models, clamp_max_tokens=clamp_max_tokens())
    meta = new_meta(options.model)
    events = turn_events(plan)
    if options.stream:
        frames = sse_stream(meta, await primed(events), include_usage=options.include_usage)
        return stream_response(frames, plan)
    return json_answer(completion_from_events(meta, await collected(events)), plan)
