"""Schemathesis fuzzes the running gateway (real uvicorn, real OpenCode, fake upstream).

All of Schemathesis' checks run on positive and negative data, once with the API key and
once without, plus a stateful run (list models, then retrieve one: a link Schemathesis
infers). A schema-valid request must be served: the spec refuses what the gateway refuses
(positive data acceptance runs with its default statuses, which do not include 400). The one
exception is what JSON Schema cannot state and the spec therefore says in prose: the order of
tool calls and their answers, tool names used twice, a named tool choice that is none of the
tools (all rejected by OpenAI too), images for a model that takes none (and, in the Responses
API, outside user messages), and a forced tool choice with no function tool offered; such
bodies are not generated (`filter_case`, below). Every response also goes through the contract
checks the integration tests use, so fuzzed streams are checked chunk by chunk too. Fixed seed,
deterministic generation and small example counts keep the run reproducible and short.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import hypothesis
import pytest
import schemathesis
from hypothesis import strategies as st
from schemathesis import Case, CheckContext, HookContext, Response
from schemathesis.specs.openapi.checks import positive_data_acceptance

from contract.openapi_check import SPEC_PATH
from contract.transport import default_contracts, whole_problems
from opencode_openai.core.models import DEFAULT_ALIAS
from tests.support import fake_upstream as fu
from tests.support.gateway import API_KEY, FAKE_PROVIDER, GatewayServer, opencode_config

pytestmark = pytest.mark.opencode

AUTH = {"Authorization": f"Bearer {API_KEY}"}
OPEN_PATHS = {"/health", "/"}

CONFIG = {
    "seed": 6,
    "cache": {"enabled": False},  # no replay of earlier runs' failures: each run stands alone
    "generation": {"mode": "all", "max-examples": 15, "deterministic": True, "database": "none"},
    "phases": {"stateful": {"max-steps": 6}},
}

# `format: json-object` (a replayed tool call's arguments): the text of a JSON object.
schemathesis.openapi.format(
    "json-object",
    st.one_of(
        st.just(""),
        st.dictionaries(st.text(max_size=8), st.integers() | st.text(max_size=8), max_size=3).map(
            json.dumps
        ),
    ),
)


def _image_models() -> set[str]:
    """The test provider's models that take images (as the gateway's catalog says), and the
    default model when it is one of them."""
    config = opencode_config("http://unused")
    models = config["provider"][FAKE_PROVIDER]["models"]
    ids = {
        f"{FAKE_PROVIDER}/{name}"
        for name, model in models.items()
        if "image" in (model.get("modalities") or {}).get("input", [])
    }
    return ids | ({DEFAULT_ALIAS} if config["model"] in ids else set())


IMAGE_MODELS = _image_models()


def breaks_an_unstated_rule(body: Any) -> bool:
    """A chat body breaking a rule the spec states in prose only (see the module docstring):
    the order of tool calls and answers, a tool name used twice, an image for a model that
    takes none."""
    if not isinstance(body, dict):
        return False
    images = any(
        isinstance(part, dict) and part.get("type") == "image_url"
        for message in body.get("messages") or []
        if isinstance(message, dict) and isinstance(message.get("content"), list)
        for part in message["content"]
    )
    if images and body.get("model") not in IMAGE_MODELS:
        return True
    tools = body.get("tools") if body.get("tool_choice") != "none" else None
    if isinstance(tools, list) and tools:
        names = [t.get("function", {}).get("name") for t in tools if isinstance(t, dict)]
        if len(names) != len(set(map(str, names))):
            return True
        choice = body.get("tool_choice")
        if isinstance(choice, dict) and (choice.get("function") or {}).get("name") not in names:
            return True
    messages = body.get("messages")
    if not isinstance(messages, list):
        return False
    pending: list[str] = []  # ids of the last assistant message's calls, not yet answered
    for message in messages:
        if not isinstance(message, dict):
            return False
        if message.get("role") == "tool":
            if message.get("tool_call_id") not in pending:
                return True
            pending.remove(message["tool_call_id"])
            continue
        if pending:
            return True
        calls = message.get("tool_calls") if message.get("role") == "assistant" else None
        pending = [c.get("id") for c in calls or [] if isinstance(c, dict)]
        if len(pending) != len(set(map(str, pending))):
            return True
    return bool(pending)


MESSAGES_PATHS = ("/v1/messages", "/v1/messages/count_tokens")


def _blocks(content: Any) -> list[Any]:
    return content if isinstance(content, list) else []


def breaks_an_unstated_messages_rule(body: Any) -> bool:
    """A Messages body breaking a rule the spec states in prose only: each tool_use answered by
    a tool_result in the next user message (and a tool_result answering one), a custom tool
    name used twice, a forced tool not offered (or with thinking enabled), an image for a
    model that takes none."""
    if not isinstance(body, dict):
        return False
    messages = body.get("messages")
    if not isinstance(messages, list):
        return False

    def images(blocks: list[Any]) -> bool:
        return any(
            isinstance(b, dict)
            and (
                b.get("type") == "image"
                or (b.get("type") in ("tool_result", "document") and images(_nested(b)))
            )
            for b in blocks
        )

    if body.get("model") not in IMAGE_MODELS and any(
        isinstance(m, dict) and images(_blocks(m.get("content"))) for m in messages
    ):
        return True
    choice = body.get("tool_choice") if isinstance(body.get("tool_choice"), dict) else {}
    tools = [
        t
        for t in body.get("tools") or []
        if isinstance(t, dict)
        and t.get("type", "custom") == "custom"
        and not t.get("defer_loading")
    ]
    if choice.get("type") != "none":
        names = [str(t.get("name")) for t in tools]
        if len(names) != len(set(names)):
            return True
        if choice.get("type") in ("any", "tool"):
            if not names or (choice.get("type") == "tool" and choice.get("name") not in names):
                return True
            thinking = body.get("thinking")
            if isinstance(thinking, dict) and thinking.get("type") == "enabled":
                return True
    pending: list[Any] = []  # ids of the last assistant message's tool_use blocks
    for message in messages:
        if not isinstance(message, dict):
            return False
        blocks = _blocks(message.get("content"))
        if message.get("role") == "user":
            results = [
                b.get("tool_use_id")
                for b in blocks
                if isinstance(b, dict) and b.get("type") == "tool_result"
            ]
            if sorted(map(str, results)) != sorted(map(str, pending)) or len(
                set(map(str, results))
            ) != len(results):
                return True
            pending = []
        elif pending:
            return True
        elif message.get("role") == "assistant":
            pending = [
                b.get("id") for b in blocks if isinstance(b, dict) and b.get("type") == "tool_use"
            ]
    return bool(pending)


def _nested(block: dict[str, Any]) -> list[Any]:
    if block.get("type") == "tool_result":
        return _blocks(block.get("content"))
    source = block.get("source")
    return _blocks(source.get("content")) if isinstance(source, dict) else []


#: Messages requests random generation hardly ever makes: a known model, streamed, with a
#: system message in mid-conversation, tools, thinking and Claude Code's fields.
MESSAGES_EXAMPLES = [
    {"model": "fake/fake-model", "max_tokens": 64000, "stream": True,
     "system": [{"type": "text", "text": "Be terse.", "cache_control": {"type": "ephemeral"}}],
     "thinking": {"type": "adaptive"}, "output_config": {"effort": "medium"},
     "context_management": {"edits": []}, "metadata": {"user_id": "u"},
     "messages": [{"role": "user", "content": [{"type": "text", "text": "stream"}]},
                  {"role": "system", "content": "Environment: test"}]},
    {"model": "fake/fake-reasoning-model", "max_tokens": 50, "temperature": 0.5, "top_k": 5,
     "stop_sequences": ["END"], "thinking": {"type": "enabled", "budget_tokens": 1024},
     "tools": [{"name": "f", "input_schema": {"type": "object"}},
               {"type": "web_search_20250305", "name": "web_search"}],
     "messages": [{"role": "user", "content": "tools"}]},
]  # fmt: skip


def _responses_tool_names(tools: Any) -> list[str]:
    names: list[str] = []
    for tool in tools if isinstance(tools, list) else []:
        if not isinstance(tool, dict):
            continue
        if tool.get("type") == "function":
            names.append(str(tool.get("name")))
        elif tool.get("type") == "namespace":
            names += [
                f"{tool.get('name')}__{inner.get('name')}"
                for inner in tool.get("tools") or []
                if isinstance(inner, dict) and inner.get("type") == "function"
            ]
    return names


def breaks_an_unstated_responses_rule(body: Any) -> bool:
    """A Responses body breaking a rule the spec states in prose only: images outside user
    messages or for a model that takes none, function calls and their outputs out of order,
    a tool name used twice, a forced tool choice with nothing (or not that) to call."""
    if not isinstance(body, dict):
        return False
    names = _responses_tool_names(body.get("tools"))
    if len(names) != len(set(names)):
        return True
    choice = body.get("tool_choice")
    if choice == "required" and not names:
        return True
    if isinstance(choice, dict):
        wanted = choice.get("name")
        flat = f"{choice['namespace']}__{wanted}" if choice.get("namespace") else wanted
        if flat not in names and wanted not in names:
            return True
    items = body.get("input")
    if not isinstance(items, list):
        return False
    calls: list[str] = []  # the open assistant turn's calls
    answered: set[str] = set()
    for item in items:
        if not isinstance(item, dict):
            return False
        kind = item.get("type") or "message"
        if kind == "reasoning":
            continue
        if kind == "function_call":
            if calls and set(calls) <= answered:
                calls, answered = [], set()
            if item.get("call_id") in calls:
                return True
            calls.append(item.get("call_id"))
            continue
        if kind == "function_call_output":
            if item.get("call_id") not in calls or item.get("call_id") in answered:
                return True
            answered.add(item["call_id"])
            continue
        if not set(calls) <= answered:
            return True
        calls, answered = [], set()
        content = item.get("content")
        images = isinstance(content, list) and any(
            isinstance(part, dict) and part.get("type") == "input_image" for part in content
        )
        if images and (item.get("role") != "user" or body.get("model") not in IMAGE_MODELS):
            return True
    return not set(calls) <= answered


def conforms_to_contracts(ctx: CheckContext, response: Response, case: Case) -> bool:
    """The integration tests' contract checks (chunks, OpenAI's schemas) on a fuzzed response."""
    sent = response.request
    request = httpx.Request(str(sent.method), str(sent.url), headers=dict(sent.headers))
    headers = [(name, value) for name, values in response.headers.items() for value in values]
    received = httpx.Response(response.status_code, headers=headers, request=request)
    problems = whole_problems(
        default_contracts(),
        request,
        received,
        response.content,
        complete=not response.stream_cut_short,
    )
    assert not problems, "\n".join(problems)
    return True


def needs_the_key(ctx: CheckContext, response: Response, case: Case) -> bool:
    """Without the key, every declared operation but /health is 401 (other methods stay 405)."""
    if (
        case.operation.path not in OPEN_PATHS
        and case.method.upper() == case.operation.method.upper()
    ):
        assert response.status_code == 401, (
            f"expected 401 without an API key, got {response.status_code}"
        )
    return True


# Loaded from the file (the gateway serves the same document): schemathesis' fixture-based
# lazy loader does not work with pytest 9 (it reads `request.node._nodeid`).
schema = schemathesis.openapi.from_path(SPEC_PATH, config=schemathesis.Config.from_dict(CONFIG))


#: Requests random generation hardly ever makes (a known model, streamed or with sampling
#: settings), added as explicit examples so that they reach OpenCode and the fake upstream.
CHAT_EXAMPLES = [
    {"model": "fake/fake-model", "stream": True, "stream_options": {"include_usage": True},
     "messages": [{"role": "user", "content": "stream with usage"}]},
    {"model": "fake/fake-model", "stream": True,
     "messages": [{"role": "system", "content": "Be terse."},
                  {"role": "user", "content": [{"type": "text", "text": "parts"}]}]},
    {"model": "fake/fake-reasoning-model", "temperature": 0.5, "top_p": 0.9, "max_tokens": 50,
     "stop": ["END"], "seed": 1, "messages": [{"role": "user", "content": "sampling settings"}]},
]  # fmt: skip


@pytest.fixture(scope="module", autouse=True)
def _the_model_echoes_any_prompt(fake_upstream: fu.FakeUpstream) -> Iterator[None]:
    """Schemathesis makes up its prompts: whatever of them reaches the model gets an echo,
    for as long as this module runs (an explicit catch-all, not a default of the fake)."""
    rule = fake_upstream.script("", fu.echo())
    yield
    fake_upstream.remove(rule)


@schema.hook
def filter_case(context: HookContext, case: Case) -> bool:
    # filter_case, not filter_body: the coverage phase builds its cases without body hooks.
    rules = {
        "/v1/chat/completions": breaks_an_unstated_rule,
        "/v1/responses": breaks_an_unstated_responses_rule,
        **dict.fromkeys(MESSAGES_PATHS, breaks_an_unstated_messages_rule),
    }
    rule = rules.get(case.operation.path)
    if rule is None or case.method.upper() != "POST":
        return True
    try:
        return not rule(case.body)
    except (AttributeError, TypeError, KeyError):
        return True  # too malformed to judge (negative data): keep it


RESPONSES_EXAMPLES = [
    {"model": "fake/fake-model", "stream": True, "input": "stream a response"},
    {"model": "fake/fake-model", "instructions": "Be terse.", "store": False,
     "input": [{"role": "developer", "content": "dev"},
               {"type": "message", "role": "user",
                "content": [{"type": "input_text", "text": "parts"}]}]},
    {"model": "fake/fake-reasoning-model", "temperature": 0.5, "top_p": 0.9,
     "max_output_tokens": 50, "reasoning": {"effort": "low", "summary": "auto"},
     "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}},
               {"type": "web_search"}],
     "input": [{"role": "user", "content": "q"},
               {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
               {"type": "function_call_output", "call_id": "c1", "output": "r"}]},
]  # fmt: skip

_EXAMPLES = {"/v1/chat/completions": CHAT_EXAMPLES, "/v1/responses": RESPONSES_EXAMPLES}


@schema.hook
def before_add_examples(context: HookContext, examples: list[Case]) -> None:
    if context.operation is not None and context.operation.method.upper() == "POST":
        examples += [
            context.operation.Case(body=body, media_type="application/json")
            for body in _EXAMPLES.get(context.operation.path, [])
        ]
    if context.operation is not None and context.operation.path in MESSAGES_PATHS:
        examples += [
            context.operation.Case(body=body, media_type="application/json")
            for body in MESSAGES_EXAMPLES
        ]


@schema.parametrize()
def test_with_key(case: Case, gateway: GatewayServer) -> None:
    case.call_and_validate(
        base_url=gateway.url, headers=AUTH, additional_checks=[conforms_to_contracts]
    )


@schema.parametrize()
def test_without_key(case: Case, gateway: GatewayServer) -> None:
    (case.headers or {}).pop("Authorization", None)
    # Without a key, 401 is the only right answer, whatever the data: the positive-data check
    # (which expects a schema-valid request to be served) does not apply.
    case.call_and_validate(
        base_url=gateway.url,
        additional_checks=[conforms_to_contracts, needs_the_key],
        excluded_checks=[positive_data_acceptance],
    )


def test_stateful(gateway: GatewayServer) -> None:
    class Machine(schema.as_state_machine()):  # type: ignore[misc]
        def get_call_kwargs(self, case: Case) -> dict[str, object]:
            return {"base_url": gateway.url, "headers": AUTH}

        def validate_response(self, response: Response, case: Case, **kwargs: object) -> None:
            super().validate_response(
                response, case, additional_checks=[conforms_to_contracts], **kwargs
            )

    Machine.run(
        settings=hypothesis.settings(
            max_examples=15, derandomize=True, database=None, deadline=None
        )
    )
