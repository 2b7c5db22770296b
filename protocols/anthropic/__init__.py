"""Protocol translation between Anthropic's Messages API and the backend's TurnPlan / TurnEvents.

No I/O here: the backend runs turns, handlers wire the two together.
"""

from opencode_openai.protocols.anthropic.errors import anthropic_error, anthropic_status
from opencode_openai.protocols.anthropic.limits import anthropic_rate_headers
from opencode_openai.protocols.anthropic.models import model_info, model_page
from opencode_openai.protocols.anthropic.request import RequestOptions, plan_from_request
from opencode_openai.protocols.anthropic.response import (
    MessageMeta,
    message_from_events,
    new_meta,
)
from opencode_openai.protocols.anthropic.sse import sse_stream
from opencode_openai.protocols.anthropic.tokens import count_plan_tokens

__all__ = [
    "MessageMeta",
    "RequestOptions",
    "anthropic_error",
    "anthropic_rate_headers",
    "anthropic_status",
    "count_plan_tokens",
    "message_from_events",
    "model_info",
    "model_page",
    "new_meta",
    "plan_from_request",
    "sse_stream",
]
