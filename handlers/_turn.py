"""The turn pipeline every protocol's handler shares: run, observe, collect or prime.

A handler builds a plan with its protocol, then either collects the turn's events for a JSON
answer or primes them for a stream, and renders them with its protocol. Disconnects, the
deadline, metrics and the first-event rule live here once, for every protocol.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterable, Coroutine
from typing import Any, TypeVar

from connexion import request
from connexion.context import context
from starlette.responses import StreamingResponse

from opencode_openai.backend import OpenCodeBackend, run_turn
from opencode_openai.core.deadline import Deadline
from opencode_openai.core.errors import ClientDisconnected
from opencode_openai.core.events import TurnEvent, TurnFinished
from opencode_openai.core.keys import ANONYMOUS, ApiKey
from opencode_openai.core.metrics import GatewayMetrics, observe_turn
from opencode_openai.core.models import ModelCatalog
from opencode_openai.core.plan import TurnPlan
from opencode_openai.core.ratelimit import Limits
from opencode_openai.core.settings import GatewayConfig
from opencode_openai.core.usage import RequestUsage

__all__ = [
    "JSON",
    "backend",
    "catalog",
    "clamp_max_tokens",
    "collected",
    "current_key",
    "json_answer",
    "primed",
    "ran",
    "stream_response",
    "turn_events",
]

T = TypeVar("T")

JSON = {"Content-Type": "application/json"}
_SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}

TurnEvents = AsyncGenerator[TurnEvent, None]


def backend() -> OpenCodeBackend:
    """The request's backend, once it can take turns (else 503)."""
    backend: OpenCodeBackend = request.state.backend
    backend.ensure_ready()
    return backend


def current_key() -> ApiKey:
    """The key this request came with (app/security.py found it); with --no-auth, ANONYMOUS."""
    token_info: dict[str, Any] | None = context.get("token_info")
    return token_info["key"] if token_info else ANONYMOUS


def catalog() -> ModelCatalog:
    """The models this request's key may use, by the name the client sends (an id, an alias or
    a pattern of the key's `models`): the others look as if they did not exist (404)."""
    return backend().catalog.visible_to(current_key().may_use)


def clamp_max_tokens() -> bool:
    """Whether an output token limit above the model's is clamped (else refused)."""
    config: GatewayConfig = request.state.config
    return config.max_tokens_over_limit == "clamp"


def turn_events(plan: TurnPlan) -> TurnEvents:
    """The plan's turn, bounded by OPENAI_PROXY_TIMEOUT from the request's arrival, within the
    key's limits, observed."""
    config: GatewayConfig = request.state.config
    metrics: GatewayMetrics = request.state.metrics
    usage: RequestUsage = request.state.usage
    usage.model = plan.model.id
    deadline = Deadline.after(config.timeout_s, start=request.state.arrived)
    turn = run_turn(request.state.backend, plan, deadline=deadline)
    return observe_turn(_limited(turn, current_key()), metrics, usage)


async def _limited(events: TurnEvents, key: ApiKey) -> TurnEvents:
    """The turn once the key's limits admit it (else 429); its tokens are charged when it ends.

    Admitted at the first event asked for, so the slot it takes is given back by this
    generator's own `finally`, however the turn ends. (The key's rate-limit headers are
    app/rate_headers.py's.)
    """
    limits: Limits = request.state.limits
    ticket = await limits.admit(key)
    tokens = 0
    try:
        async for event in events:
            if isinstance(event, TurnFinished):
                tokens = event.usage.prompt_tokens + event.usage.completion_tokens
            yield event
    finally:
        await events.aclose()
        await limits.finish(key, ticket, tokens)


def _cancelling() -> bool:
    """Whether this task itself is being cancelled (the server stopping), not just its work."""
    current = asyncio.current_task()
    return current is not None and current.cancelling() > 0


async def _cancel_on_disconnect(work: Coroutine[Any, Any, T]) -> T:
    """Run `work`; if the client disconnects first, cancel it (its `finally` aborts the turn).

    Starlette cancels a streamed body on disconnect by itself, not a handler's own work. The
    handler then ends with ClientDisconnected (answered to nobody), not with a cancellation
    that the server would log as a failed request.
    """
    task = asyncio.ensure_future(work)
    gone = False

    async def watch() -> None:
        nonlocal gone
        # The body was already read, so the next message can only be the disconnect.
        while (await request.receive())["type"] != "http.disconnect":
            pass
        gone = True
        task.cancel()

    watcher = asyncio.ensure_future(watch())
    try:
        return await task
    except asyncio.CancelledError:
        if gone and not _cancelling():
            raise ClientDisconnected() from None
        raise
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await watcher


async def collected(events: TurnEvents) -> list[TurnEvent]:
    """Every event of the turn, for a JSON answer."""

    async def collect() -> list[TurnEvent]:
        async with contextlib.aclosing(events):
            return [event async for event in events]

    return await _cancel_on_disconnect(collect())


async def primed(events: TurnEvents) -> TurnEvents:
    """The turn's events once the first has come, for a stream.

    Until the first event a failure (capacity, provider error, timeout) still gets its own
    HTTP status; after it, only an error event inside the stream.
    """
    try:
        first = await _cancel_on_disconnect(anext(events))
    except BaseException:
        await events.aclose()
        raise

    async def chained() -> TurnEvents:
        async with contextlib.aclosing(events):
            yield first
            async for event in events:
                yield event

    return chained()


def ran(plan: TurnPlan) -> dict[str, str]:
    """The header that names the model that ran, whatever name the client asked for."""
    return {"x-opencode-model": plan.model.id}


def json_answer(body: dict[str, Any], plan: TurnPlan) -> tuple[dict[str, Any], int, dict[str, str]]:
    return body, 200, {**JSON, **ran(plan)}


def stream_response(frames: AsyncIterable[bytes], plan: TurnPlan) -> StreamingResponse:
    return StreamingResponse(
        frames, media_type="text/event-stream", headers={**_SSE_HEADERS, **ran(plan)}
    )
