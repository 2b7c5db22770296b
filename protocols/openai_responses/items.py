"""Responses `input` items -> the plan's system texts and conversation.

The spec has already checked each item's shape (types, roles, content parts, arguments that
are JSON objects). What is left is what JSON Schema cannot say. `system` and `developer`
messages become system texts, in order (OpenCode sends every system message before the
conversation). An assistant message and the `function_call` items after it are one assistant
turn; each call must be answered by a `function_call_output` before the next message, as
OpenAI requires, and a call and its output become one ToolCall of the plan. `reasoning` items
are accepted and not replayed (OpenCode cannot replay a provider's reasoning). Images belong
in user messages, for a model that takes image input.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping, Sequence
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
from opencode_openai.protocols.openai_responses.tools import upstream_name

__all__ = ["conversation", "input_items", "item_id"]

_TEXT_PARTS = ("input_text", "output_text")
_ID_PREFIX = {
    "message": "msg",
    "function_call": "fc",
    "function_call_output": "fco",
    "reasoning": "rs",
}


def item_id(kind: str) -> str:
    return f"{_ID_PREFIX.get(kind, 'item')}_{secrets.token_hex(16)}"


def input_items(value: str | Sequence[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """The request's `input` as items in the form OpenAI lists them (GET .../input_items):
    each with its `type`, an `id` and a `status`, message content as parts (assistant text as
    `output_text`, other roles' as `input_text`); a string is one user message."""
    if value is None:
        return []
    if isinstance(value, str):
        value = [{"type": "message", "role": "user", "content": value}]
    return [_normalized(item) for item in value]


def _part(part: Mapping[str, Any], assistant: bool) -> dict[str, Any]:
    kind = part["type"]
    if kind in _TEXT_PARTS:
        if assistant:
            return {
                "type": "output_text",
                "text": part["text"],
                "annotations": list(part.get("annotations") or []),
                "logprobs": list(part.get("logprobs") or []),
            }
        return {"type": "input_text", "text": part["text"]}
    if kind == "input_image":
        return {
            "type": "input_image",
            "image_url": part["image_url"],
            "detail": part.get("detail") or "auto",
        }
    return dict(part)


def _normalized(item: Mapping[str, Any]) -> dict[str, Any]:
    kind = item.get("type") or "message"
    normal: dict[str, Any] = {"type": kind, "id": item.get("id") or item_id(kind)}
    if kind == "message":
        assistant = item["role"] == "assistant"
        content = item["content"]
        if isinstance(content, str):
            content = [{"type": "input_text", "text": content}]
        normal.update(
            role=item["role"],
            content=[_part(part, assistant) for part in content],
            status="completed",
        )
    elif kind == "function_call":
        normal.update(
            call_id=item["call_id"],
            name=item["name"],
            arguments=item.get("arguments") or "{}",
            status="completed",
        )
        if item.get("namespace"):
            normal["namespace"] = item["namespace"]
    elif kind == "function_call_output":
        normal.update(call_id=item["call_id"], output=item["output"], status="completed")
    else:  # reasoning: kept as the client sent it, less the nulls OpenAI's schema refuses
        normal.update({k: v for k, v in item.items() if v is not None and k not in normal})
        normal.setdefault("summary", [])
    return normal


def _user_parts(content: Any, param: str, model: CatalogModel) -> tuple[UserPart, ...]:
    if isinstance(content, str):
        return (TextPart(content),)
    parts: list[UserPart] = []
    for j, part in enumerate(content):
        if part["type"] == "input_image":
            parts.append(image_part(part["image_url"], model, f"{param}[{j}]"))
        elif part["type"] in _TEXT_PARTS:
            parts.append(TextPart(part["text"]))
        # refusal parts: nothing to say to the model
    return tuple(parts)


def _text(content: Any, param: str) -> str:
    """The text of a non-user message: a string, or its text parts joined."""
    if isinstance(content, str):
        return content
    texts = []
    for j, part in enumerate(content):
        if part["type"] == "input_image":
            raise InvalidRequest("images are only accepted in user messages", param=f"{param}[{j}]")
        if part["type"] in _TEXT_PARTS:
            texts.append(part["text"])
    return "".join(texts)


def _output_text(output: Any) -> str:
    """A function_call_output's `output`: a string, or its text parts joined."""
    if isinstance(output, str):
        return output
    return "".join(part.get("text", "") for part in output)


def conversation(
    items: Sequence[Mapping[str, Any]],
    model: CatalogModel,
    *,
    param: str = "input",
    first_index: int = 0,
) -> tuple[tuple[str, ...], tuple[Message, ...]]:
    """System texts, and the conversation as the plan's messages.

    A call of a namespace's function is replayed under the name the upstream knows it by
    (`<namespace>__<name>`, see tools.py). `first_index` is the
    position of `items[0]` in the request's `input` (earlier items come from a stored
    response and are not the client's to fix; errors about them name no `param`).
    """
    system: list[str] = []
    turns: list[Message] = []
    assistant_text: str | None = None  # the open assistant turn's text (None: none open)
    calls: list[tuple[Mapping[str, Any], int]] = []  # the open assistant turn's calls
    results: dict[str, str] = {}

    def where(index: int, *rest: str) -> str | None:
        if index < first_index:
            return None
        return f"{param}[{index - first_index}]" + "".join(rest)

    def close_turn(index: int) -> None:
        nonlocal assistant_text, calls
        if not calls:
            if assistant_text is not None:
                turns.append(AssistantMessage(assistant_text))
            assistant_text = None
            return
        missing = [call["call_id"] for call, _ in calls if call["call_id"] not in results]
        if missing:
            raise InvalidRequest(
                "each `function_call` must be answered by a `function_call_output` with its "
                f"call_id before the next message (missing: {', '.join(sorted(missing))})",
                param=where(index) if index < len(items) else param,
            )
        turns.append(
            AssistantMessage(
                assistant_text or "",
                tuple(
                    ToolCall(
                        call["call_id"],
                        upstream_name(call.get("namespace"), call["name"]),
                        json.loads(call.get("arguments") or "{}"),
                        results[call["call_id"]],
                    )
                    for call, _ in calls
                ),
            )
        )
        assistant_text, calls = None, []
        results.clear()

    for i, item in enumerate(items):
        kind = item.get("type") or "message"
        if kind == "reasoning":
            continue
        if kind == "function_call":
            if calls and all(call["call_id"] in results for call, _ in calls):
                close_turn(i)  # the open turn's calls are all answered: a new turn begins
            if any(call["call_id"] == item["call_id"] for call, _ in calls):
                raise InvalidRequest(
                    f"call_id `{item['call_id']}` is used twice", param=where(i, ".call_id")
                )
            calls.append((item, i))
            continue
        if kind == "function_call_output":
            call_id = item["call_id"]
            if not any(call["call_id"] == call_id for call, _ in calls):
                raise InvalidRequest(
                    "a `function_call_output` must answer a `function_call` before it, in the "
                    f"same turn (unknown call_id `{call_id}`)",
                    param=where(i, ".call_id"),
                )
            if call_id in results:
                raise InvalidRequest(
                    f"call_id `{call_id}` is answered twice", param=where(i, ".call_id")
                )
            results[call_id] = _output_text(item["output"])
            continue
        role, content = item["role"], item["content"]
        if role == "assistant":
            close_turn(i)
            assistant_text = _text(content, where(i, ".content") or "input")
            continue
        close_turn(i)
        if role in ("system", "developer"):
            system.append(_text(content, where(i, ".content") or "input"))
        else:
            turns.append(UserMessage(_user_parts(content, where(i, ".content") or "input", model)))
    close_turn(len(items))
    return tuple(system), tuple(turns)
