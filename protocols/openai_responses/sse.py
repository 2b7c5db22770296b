"""The SSE framing of a Responses stream: OpenAI's event sequence, one chunk per event.

Each event is `event: <type>` and `data: <JSON>` lines ending in a blank line (`\\n` line
endings), written as one chunk. The stream begins with `response.created` and
`response.in_progress` and ends with `response.completed` or `response.incomplete`. A failure
after the first byte can no longer change the status: it becomes an `error` event and
`response.failed`, and the stream ends there. There is no `[DONE]`.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncGenerator
from typing import Any

from opencode_openai.core.errors import as_gateway_error
from opencode_openai.core.events import TurnEvent
from opencode_openai.protocols.openai_responses.response import ResponseBuilder

__all__ = ["frame", "sse_stream"]

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_TEXT_DELTA = "response.output_text.delta"


def frame(event: dict[str, Any]) -> bytes:
    if event["type"] == _TEXT_DELTA and len(event) == 7:
        return _text_delta(event)
    return f"event: {event['type']}\ndata: {_dumps(event)}\n\n".encode()


def _text_delta(event: dict[str, Any]) -> bytes:
    """The hot path (one per piece of text): the same bytes as the general case, with the
    item's fields written from a template instead of encoding the whole dict."""
    return (
        f'event: {_TEXT_DELTA}\ndata: {{"type":"{_TEXT_DELTA}","item_id":"{event["item_id"]}",'
        f'"output_index":{event["output_index"]:d},"content_index":{event["content_index"]:d},'
        f'"delta":{_dumps(event["delta"])},"logprobs":[],'
        f'"sequence_number":{event["sequence_number"]:d}}}\n\n'
    ).encode()


async def sse_stream(
    builder: ResponseBuilder, events: AsyncGenerator[TurnEvent, None]
) -> AsyncGenerator[bytes, None]:
    # aclosing: when the client goes away Starlette cancels this generator, and closing the
    # turn's iterator is what aborts the OpenCode turn.
    async with contextlib.aclosing(events):
        for event in builder.started():
            yield frame(event)
        try:
            async for turn_event in events:
                for event in builder.feed(turn_event):
                    yield frame(event)
        except Exception as exc:
            for event in builder.failed(as_gateway_error(exc)):
                yield frame(event)
