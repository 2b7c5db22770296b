"""OpenAI `messages` -> the system texts and OpenCode message parts the plugin replays.

System and developer messages become system texts, in order (OpenCode sends every system
message before the conversation). User and assistant messages become OpenCode messages whose
parts are text, image files, and, for an assistant's `tool_calls`, completed tool parts carrying
the matching `tool` messages' results: OpenCode turns those back into the upstream's
tool-call / tool-result history.
"""

from __future__ import annotations

import json
import mimetypes
from typing import Any

from opencode_openai.core.errors import InvalidRequest, UnsupportedParameter
from opencode_openai.core.models import CatalogModel

__all__ = ["conversation"]


def _image(part: dict[str, Any], model: CatalogModel, param: str) -> dict[str, Any]:
    if not model.image_input:
        raise InvalidRequest(
            f"the model `{model.ref.id}` does not accept image input",
            param=param,
            code="model_not_multimodal",
        )
    url = (part.get("image_url") or {}).get("url")
    if not isinstance(url, str) or not url:
        raise InvalidRequest("an image_url part needs `image_url.url`", param=param)
    if url.startswith("data:"):
        mime = url[5:].split(";", 1)[0].split(",", 1)[0]
    elif url.startswith(("http://", "https://")):
        mime = mimetypes.guess_type(url.split("?", 1)[0])[0] or "image/png"
    else:
        raise InvalidRequest("image_url.url must be a data: URL or an http(s) URL", param=param)
    if not mime.startswith("image/"):
        raise InvalidRequest(f"`{mime}` is not an image type", param=param)
    return {"type": "file", "mime": mime, "url": url, "filename": "image"}


def _parts(content: Any, index: int, model: CatalogModel) -> list[dict[str, Any]]:
    """Message content (a string, or an array of parts) as OpenCode parts."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    parts = []
    for j, part in enumerate(content):
        param = f"messages[{index}].content[{j}]"
        kind = part.get("type")
        if kind == "text":
            parts.append({"type": "text", "text": part["text"]})
        elif kind == "image_url":
            parts.append(_image(part, model, param))
        else:
            raise UnsupportedParameter(
                param, f"content part type `{kind}` is not supported; send text or image_url parts"
            )
    return parts


def _text(parts: list[dict[str, Any]], param: str) -> str:
    if any(p["type"] != "text" for p in parts):
        raise InvalidRequest("this message takes text only", param=param)
    return "".join(p["text"] for p in parts)


def _tool_part(call: dict[str, Any], param: str) -> dict[str, Any]:
    function = call.get("function") or {}
    name, arguments, call_id = function.get("name"), function.get("arguments", ""), call.get("id")
    if not isinstance(name, str) or not isinstance(call_id, str):
        raise InvalidRequest("each tool call needs an `id` and a `function.name`", param=param)
    try:
        args = json.loads(arguments or "{}")
    except (TypeError, ValueError) as exc:
        raise InvalidRequest("`function.arguments` must be a JSON object", param=param) from exc
    if not isinstance(args, dict):
        raise InvalidRequest("`function.arguments` must be a JSON object", param=param)
    state = {
        "status": "completed",
        "input": args,
        "output": None,
        "title": name,
        "metadata": {},
        "time": {"start": 0, "end": 0},
    }
    return {"type": "tool", "tool": name, "callID": call_id, "state": state}


def conversation(
    messages: list[dict[str, Any]], model: CatalogModel
) -> tuple[list[str], list[dict[str, Any]]]:
    """System texts and the user/assistant turns in the plugin's format."""
    system: list[str] = []
    turns: list[dict[str, Any]] = []
    awaiting: dict[str, dict[str, Any]] = {}  # tool_call_id -> its tool part, until answered
    for i, message in enumerate(messages):
        role = message["role"]
        parts = _parts(message.get("content"), i, model)
        if role != "tool" and awaiting:
            raise _unanswered(awaiting, i)
        if role in ("system", "developer"):
            system.append(_text(parts, f"messages[{i}].content"))
        elif role == "user":
            turns.append({"role": "user", "parts": parts or [{"type": "text", "text": ""}]})
        elif role == "assistant":
            calls = [
                _tool_part(call, f"messages[{i}].tool_calls[{j}]")
                for j, call in enumerate(message.get("tool_calls") or [])
            ]
            awaiting = {part["callID"]: part for part in calls}
            turns.append(
                {"role": "assistant", "parts": (parts or [{"type": "text", "text": ""}]) + calls}
            )
        elif role == "tool":
            call_id = message.get("tool_call_id")
            part = awaiting.pop(call_id, None) if isinstance(call_id, str) else None
            if part is None:
                raise InvalidRequest(
                    "a `tool` message must answer a tool call of the assistant message before it "
                    f"(unknown tool_call_id `{call_id}`)",
                    param=f"messages[{i}].tool_call_id",
                )
            part["state"]["output"] = _text(parts, f"messages[{i}].content")
        else:
            raise UnsupportedParameter(
                f"messages[{i}].role", f"`{role}` messages are not supported; use tools"
            )
    if awaiting:
        raise _unanswered(awaiting, len(messages))
    if not any(t["role"] == "user" for t in turns):
        raise InvalidRequest("messages must contain at least one user message", param="messages")
    return system, turns


def _unanswered(awaiting: dict[str, Any], index: int) -> InvalidRequest:
    missing = ", ".join(sorted(awaiting))
    return InvalidRequest(
        "an assistant message with `tool_calls` must be followed by `tool` messages answering "
        f"each tool_call_id (missing: {missing})",
        param=f"messages[{index}]",
    )
