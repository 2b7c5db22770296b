"""POST /v1/responses, GET and DELETE /v1/responses/{response_id}, GET .../input_items."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncGenerator
from typing import Any

from connexion import request

from opencode_openai.core.errors import NotFound
from opencode_openai.handlers._turn import (
    JSON,
    catalog,
    clamp_max_tokens,
    collected,
    current_key,
    json_answer,
    primed,
    stream_response,
    turn_events,
)
from opencode_openai.protocols.openai_responses import (
    ResponseBuilder,
    ResponseOptions,
    conversation_of,
    input_item_page,
    new_meta,
    plan_from_request,
    response_from_events,
    sse_stream,
)
from opencode_openai.store import ResponseStore, StoredResponse

log = logging.getLogger("opencode_openai.responses")


def _store() -> ResponseStore:
    store: ResponseStore = request.state.response_store
    return store


async def _stored(response_id: str) -> StoredResponse:
    stored = await _store().get(response_id, current_key().name)
    if stored is None:
        raise NotFound(f"Response with id '{response_id}' not found.", param="response_id")
    return stored


async def _history(body: dict[str, Any]) -> list[dict[str, Any]]:
    previous = body.get("previous_response_id")
    if not previous:
        return []
    stored = await _store().get(previous, current_key().name)
    if stored is None:
        raise NotFound(
            f"Previous response with id '{previous}' not found.",
            param="previous_response_id",
            code="previous_response_not_found",
        )
    return stored.conversation


async def _keep(builder: ResponseBuilder, options: ResponseOptions, owner: str) -> None:
    """Store the finished response (`store: true`) as `owner`'s (the key's name); a failing
    store does not fail the answer."""
    if not options.store or builder.status == "in_progress":
        return
    response = builder.response()
    input_items = list(options.input_items)
    stored = StoredResponse(
        builder.meta.id,
        builder.meta.created_at,
        response,
        input_items,
        conversation_of(options.history, input_items, response),
        owner,
    )
    try:
        await _store().put(stored)
    except Exception:
        log.exception("could not store response %s", builder.meta.id)


async def _kept_after(
    frames: AsyncGenerator[bytes, None],
    builder: ResponseBuilder,
    options: ResponseOptions,
    owner: str,
) -> AsyncGenerator[bytes, None]:
    async with contextlib.aclosing(frames):
        async for frame in frames:
            yield frame
    await _keep(builder, options, owner)


async def create_response(body: dict[str, Any]) -> Any:
    models = catalog()
    history = await _history(body)
    plan, options = plan_from_request(
        body, models, history=history, clamp_max_tokens=clamp_max_tokens()
    )
    builder = ResponseBuilder(new_meta(), options)
    owner = current_key().name
    events = turn_events(plan)
    if options.stream:
        frames = sse_stream(builder, await primed(events))
        return stream_response(_kept_after(frames, builder, options, owner), plan)
    response = response_from_events(builder, await collected(events))
    await _keep(builder, options, owner)
    return json_answer(response, plan)


async def get_response(response_id: str, **_query: Any) -> Any:
    return (await _stored(response_id)).response, 200, JSON


async def delete_response(response_id: str) -> Any:
    if not await _store().delete(response_id, current_key().name):
        raise NotFound(f"Response with id '{response_id}' not found.", param="response_id")
    return {"id": response_id, "object": "response", "deleted": True}, 200, JSON


async def list_input_items(
    response_id: str, limit: int = 20, order: str = "desc", after: str | None = None, **_: Any
) -> Any:
    stored = await _stored(response_id)
    return input_item_page(stored.input_items, limit=limit, order=order, after=after), 200, JSON
