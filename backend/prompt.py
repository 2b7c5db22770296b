"""prompt_body: a TurnPlan as the body of OpenCode's `POST /session/{id}/prompt_async`.

The plugin (plugin/opencode-openai.js) rebuilds the whole upstream conversation from the
metadata of the prompt's one text part: the system texts, the messages as OpenCode message
parts (text, file, completed tool parts carrying the client's results) and the sampling
settings in the shape of its `chat.params` hook. OpenCode's part objects exist only here.
"""

from __future__ import annotations

from typing import Any

from opencode_openai.backend.plugin_contract import AGENT, METADATA_KEY, STRUCTURED_OUTPUT
from opencode_openai.core.plan import (
    AssistantMessage,
    FilePart,
    ImagePart,
    Message,
    Sampling,
    TextPart,
    ToolCall,
    TurnPlan,
    UserPart,
)

__all__ = ["prompt_body"]


def _user_part(part: UserPart) -> dict[str, Any]:
    if isinstance(part, TextPart):
        return {"type": "text", "text": part.text}
    if isinstance(part, FilePart):
        return {"type": "file", "mime": part.media_type, "url": part.url, "filename": part.filename}
    assert isinstance(part, ImagePart)
    return {"type": "file", "mime": part.media_type, "url": part.url, "filename": "image"}


def _tool_part(call: ToolCall) -> dict[str, Any]:
    # A completed tool part: OpenCode sends it upstream as the call and its result; a failed
    # one (an error part) as the call and its error (`is_error` where the provider has one).
    state: dict[str, Any] = {
        "status": "completed",
        "input": call.arguments,
        "output": call.result,
        "title": call.name,
        "metadata": {},
        "time": {"start": 0, "end": 0},
    }
    if call.is_error:
        state = {
            "status": "error",
            "input": call.arguments,
            "error": call.result,
            "metadata": {},
            "time": {"start": 0, "end": 0},
        }
    return {"type": "tool", "tool": call.name, "callID": call.id, "state": state}


def _message(message: Message) -> dict[str, Any]:
    if isinstance(message, AssistantMessage):
        text = {"type": "text", "text": message.text}
        return {"role": "assistant", "parts": [text, *map(_tool_part, message.tool_calls)]}
    parts = [_user_part(part) for part in message.parts]
    if not any(part.get("text") or part["type"] == "file" for part in parts):
        # OpenCode 1.18.33 drops empty text from a user message, and a message left with
        # nothing at all: the upstream would not see the turn (or, alone, get no messages).
        parts = [{"type": "text", "text": " "}]
    return {"role": "user", "parts": parts}


def _params(sampling: Sampling) -> dict[str, Any]:
    """`chat.params` output fields, and `options`, which OpenCode's AI SDK layer spreads into
    the provider's request body (OpenAI-style names reach OpenAI-compatible providers)."""
    params: dict[str, Any] = {
        key: value
        for key, value in (
            ("temperature", sampling.temperature),
            ("topP", sampling.top_p),
            ("topK", sampling.top_k),
            ("maxOutputTokens", sampling.max_output_tokens),
        )
        if value is not None
    }
    stop = list(sampling.stop) if isinstance(sampling.stop, tuple) else sampling.stop
    options = {
        key: value
        for key, value in (
            ("seed", sampling.seed),
            ("stop", stop),
            ("presence_penalty", sampling.presence_penalty),
            ("frequency_penalty", sampling.frequency_penalty),
            ("user", sampling.user),
            ("parallel_tool_calls", sampling.parallel_tool_calls),
            # The AI SDK writes `reasoning_effort` itself from this provider option.
            ("reasoningEffort", sampling.reasoning_effort),
            # What OpenCode's Anthropic provider (@ai-sdk/anthropic) reads as Anthropic's
            # `thinking`; OpenAI-compatible providers get it as it is (`thinking.type` is what
            # several of them read); OpenAI's provider drops it.
            ("thinking", _thinking(sampling)),
        )
        if value is not None
    }
    if options:
        params["options"] = options
    return params


def _thinking(sampling: Sampling) -> dict[str, Any] | None:
    if sampling.thinking is None:
        return None
    thinking: dict[str, Any] = {"type": sampling.thinking}
    if sampling.thinking == "enabled" and sampling.thinking_budget_tokens is not None:
        thinking["budgetTokens"] = sampling.thinking_budget_tokens
    return thinking


def _last_user_text(plan: TurnPlan) -> str:
    for message in reversed(plan.messages):
        if isinstance(message, AssistantMessage):
            continue
        for part in message.parts:
            if isinstance(part, TextPart):
                return part.text
    return ""


def prompt_body(plan: TurnPlan) -> dict[str, Any]:
    request = {
        "system": list(plan.system),
        "messages": [_message(message) for message in plan.messages],
        "params": _params(plan.sampling),
    }
    body: dict[str, Any] = {
        "agent": AGENT,
        "model": {"providerID": plan.model.provider_id, "modelID": plan.model.model_id},
        # The plugin rebuilds the whole conversation from the metadata; the part's own text
        # only makes the stored session readable.
        "parts": [
            {
                "type": "text",
                "text": _last_user_text(plan) or " ",
                "metadata": {METADATA_KEY: request},
            }
        ],
    }
    if plan.tool_choice is not None:
        # OpenCode 1.18.33 gives plugins no tool choice; its structured output calls the model
        # with tool_choice "required". With its own StructuredOutput tool switched off, the
        # upstream must call a client tool: any of them, or the forced one alone.
        body["format"] = {"type": "json_schema", "schema": {"type": "object"}, "retryCount": 0}
    elif plan.output is not None:
        # retryCount 0: a retry would be a second upstream call.
        body["format"] = {"type": "json_schema", "schema": plan.output.schema, "retryCount": 0}
    body["tools"] = _offered(plan)
    return body


def _offered(plan: TurnPlan) -> dict[str, bool]:
    """The prompt's `tools` map: which of the workspace's tools this call offers upstream.

    Sent on every prompt, never empty: OpenCode keeps a prompt's map as the session's
    permissions, and the next turn on a pooled session would inherit it.
    """
    forced = plan.tool_choice
    offered = {
        tool.name: forced is None or forced.name is None or forced.name == tool.name
        for tool in plan.tools
    }
    return {STRUCTURED_OUTPUT: plan.output is not None and forced is None, **offered}
