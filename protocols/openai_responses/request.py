"""OpenAI Responses request -> TurnPlan. Every field is honoured here, or rejected on purpose.

The spec (openapi/openapi.yaml) has already checked types, ranges and the values the gateway
refuses (each such field says why in its `x-unsupported`); this module decides what a
well-typed request means. What JSON Schema cannot know (the model's limits and inputs, the
order of function calls and their outputs, tool names used twice) is checked here, with a 400
naming the field. Fields neither used here nor refused by the spec are ignored on purpose;
the spec's field descriptions say which.

A request continuing a stored response (`previous_response_id`) brings that response's
conversation (`history`, its input items and its output, from the store): the upstream gets
the same messages as if the client had sent the whole history. The earlier response's
`instructions` are not carried over, as with OpenAI.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from opencode_openai.core.models import CatalogModel, ModelCatalog
from opencode_openai.core.plan import OutputFormat, Sampling, TurnPlan, UserMessage
from opencode_openai.protocols.openai_responses.items import conversation, input_items
from opencode_openai.protocols.openai_responses.tools import OfferedTools, offered_tools

__all__ = ["ResponseOptions", "plan_from_request"]

_TEXT_FORMAT: dict[str, Any] = {"type": "text"}


@dataclass(frozen=True)
class ResponseOptions:
    """How to answer, as opposed to what to ask (that is the TurnPlan)."""

    #: The model as the client named it (echoed back, as OpenAI does).
    model: str
    stream: bool
    store: bool
    #: `reasoning.summary` asked for: the model's reasoning comes back as a summary.
    reasoning_summary: bool
    tools: OfferedTools
    #: This request's `input`, as items with ids (what GET .../input_items lists).
    input_items: tuple[dict[str, Any], ...]
    #: The conversation before `input`, from `previous_response_id`.
    history: tuple[dict[str, Any], ...]
    #: The request's settings the response object repeats.
    echo: dict[str, Any]


def plan_from_request(
    body: dict[str, Any],
    catalog: ModelCatalog,
    *,
    history: Sequence[dict[str, Any]] = (),
    clamp_max_tokens: bool = True,
) -> tuple[TurnPlan, ResponseOptions]:
    model = catalog.require(body["model"])
    tools = offered_tools(body.get("tools"), body.get("tool_choice"))
    items = input_items(body.get("input"))
    system, messages = conversation([*history, *items], model, first_index=len(history))
    if not messages:
        # No input (or only system texts, or reasoning): a model call needs a message, and an
        # empty user message reaches the model as one space (backend/prompt.py).
        messages = (UserMessage(()),)
    instructions = body.get("instructions")
    if isinstance(instructions, str) and instructions:
        system = (instructions, *system)
    reasoning = body.get("reasoning") or {}
    plan = TurnPlan(
        model=model.ref,
        system=system,
        messages=messages,
        sampling=_sampling(body, model, with_tools=bool(tools.tools), clamp=clamp_max_tokens),
        output=_output_format((body.get("text") or {}).get("format")),
        tools=tools.tools,
        tool_choice=tools.forced,
    )
    options = ResponseOptions(
        model=body["model"],
        stream=bool(body.get("stream")),
        store=body.get("store") is not False,
        reasoning_summary=bool(reasoning.get("summary") or reasoning.get("generate_summary")),
        tools=tools,
        input_items=tuple(items),
        history=tuple(history),
        echo=_echo(body, plan),
    )
    return plan, options


def _output_format(text_format: dict[str, Any] | None) -> OutputFormat | None:
    """text.format as the JSON Schema OpenCode's structured output must satisfy."""
    kind = (text_format or {}).get("type", "text")
    if kind == "json_object":
        return OutputFormat({"type": "object"})
    if kind == "json_schema":
        assert text_format is not None
        schema = text_format.get("schema")
        return OutputFormat(schema if isinstance(schema, dict) else {"type": "object"})
    return None


def _sampling(
    body: dict[str, Any], model: CatalogModel, *, with_tools: bool, clamp: bool
) -> Sampling:
    reasoning = body.get("reasoning") or {}
    return Sampling(
        temperature=body.get("temperature"),
        top_p=body.get("top_p"),
        max_output_tokens=model.output_tokens(
            body.get("max_output_tokens"), param="max_output_tokens", clamp=clamp
        ),
        user=body.get("user"),
        reasoning_effort=reasoning.get("effort"),
        parallel_tool_calls=body.get("parallel_tool_calls") if with_tools else None,
    )


def _echo(body: dict[str, Any], plan: TurnPlan) -> dict[str, Any]:
    """The request's settings as the response object states them (OpenAI's defaults where
    the request gave none)."""
    reasoning = body.get("reasoning")
    parallel = body.get("parallel_tool_calls")
    text = body.get("text") or {}
    return {
        "instructions": body.get("instructions"),
        "max_output_tokens": plan.sampling.max_output_tokens,
        "parallel_tool_calls": True if parallel is None else parallel,
        "previous_response_id": body.get("previous_response_id"),
        "reasoning": (
            {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")}
            if reasoning
            else None
        ),
        "store": body.get("store") is not False,
        # OpenAI reports its defaults (1); the call itself leaves them to the provider.
        "temperature": _or(body.get("temperature"), 1.0),
        "text": {**text, "format": text.get("format") or _TEXT_FORMAT},
        "tool_choice": body.get("tool_choice") or "auto",
        "tools": _echo_tools(body.get("tools") or []),
        "top_p": _or(body.get("top_p"), 1.0),
        "truncation": body.get("truncation") or "disabled",
        "metadata": body.get("metadata") or {},
        "user": body.get("user"),
        "safety_identifier": body.get("safety_identifier"),
        "prompt_cache_key": body.get("prompt_cache_key"),
    }


def _or(value: Any, default: Any) -> Any:
    return default if value is None else value


def _echo_tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The tools as the response lists them: those offered (function tools, and namespaces
    of them), with all of OpenAI's fields; tools left out are not listed."""
    listed: list[dict[str, Any]] = []
    for tool in tools:
        if tool["type"] == "function":
            listed.append(_echo_function(tool))
        elif tool["type"] == "namespace":
            functions = [_echo_function(t) for t in tool["tools"] if t["type"] == "function"]
            if functions:
                listed.append(
                    {
                        "type": "namespace",
                        "name": tool["name"],
                        "description": tool.get("description") or "",
                        "tools": functions,
                    }
                )
    return listed


def _echo_function(tool: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "function",
        "name": tool["name"],
        "description": tool.get("description"),
        "parameters": tool.get("parameters"),
        "strict": tool.get("strict"),
    }
