"""The SSE framing of a chat stream: role first, deltas, finish, optional usage, [DONE].

Errors after the first byte can no longer change the status, so they travel as an error event
in OpenAI's shape, and the stream still ends with `[DONE]`.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncGenerator
from typing import Any

from opencode_openai.core.errors import as_gateway_error
from opencode_openai.core.events import ReasoningSignature, TurnEvent, TurnFinished
from opencode_openai.protocols.openai_chat.response import (
    CompletionMeta,
    chunk_from_event,
    finish_chunk,
    role_chunk,
    usage_chunk,
)
from opencode_openai.protocols.openai_errors import openai_error

__all__ = ["DONE", "frame", "sse_stream"]

DONE = b"data: [DONE]\n\n"


def frame(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


async def sse_stream(
    meta: CompletionMeta, events: AsyncGenerator[TurnEvent, None], *, include_usage: bool
) -> AsyncGenerator[bytes, None]:
    # aclosing: when the client goes away Starlette cancels this generator, and closing the
    # turn's iterator is what aborts the OpenCode turn.
    async with contextlib.aclosing(events):
        yield frame(role_chunk(meta))
        try:
            async for event in events:
                if isinstance(event, TurnFinished):
                    yield frame(finish_chunk(meta, event))
                    if include_usage:
                        yield frame(usage_chunk(meta, event.usage))
                elif isinstance(event, ReasoningSignature):
                    continue  # Chat Completions has no field for it
                else:
                    yield frame(chunk_from_event(meta, event))
        except Exception as exc:
            yield frame(openai_error(as_gateway_error(exc)))
        yield DONE
