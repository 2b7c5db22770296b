"""Anthropic `system` and `messages` -> the plan's system texts and conversation.

The spec has already checked each message's shape (roles, block types, sources). What is left
is what JSON Schema cannot say: the order of the conversation. `system` (a string or text
blocks) and `system`-role messages, wherever they stand, become system texts in order (OpenCode
sends every system message before the conversation). Each `tool_use` block of an assistant
message must be answered by a `tool_result` block of the user message right after it, as
Anthropic requires; a call and its result become one ToolCall of the plan. The rest of that user
message (text, images, and the images inside tool results, which OpenCode's tool results cannot
carry) follows as a user message. `thinking` and `redacted_thinking` blocks of earlier answers
are accepted and not replayed. Images need a model that takes image input.
"""

from __future__ import annotations

from typing import Any

from opencode_openai.core.errors import InvalidRequest
from opencode_openai.core.models import CatalogModel
from opencode_openai.core.plan import (
    AssistantMessage,
    FilePart,
    ImagePart,
    Message,
    TextPart,
    ToolCall,
    UserMessage,
    UserPart,
)
from opencode_openai.protocols._images import image_part

__all__ = ["conversation", "system_texts"]


def system_texts(system: Any) -> list[str]:
    """`system` (or a system message's content): a string, or its text blocks one by one."""
    if system is None:
        return []
    if isinstance(system, str):
        return [system]
    return [block["text"] for block in system if block["type"] == "text"]


def _image(block: dict[str, Any], model: CatalogModel, param: str) -> ImagePart:
    source = block["source"]
    if source["type"] == "base64":
        url = f"data:{source['media_type']};base64,{source['data']}"
        return image_part(url, model, param)
    return image_part(source["url"], model, param)


def _document(block: dict[str, Any], model: CatalogModel, param: str) -> list[UserPart]:
    """A document: a PDF as a file part, a text document as its text (with its title)."""
    source = block["source"]
    title = block.get("title")
    kind = source["type"]
    if kind == "text":
        heading = f"{title}\n\n" if title else ""
        return [TextPart(heading + source["data"])]
    if kind == "content":
        content = source["content"]
        if isinstance(content, str):
            return [TextPart(content)]
        return _blocks(content, model, param + ".source.content")
    name = title or "document.pdf"
    if kind == "base64":
        return [FilePart(f"data:application/pdf;base64,{source['data']}", "application/pdf", name)]
    return [FilePart(source["url"], "application/pdf", name)]


def _block(block: dict[str, Any], model: CatalogModel, param: str) -> list[UserPart]:
    """A user content block (other than tool_result) as plan parts; `param` names it."""
    kind = block["type"]
    if kind == "text":
        return [TextPart(block["text"])]
    if kind == "image":
        return [_image(block, model, param)]
    if kind == "document":
        return _document(block, model, param)
    return []  # a tool_reference: nothing the model reads


def _blocks(blocks: list[dict[str, Any]], model: CatalogModel, param: str) -> list[UserPart]:
    parts: list[UserPart] = []
    for j, block in enumerate(blocks):
        parts += _block(block, model, f"{param}[{j}]")
    return parts


def _result(block: dict[str, Any], model: CatalogModel, param: str) -> tuple[str, list[UserPart]]:
    """A tool_result's text, and the images it carries (they follow in the user message)."""
    content = block.get("content")
    if content is None:
        return "", []
    if isinstance(content, str):
        return content, []
    parts = _blocks(content, model, param + ".content")
    text = "".join(part.text for part in parts if isinstance(part, TextPart))
    return text, [part for part in parts if not isinstance(part, TextPart)]


def _assistant_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(block["text"] for block in content if block["type"] == "text")


def conversation(
    system: Any, messages: list[dict[str, Any]], model: CatalogModel
) -> tuple[tuple[str, ...], tuple[Message, ...]]:
    """System texts, and the conversation as the plan's messages."""
    texts = system_texts(system)
    turns: list[Message] = []
    # The last assistant message's tool_use blocks, waiting for the next user message's results.
    calls: list[dict[str, Any]] = []
    assistant_text = ""
    pending_at = 0

    for i, message in enumerate(messages):
        role, content = message["role"], message["content"]
        if role == "system":
            if calls:
                break  # reported below: the results must come right after the calls
            texts += system_texts(content)
            continue
        if role == "assistant":
            if calls:
                break
            blocks = [] if isinstance(content, str) else content
            calls = [block for block in blocks if block["type"] == "tool_use"]
            if calls:
                assistant_text, pending_at = _assistant_text(content), i
            else:
                turns.append(AssistantMessage(_assistant_text(content)))
            continue
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        results: dict[str, tuple[str, bool]] = {}
        parts: list[UserPart] = []
        extra: list[UserPart] = []
        for j, block in enumerate(blocks):
            param = f"messages[{i}].content[{j}]"
            if block["type"] != "tool_result":
                parts += _block(block, model, param)
                continue
            call_id = block["tool_use_id"]
            if not any(call["id"] == call_id for call in calls):
                raise InvalidRequest(
                    "a `tool_result` block must answer a `tool_use` block of the assistant "
                    f"message right before it (unknown tool_use_id `{call_id}`)",
                    param=f"{param}.tool_use_id",
                )
            if call_id in results:
                raise InvalidRequest(
                    f"tool_use_id `{call_id}` is answered twice", param=f"{param}.tool_use_id"
                )
            text, attached = _result(block, model, param)
            results[call_id] = (text, bool(block.get("is_error")))
            extra += attached
        if calls:
            missing = [call["id"] for call in calls if call["id"] not in results]
            if missing:
                raise InvalidRequest(
                    "each `tool_use` block must be answered by a `tool_result` block in the "
                    f"user message right after it (missing: {', '.join(sorted(missing))})",
                    param=f"messages[{i}]",
                )
            turns.append(
                AssistantMessage(
                    assistant_text,
                    tuple(
                        ToolCall(
                            call["id"],
                            call["name"],
                            call.get("input") or {},
                            results[call["id"]][0],
                            is_error=results[call["id"]][1],
                        )
                        for call in calls
                    ),
                )
            )
            calls = []
            if parts or extra:
                turns.append(UserMessage(tuple(parts + extra)))
        else:
            turns.append(UserMessage(tuple(parts)))
    if calls:
        unanswered = ", ".join(sorted(call["id"] for call in calls))
        raise InvalidRequest(
            "each `tool_use` block must be answered by a `tool_result` block in the user "
            f"message right after it (missing: {unanswered})",
            param=f"messages[{pending_at}]",
        )
    return tuple(texts), tuple(turns)
