"""Protocol translation between OpenAI's chat API and the backend's TurnPlan / TurnEvents.

No I/O here: the backend runs turns, handlers wire the two together.
"""

from opencode_openai.protocols.openai_chat.request import RequestOptions, plan_from_request
from opencode_openai.protocols.openai_chat.response import (
    CompletionMeta,
    completion_from_events,
    new_meta,
)
from opencode_openai.protocols.openai_chat.sse import sse_stream

__all__ = [
    "CompletionMeta",
    "RequestOptions",
    "completion_from_events",
    "new_meta",
    "plan_from_request",
    "sse_stream",
]
