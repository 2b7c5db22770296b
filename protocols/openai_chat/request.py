"""OpenAI chat request -> TurnPlan. Every field is honoured here, or rejected on purpose.

The spec (openapi/openapi.yaml) has already checked types and ranges; this module decides what a
well-typed request means for OpenCode and refuses, with a 400 naming the field, whatever the
gateway would otherwise have to drop silently. Fields neither used nor rejected here are ignored
on purpose; the spec's field descriptions say which.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from opencode_openai.core.errors import InvalidRequest, ModelNotFound, UnsupportedParameter
from opencode_openai.core.models import CatalogModel, ModelCatalog
from opencode_openai.core.plan import ClientTool, TurnPlan
from opencode_openai.protocols.openai_chat.messages import conversation

__all__ = ["RequestOptions", "plan_from_request"]

_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


@dataclass(frozen=True)
class RequestOptions:
    """How to answer, as opposed to what to ask (that is the TurnPlan)."""

    model: str
    stream: bool
    include_usage: bool


# Fields whose only meaningful values are the default; anything else is refused, not dropped.
_REFUSED: dict[str, tuple[Callable[[Any], bool], str]] = {
    "logprobs": (lambda v: v is True, "log probabilities are not available through OpenCode"),
    "top_logprobs": (
        lambda v: v is not None,
        "log probabilities are not available through OpenCode",
    ),
    "logit_bias": (lambda v: bool(v), "logit_bias cannot be passed through OpenCode"),
    "audio": (lambda v: v is not None, "audio output is not supported"),
    "modalities": (lambda v: v not in (None, ["text"]), "only the text modality is supported"),
    "web_search_options": (lambda v: v is not None, "web search is not supported"),
    "functions": (
        lambda v: v is not None,
        "`functions` is deprecated and not supported; send `tools`",
    ),
    "function_call": (
        lambda v: v is not None,
        "`function_call` is deprecated and not supported; send `tool_choice`",
    ),
    "tool_choice": (
        lambda v: v not in (None, "auto", "none"),
        "OpenCode cannot force a tool choice; only `auto` and `none` are supported",
    ),
}


def plan_from_request(
    body: dict[str, Any], catalog: ModelCatalog
) -> tuple[TurnPlan, RequestOptions]:
    model = _resolve_model(body["model"], catalog)
    if (body.get("n") or 1) > 1:
        raise UnsupportedParameter("n", "`n` > 1 is not supported: OpenCode gives one choice")
    for field, (refused, why) in _REFUSED.items():
        if refused(body.get(field)):
            raise UnsupportedParameter(field, f"`{field}`: {why}")
    output_schema = _output_schema(body.get("response_format"))
    tools = _tools(body.get("tools"), body.get("tool_choice"))
    if tools and output_schema is not None:
        raise UnsupportedParameter(
            "response_format", "response_format cannot be combined with tools through OpenCode"
        )
    system, messages = conversation(body["messages"], model)
    plan = TurnPlan(
        model=model.ref,
        system=system,
        messages=messages,
        params=_params(body, model, with_tools=bool(tools)),
        output_schema=output_schema,
        tools=tools,
    )
    stream = bool(body.get("stream"))
    include_usage = stream and bool((body.get("stream_options") or {}).get("include_usage"))
    return plan, RequestOptions(model=model.ref.id, stream=stream, include_usage=include_usage)


def _resolve_model(requested: str, catalog: ModelCatalog) -> CatalogModel:
    model = catalog.resolve(requested)
    if model is None:
        raise ModelNotFound(requested)
    return model


def _tools(tools: list[dict[str, Any]] | None, tool_choice: Any) -> tuple[ClientTool, ...]:
    """The client's function tools; `tool_choice: none` offers none of them to this call."""
    if not tools or tool_choice == "none":
        return ()
    result: dict[str, ClientTool] = {}
    for i, tool in enumerate(tools):
        function = tool.get("function") or {}
        name = function.get("name")
        if tool.get("type", "function") != "function":
            raise UnsupportedParameter(f"tools[{i}].type", "only `function` tools are supported")
        if not isinstance(name, str) or not _TOOL_NAME.match(name):
            raise InvalidRequest(
                "a tool name must match ^[a-zA-Z0-9_-]{1,64}$", param=f"tools[{i}].function.name"
            )
        if name in result:
            raise InvalidRequest(
                f"tool `{name}` is defined twice", param=f"tools[{i}].function.name"
            )
        parameters = function.get("parameters") or {"type": "object", "properties": {}}
        result[name] = ClientTool(name, function.get("description") or "", parameters)
    return tuple(result.values())


def _output_schema(response_format: dict[str, Any] | None) -> dict[str, Any] | None:
    """response_format as the JSON Schema OpenCode's structured output must satisfy."""
    if not response_format:
        return None
    kind = response_format.get("type", "text")
    if kind == "json_object":
        return {"type": "object"}
    if kind == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema")
        return schema if isinstance(schema, dict) else {"type": "object"}
    return None


def _params(body: dict[str, Any], model: CatalogModel, *, with_tools: bool) -> dict[str, Any]:
    """Sampling settings in the plugin's format (`chat.params` output fields and options)."""
    params: dict[str, Any] = {}
    if body.get("temperature") is not None:
        params["temperature"] = body["temperature"]
    if body.get("top_p") is not None:
        params["topP"] = body["top_p"]
    field = (
        "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
    )
    max_tokens = body.get(field)
    if max_tokens is not None:
        if model.output_limit and max_tokens > model.output_limit:
            raise InvalidRequest(
                f"{field} is too large: {max_tokens}. This model supports at most "
                f"{model.output_limit} completion tokens.",
                param=field,
            )
        params["maxOutputTokens"] = max_tokens
    # `options` keys are spread into the provider's request body by OpenCode's AI SDK layer.
    options = {
        key: body[key]
        for key in ("seed", "stop", "presence_penalty", "frequency_penalty", "user")
        if body.get(key) is not None
    }
    if with_tools and body.get("parallel_tool_calls") is not None:
        options["parallel_tool_calls"] = body["parallel_tool_calls"]
    if body.get("reasoning_effort") is not None:
        # The AI SDK writes `reasoning_effort` itself from this provider option.
        options["reasoningEffort"] = body["reasoning_effort"]
    if options:
        params["options"] = options
    return params
