"""The SSE framing of a Messages stream: named events, pings, and an error event.

Each event is an `event:` line naming its type and a `data:` line with its JSON, as Anthropic
sends them (its SDKs and Claude Code ignore data without an event name). A `ping` follows
`message_start`, and another goes out whenever the turn has been silent for
`ping_interval_s`, so that proxies and clients see a live connection while the model thinks.
Errors after the first byte can no longer change the status, so they travel as an `error`
event in Anthropic's shape, and the stream ends there.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncGenerator
from typing import Any

from opencode_openai.core.errors import as_gateway_error
from opencode_openai.core.events import TurnEvent
from opencode_openai.protocols.anthropic.errors import anthropic_error
from opencode_openai.protocols.anthropic.response import MessageEvents, MessageMeta

__all__ = ["PING_INTERVAL_S", "frame", "sse_stream"]

#: Seconds of silence from the turn after which a `ping` event is sent.
PING_INTERVAL_S = 10.0


def frame(event: dict[str, Any]) -> bytes:
    data = json.dumps(event, separators=(",", ":"))
    return f"event: {event['type']}\ndata: {data}\n\n".encode()


_PING = frame({"type": "ping"})


async def _with_pings(
    events: AsyncGenerator[TurnEvent, None], interval_s: float
) -> AsyncGenerator[TurnEvent | None, None]:
    """The turn's events, with None each time `interval_s` passes without one."""
    pending: asyncio.Future[TurnEvent] | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(anext(events))
            done, _ = await asyncio.wait({pending}, timeout=interval_s)
            if not done:
                yield None
                continue
            task, pending = pending, None
            try:
                event = task.result()
            except StopAsyncIteration:
                return
            yield event
    finally:
        if pending is not None:  # the client went away while the turn was silent
            pending.cancel()
            with contextlib.suppress(BaseException):
                await pending


async def sse_stream(
    meta: MessageMeta,
    events: AsyncGenerator[TurnEvent, None],
    *,
    ping_interval_s: float = PING_INTERVAL_S,
) -> AsyncGenerator[bytes, None]:
    # aclosing: when the client goes away Starlette cancels this generator, and closing the
    # turn's iterator is what aborts the OpenCode turn.
    # The pinging reader is closed first: it may be waiting on the turn's next event.
    pinged = _with_pings(events, ping_interval_s)
    async with contextlib.aclosing(events), contextlib.aclosing(pinged):
        render = MessageEvents(meta)
        yield frame(render.start())
        yield _PING
        try:
            async for event in pinged:
                if event is None:
                    yield _PING
                    continue
                for out in render.feed(event):
                    yield frame(out)
        except Exception as exc:
            yield frame(anthropic_error(as_gateway_error(exc)))
