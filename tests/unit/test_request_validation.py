"""What the spec refuses, through the gateway's body validator (app/body_validator.py).

The spec says which values the gateway cannot honour (`x-unsupported`), which are malformed
(`x-invalid`), and which message or part a `role` or `type` names; a request it accepts is one
the gateway serves (Schemathesis holds the running server to that).
"""

from __future__ import annotations

from typing import Any

import pytest
from connexion.json_schema import resolve_refs

from opencode_openai.app import load_spec
from opencode_openai.app.body_validator import check_body
from opencode_openai.core.errors import InvalidRequest, UnsupportedParameter

SPEC = resolve_refs(load_spec())
CHAT = SPEC["paths"]["/v1/chat/completions"]["post"]["requestBody"]["content"]["application/json"][
    "schema"
]


def check(**body: Any) -> None:
    check_body(CHAT, {"model": "p/text", "messages": [{"role": "user", "content": "hi"}], **body})


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("n", 2),
        ("logprobs", True),
        ("top_logprobs", 1),
        ("logit_bias", {"1": 1}),
        ("audio", {}),
        ("modalities", ["audio"]),
        ("modalities", ["text", "audio"]),
        ("web_search_options", {}),
        ("functions", []),
        ("function_call", "none"),
    ],
)
def test_refused_fields_name_themselves(field: str, value: Any) -> None:
    with pytest.raises(UnsupportedParameter) as info:
        check(**{field: value})
    assert info.value.param == field
    assert info.value.code == "unsupported_parameter"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("n", 1),
        ("logprobs", False),
        ("top_logprobs", 0),
        ("logit_bias", {}),
        ("modalities", ["text"]),
        ("audio", None),
        ("functions", None),
        ("tool_choice", "auto"),
        ("tool_choice", "required"),
        ("tool_choice", {"type": "function", "function": {"name": "f"}}),
    ],
)
def test_default_values_of_refused_fields_pass(field: str, value: Any) -> None:
    check(**{field: value})


@pytest.mark.parametrize(
    ("messages", "param"),
    [
        ([{"role": "function", "name": "f", "content": "x"}], "messages[0].role"),
        ([{"role": "robot", "content": "x"}], "messages[0].role"),
        ([{"content": "x"}], "messages[0].role"),
        (
            [
                {"role": "user", "content": "q"},
                {
                    "role": "assistant",
                    "tool_calls": [
                        {
                            "id": "c",
                            "type": "function",
                            "function": {"name": "f", "arguments": "[1]"},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "c", "content": "r"},
            ],
            "messages[1].tool_calls[0].function.arguments",
        ),
        (
            [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}],
            "messages[0].content[0].type",
        ),
        (
            [
                {
                    "role": "user",
                    "content": [{"type": "image_url", "image_url": {"url": "file:///etc/passwd"}}],
                }
            ],
            "messages[0].content[0].image_url.url",
        ),
        (
            [
                {"role": "system", "content": [{"type": "image_url", "image_url": {"url": "x"}}]},
                {"role": "user", "content": "q"},
            ],
            "messages[0].content[0].type",
        ),
    ],
)
def test_bad_conversations(messages: list[dict[str, Any]], param: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        check(messages=messages)
    assert info.value.param == param


def test_unsupported_roles_and_parts_say_what_they_are() -> None:
    with pytest.raises(UnsupportedParameter) as info:
        check(messages=[{"role": "function", "name": "f", "content": "x"}])
    assert info.value.message == "`function` messages are not supported; use tools"
    with pytest.raises(UnsupportedParameter) as info:
        check(messages=[{"role": "user", "content": [{"type": "file", "file": {}}]}])
    assert "`file` is not supported" in info.value.message


@pytest.mark.parametrize(
    ("tool", "param"),
    [
        ({"type": "custom", "function": {"name": "f"}}, "tools[0].type"),
        ({"type": "function", "function": {"name": "has space"}}, "tools[0].function.name"),
        ({"type": "function", "function": {"name": "x" * 65}}, "tools[0].function.name"),
    ],
)
def test_bad_tools(tool: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        check(tools=[tool])
    assert info.value.param == param


def test_good_conversations_pass() -> None:
    check(
        messages=[
            {"role": "system", "content": [{"type": "text", "text": "s"}]},
            {"role": "developer", "content": None},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "look"},
                    {"type": "image_url", "image_url": {"url": "https://example.test/a.png"}},
                ],
            },
            {
                "role": "assistant",
                "content": [{"type": "refusal", "refusal": "no"}],
                "tool_calls": [
                    {"id": "c", "type": "function", "function": {"name": "f", "arguments": ""}}
                ],
            },
            {"role": "tool", "tool_call_id": "c", "content": [{"type": "text", "text": "r"}]},
        ]
    )
