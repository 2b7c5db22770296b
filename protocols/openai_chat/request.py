"""OpenAI chat request -> TurnPlan. Every field is honoured here, or rejected on purpose.

The spec (openapi/openapi.yaml) has already checked types, ranges and the values the gateway
refuses (each such field says why in its `x-unsupported`); this module decides what a
well-typed request means. What JSON Schema cannot know (the model's limits and inputs, the
order of the conversation, tool names used twice) is checked here, with a 400 naming the
field. Fields neither used here nor refused by the spec are ignored on purpose; the spec's
field descriptions say which.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from opencode_openai.core.errors import InvalidRequest
from opencode_openai.core.models import CatalogModel, ModelCatalog
from opencode_openai.core.plan import ClientTool, ForcedTool, OutputFormat, Sampling, TurnPlan
from opencode_openai.protocols.openai_chat.messages import conversation

__all__ = ["RequestOptions", "plan_from_request"]

#: The parameters OpenAI assumes when a function tool gives none: no arguments.
_NO_PARAMETERS: dict[str, Any] = {"type": "object", "properties": {}}


@dataclass(frozen=True)
class RequestOptions:
    """How to answer, as opposed to what to ask (that is the TurnPlan)."""

    model: str
    stream: bool
    include_usage: bool


def plan_from_request(
    body: dict[str, Any], catalog: ModelCatalog, *, clamp_max_tokens: bool = True
) -> tuple[TurnPlan, RequestOptions]:
    model = catalog.require(body["model"])
    tools = _tools(body.get("tools"), body.get("tool_choice"))
    tool_choice = _forced_tool(body.get("tool_choice"), tools)
    system, messages = conversation(body["messages"], model)
    plan = TurnPlan(
        model=model.ref,
        system=system,
        messages=messages,
        sampling=_sampling(body, model, with_tools=bool(tools), clamp=clamp_max_tokens),
        output=_output_format(body.get("response_format")),
        tools=tools,
        tool_choice=tool_choice,
    )
    stream = bool(body.get("stream"))
    include_usage = stream and bool((body.get("stream_options") or {}).get("include_usage"))
    return plan, RequestOptions(model=model.ref.id, stream=stream, include_usage=include_usage)


def _tools(tools: list[dict[str, Any]] | None, tool_choice: Any) -> tuple[ClientTool, ...]:
    """The client's function tools; `tool_choice: none` offers none of them to this call."""
    if not tools or tool_choice == "none":
        return ()
    result: dict[str, ClientTool] = {}
    for i, tool in enumerate(tools):
        function = tool["function"]
        name = function["name"]
        if name in result:
            raise InvalidRequest(
                f"tool `{name}` is defined twice", param=f"tools[{i}].function.name"
            )
        parameters = function.get("parameters") or _NO_PARAMETERS
        result[name] = ClientTool(name, function.get("description") or "", parameters)
    return tuple(result.values())


def _forced_tool(tool_choice: Any, tools: tuple[ClientTool, ...]) -> ForcedTool | None:
    """`required`: a call of any of the tools; a named function: a call of that one. Without
    tools there is nothing to force: `required` is then answered as `auto` would be."""
    if not tools:
        return None
    if tool_choice == "required":
        return ForcedTool()
    if isinstance(tool_choice, dict):
        name = tool_choice["function"]["name"]
        if name not in {tool.name for tool in tools}:
            raise InvalidRequest(
                f"tool_choice names `{name}`, which is not one of the request's tools",
                param="tool_choice.function.name",
            )
        return ForcedTool(name)
    return None


def _output_format(response_format: dict[str, Any] | None) -> OutputFormat | None:
    """response_format as the JSON Schema OpenCode's structured output must satisfy."""
    kind = (response_format or {}).get("type", "text")
    if kind == "json_object":
        return OutputFormat({"type": "object"})
    if kind == "json_schema":
        assert response_format is not None
        schema = (response_format.get("json_schema") or {}).get("schema")
        return OutputFormat(schema if isinstance(schema, dict) else {"type": "object"})
    return None


def _sampling(
    body: dict[str, Any], model: CatalogModel, *, with_tools: bool, clamp: bool
) -> Sampling:
    field = (
        "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
    )
    stop = body.get("stop")
    return Sampling(
        temperature=body.get("temperature"),
        top_p=body.get("top_p"),
        max_output_tokens=model.output_tokens(body.get(field), param=field, clamp=clamp),
        stop=tuple(stop) if isinstance(stop, list) else stop,
        seed=body.get("seed"),
        presence_penalty=body.get("presence_penalty"),
        frequency_penalty=body.get("frequency_penalty"),
        user=body.get("user"),
        reasoning_effort=body.get("reasoning_effort"),
        parallel_tool_calls=body.get("parallel_tool_calls") if with_tools else None,
    )
