"""Requests OpenAI accepts are accepted by our spec: no client gets a 400 OpenAI would not give.

Requests are generated over the fields the gateway supports, within OpenAI's documented
ranges (boundaries included), and each one must pass OpenAI's request schema (vendored)
and then ours. No server is involved: this is about the two specs.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from contract.openai_check import openai_schemas
from contract.openapi_check import our_spec

INT64 = 2**63
# Where OpenAI's schema is looser than OpenAI's API, the API's limits are used: its schema
# has no minimum for max_tokens / max_completion_tokens (the API answers 400 below 1), lets
# model be "" (400: a model is required), and rounds int64's bounds for seed up to floats.
TOKENS = st.integers(min_value=1, max_value=2**31)

text = st.text(max_size=20)
text_part = st.fixed_dictionaries({"type": st.just("text"), "text": text})
content = st.one_of(text, st.lists(text_part, min_size=1, max_size=3))
maybe_name = st.fixed_dictionaries({}, optional={"name": st.text(min_size=1, max_size=10)})


def message(role: str, body: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.builds(lambda c, extra: {"role": role, "content": c, **extra}, body, maybe_name)


messages = st.lists(
    st.one_of(
        message("system", content),
        message("user", content),
        message("assistant", st.one_of(content, st.none())),
    ),
    min_size=1,
    max_size=4,
)


def number(low: float, high: float) -> st.SearchStrategy[float | int | None]:
    """JSON numbers in [low, high], integers as well as floats, or null."""
    return st.one_of(st.none(), st.floats(low, high), st.integers(int(low), int(high)))


OPTIONAL = {
    "temperature": number(0, 2),
    "top_p": number(0, 1),
    "presence_penalty": number(-2, 2),
    "frequency_penalty": number(-2, 2),
    "max_tokens": st.one_of(st.none(), TOKENS),
    "max_completion_tokens": st.one_of(st.none(), TOKENS),
    "stop": st.one_of(st.none(), text, st.lists(text, min_size=1, max_size=4)),
    "seed": st.one_of(st.none(), st.integers(-INT64, INT64 - 1)),
    "stream": st.one_of(st.none(), st.booleans()),
    "stream_options": st.one_of(
        st.none(),
        st.fixed_dictionaries(
            {}, optional={"include_usage": st.booleans(), "include_obfuscation": st.booleans()}
        ),
    ),
    "user": text,
    "metadata": st.one_of(
        st.none(), st.dictionaries(st.text(max_size=64), st.text(max_size=512), max_size=16)
    ),
    "store": st.one_of(st.none(), st.booleans()),
}

chat_requests = st.fixed_dictionaries(
    {"model": st.text(min_size=1, max_size=30), "messages": messages}, optional=OPTIONAL
)


@settings(max_examples=400, derandomize=True, database=None, deadline=None)
@given(chat_requests)
def test_what_openai_accepts_our_spec_accepts(request: dict[str, Any]) -> None:
    assert openai_schemas().validate("CreateChatCompletionRequest", request) == [], (
        "the strategy left OpenAI's schema"
    )
    assert our_spec().request_body("/v1/chat/completions", "post", request) == []
