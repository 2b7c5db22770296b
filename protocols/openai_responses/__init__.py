"""Protocol translation between OpenAI's Responses API and the backend's TurnPlan / TurnEvents.

No I/O here: the backend runs turns, the store keeps responses, handlers wire them together.
"""

from opencode_openai.protocols.openai_responses.request import ResponseOptions, plan_from_request
from opencode_openai.protocols.openai_responses.response import (
    ResponseBuilder,
    ResponseMeta,
    new_meta,
    response_from_events,
)
from opencode_openai.protocols.openai_responses.sse import sse_stream
from opencode_openai.protocols.openai_responses.stored import (
    conversation_of,
    input_item_page,
)

__all__ = [
    "ResponseBuilder",
    "ResponseMeta",
    "ResponseOptions",
    "conversation_of",
    "input_item_page",
    "new_meta",
    "plan_from_request",
    "response_from_events",
    "sse_stream",
]
