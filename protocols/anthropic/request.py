"""Anthropic Messages request -> TurnPlan. Every field is honoured here, or refused on purpose.

The spec (openapi/openapi.yaml) has already checked types, ranges and the values the gateway
refuses (each such field says why in its `x-unsupported`); this module decides what a
well-typed request means. What JSON Schema cannot know (the model's limits and inputs, the
order of the conversation, tool names used twice, a forced tool that is not offered) is
checked here, with a 400 naming the field. Fields neither used here nor refused by the spec
are ignored on purpose; the spec's field descriptions say which.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from opencode_openai.core.errors import InvalidRequest, NotFound
from opencode_openai.core.models import CatalogModel, ModelCatalog
from opencode_openai.core.plan import ClientTool, ForcedTool, OutputFormat, Sampling, TurnPlan
from opencode_openai.protocols.anthropic.messages import conversation

__all__ = ["RequestOptions", "offered_tools", "plan_from_request", "resolve_model"]


@dataclass(frozen=True)
class RequestOptions:
    """How to answer, as opposed to what to ask (that is the TurnPlan)."""

    #: The model id the client asked for: the answer's `model`.
    model: str
    stream: bool


def resolve_model(requested: str, catalog: ModelCatalog) -> CatalogModel:
    """The catalog's model for `requested` (aliases followed by the catalog), else a 404."""
    model = catalog.resolve(requested)
    if model is None:
        raise NotFound(
            f"model: `{requested}` is not a model of this gateway. GET /v1/models lists its "
            "`provider/model` ids: choose one (Claude Code: `--model`, or ANTHROPIC_MODEL), or "
            f"start the gateway with `--model-alias {requested}=provider/model` to answer "
            "this id with a model of yours.",
            param="model",
            code="model_not_found",
        )
    return model


def plan_from_request(
    body: dict[str, Any], catalog: ModelCatalog, *, clamp_max_tokens: bool = True
) -> tuple[TurnPlan, RequestOptions]:
    model = resolve_model(body["model"], catalog)
    tools = offered_tools(body.get("tools"), body.get("tool_choice"))
    tool_choice = _forced(body.get("tool_choice"), tools, body.get("thinking"))
    system, messages = conversation(body.get("system"), body["messages"], model)
    plan = TurnPlan(
        model=model.ref,
        system=system,
        messages=messages,
        sampling=_sampling(body, model, with_tools=bool(tools), clamp=clamp_max_tokens),
        output=_output_format(body),
        tools=tools,
        tool_choice=tool_choice,
    )
    return plan, RequestOptions(model=body["model"], stream=bool(body.get("stream")))


def offered_tools(tools: list[dict[str, Any]] | None, tool_choice: Any) -> tuple[ClientTool, ...]:
    """The client's custom tools; none with `tool_choice: none`. Anthropic's server tools (a
    `type` other than `custom`) and deferred tools (`defer_loading`, for Anthropic's server-side
    tool search) are left out: the gateway cannot run them."""
    if not tools or (tool_choice or {}).get("type") == "none":
        return ()
    result: dict[str, ClientTool] = {}
    for i, tool in enumerate(tools):
        if tool.get("type", "custom") != "custom" or tool.get("defer_loading"):
            continue
        name = tool["name"]
        if name in result:
            raise InvalidRequest(f"tool `{name}` is defined twice", param=f"tools[{i}].name")
        result[name] = ClientTool(name, tool.get("description") or "", tool["input_schema"])
    return tuple(result.values())


def _forced(
    tool_choice: dict[str, Any] | None, tools: tuple[ClientTool, ...], thinking: Any
) -> ForcedTool | None:
    kind = (tool_choice or {}).get("type", "auto")
    if kind not in ("any", "tool"):
        return None
    assert tool_choice is not None
    name = tool_choice.get("name") if kind == "tool" else None
    if not tools or (name is not None and name not in {tool.name for tool in tools}):
        offered = ", ".join(f"`{tool.name}`" for tool in tools) or "none"
        raise InvalidRequest(
            f"tool_choice `{kind}` needs a custom tool to call"
            + (f" named `{name}`" if name else "")
            + f" among `tools` (offered: {offered})",
            param="tool_choice",
        )
    if (thinking or {}).get("type") == "enabled":
        raise InvalidRequest(
            "Thinking may not be enabled when tool_choice forces tool use.", param="thinking"
        )
    return ForcedTool(name)


def _output_format(body: dict[str, Any]) -> OutputFormat | None:
    """`output_config.format` (or the beta's `output_format`): a JSON Schema the answer meets."""
    fmt = (body.get("output_config") or {}).get("format") or body.get("output_format")
    if not fmt:
        return None
    schema = fmt.get("schema")
    return OutputFormat(schema if isinstance(schema, dict) else {"type": "object"})


def _thinking(thinking: dict[str, Any] | None) -> tuple[Any, int | None]:
    kind = (thinking or {}).get("type")
    if kind == "enabled":
        assert thinking is not None
        return "enabled", thinking["budget_tokens"]
    if kind == "disabled":
        return "disabled", None
    return None, None  # adaptive, between_tools or absent: the model decides


def _sampling(
    body: dict[str, Any], model: CatalogModel, *, with_tools: bool, clamp: bool
) -> Sampling:
    stop = body.get("stop_sequences")
    thinking, budget = _thinking(body.get("thinking"))
    parallel = None
    if with_tools and (body.get("tool_choice") or {}).get("disable_parallel_tool_use"):
        parallel = False
    return Sampling(
        temperature=body.get("temperature"),
        top_p=body.get("top_p"),
        top_k=body.get("top_k"),
        max_output_tokens=model.output_tokens(
            body.get("max_tokens"), param="max_tokens", clamp=clamp
        ),
        stop=tuple(stop) if stop else None,
        user=(body.get("metadata") or {}).get("user_id"),
        reasoning_effort=(body.get("output_config") or {}).get("effort"),
        parallel_tool_calls=parallel,
        thinking=thinking,
        thinking_budget_tokens=budget,
    )
