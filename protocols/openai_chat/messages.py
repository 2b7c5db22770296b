"""OpenAI chat `messages` -> the plan's system texts and conversation.

The spec has already checked each message's shape (roles, content parts, `tool_call_id`,
arguments that are JSON objects). What is left is what JSON Schema cannot say: the order of
the conversation. `system` and `developer` messages become system texts, in order (OpenCode
sends every system message before the conversation). Each assistant message's `tool_calls`
must be answered by the `tool` messages right after it, as OpenAI requires; a call and its
answer become one ToolCall of the plan. Images need a model that takes image input.
"""

from __future__ import annotations

import json
from typing import Any

from opencode_openai.core.errors import InvalidRequest
from opencode_openai.core.models import CatalogModel
from opencode_openai.core.plan import (
    AssistantMessage,
    Message,
    TextPart,
    ToolCall,
    UserMessage,
    UserPart,
)
from opencode_openai.protocols._images import image_part

__all__ = ["conversation"]


def _user_parts(content: Any, index: int, model: CatalogModel) -> tuple[UserPart, ...]:
    if content is None:
        return ()
    if isinstance(content, str):
        return (TextPart(content),)
    parts: list[UserPart] = []
    for j, part in enumerate(content):
        if part["type"] == "text":
            parts.append(TextPart(part["text"]))
        else:
            parts.append(
                image_part(part["image_url"]["url"], model, f"messages[{index}].content[{j}]")
            )
    return tuple(parts)


def _text(content: Any) -> str:
    """Text content: a string, text parts joined, or nothing (null or absent)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(part["text"] for part in content if part["type"] == "text")


def conversation(
    messages: list[dict[str, Any]], model: CatalogModel
) -> tuple[tuple[str, ...], tuple[Message, ...]]:
    """System texts, and the conversation as the plan's messages."""
    system: list[str] = []
    turns: list[Message] = []
    calls: list[dict[str, Any]] = []  # the last assistant message's calls
    results: dict[str, str] = {}  # their answers so far, by tool_call_id
    assistant_text = ""

    def close_exchange(index: int) -> None:
        """The assistant message whose calls were pending is complete: all answered?"""
        nonlocal calls
        if not calls:
            return
        missing = [call["id"] for call in calls if call["id"] not in results]
        if missing:
            raise InvalidRequest(
                "an assistant message with `tool_calls` must be followed by `tool` messages "
                f"answering each tool_call_id (missing: {', '.join(sorted(missing))})",
                param=f"messages[{index}]",
            )
        turns.append(
            AssistantMessage(
                assistant_text,
                tuple(
                    ToolCall(
                        call["id"],
                        call["function"]["name"],
                        json.loads(call["function"].get("arguments") or "{}"),
                        results[call["id"]],
                    )
                    for call in calls
                ),
            )
        )
        calls = []
        results.clear()

    for i, message in enumerate(messages):
        role = message["role"]
        if role == "tool":
            call_id = message["tool_call_id"]
            if not any(call["id"] == call_id for call in calls):
                raise InvalidRequest(
                    "a `tool` message must answer a tool call of the assistant message before "
                    f"it (unknown tool_call_id `{call_id}`)",
                    param=f"messages[{i}].tool_call_id",
                )
            if call_id in results:
                raise InvalidRequest(
                    f"tool_call_id `{call_id}` is answered twice",
                    param=f"messages[{i}].tool_call_id",
                )
            results[call_id] = _text(message.get("content"))
            continue
        close_exchange(i)
        if role in ("system", "developer"):
            system.append(_text(message.get("content")))
        elif role == "user":
            turns.append(UserMessage(_user_parts(message.get("content"), i, model)))
        elif message.get("tool_calls"):
            calls, assistant_text = message["tool_calls"], _text(message.get("content"))
        else:
            turns.append(AssistantMessage(_text(message.get("content"))))
    close_exchange(len(messages))
    return tuple(system), tuple(turns)
