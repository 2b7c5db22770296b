"""OpenAI chat request -> TurnPlan. Every field is honoured here, or rejected on purpose.

The spec (openapi/openapi.yaml) has already checked types and ranges; this module decides what a
well-typed request means for OpenCode and refuses, with a 400 naming the field, whatever the
gateway would otherwise have to drop silently. Fields neither used nor rejected here are ignored
on purpose; the spec's field descriptions say which.
"""

from __future__ import annotations

import mimetypes
from dataclasses import dataclass
from typing import Any

from ..backend import CatalogModel, ModelCatalog, TurnPlan
from ..errors import InvalidRequest, ModelNotFound, UnsupportedParameter

__all__ = ["RequestOptions", "plan_from_request"]


@dataclass(frozen=True)
class RequestOptions:
    """How to answer, as opposed to what to ask (that is the TurnPlan)."""

    model: str
    stream: bool
    include_usage: bool


# Fields whose only meaningful values are the default; anything else is refused, not dropped.
_REFUSED = {
    "logprobs": (lambda v: v is True, "log probabilities are not available through OpenCode"),
    "top_logprobs": (lambda v: v is not None, "log probabilities are not available through OpenCode"),
    "logit_bias": (lambda v: bool(v), "logit_bias cannot be passed through OpenCode"),
    "audio": (lambda v: v is not None, "audio output is not supported"),
    "modalities": (lambda v: v not in (None, ["text"]), "only the text modality is supported"),
    "web_search_options": (lambda v: v is not None, "web search is not supported"),
    "tools": (lambda v: bool(v), "tool calling is not supported by this gateway yet"),
    "functions": (lambda v: bool(v), "function calling is not supported by this gateway yet"),
    "tool_choice": (lambda v: v not in (None, "none", "auto"), "tool calling is not supported yet"),
    "function_call": (lambda v: v not in (None, "none", "auto"), "function calling is not supported yet"),
}


def plan_from_request(body: dict[str, Any], catalog: ModelCatalog) -> tuple[TurnPlan, RequestOptions]:
    model = _resolve_model(body["model"], catalog)
    if (body.get("n") or 1) > 1:
        raise UnsupportedParameter("n", "`n` > 1 is not supported: OpenCode gives one choice")
    for field, (refused, why) in _REFUSED.items():
        if refused(body.get(field)):
            raise UnsupportedParameter(field, f"`{field}`: {why}")
    system, messages = _conversation(body["messages"], model)
    plan = TurnPlan(
        model=model.ref,
        system=system,
        messages=messages,
        params=_params(body),
        output_schema=_output_schema(body.get("response_format")),
    )
    stream = bool(body.get("stream"))
    include_usage = stream and bool((body.get("stream_options") or {}).get("include_usage"))
    return plan, RequestOptions(model=model.ref.id, stream=stream, include_usage=include_usage)


def _resolve_model(requested: str, catalog: ModelCatalog) -> CatalogModel:
    model = catalog.resolve(requested)
    if model is None:
        raise ModelNotFound(requested)
    return model


def _image_part(part: dict[str, Any], model: CatalogModel, param: str) -> dict[str, Any]:
    if not model.image_input:
        raise InvalidRequest(
            f"the model `{model.ref.id}` does not accept image input", param=param,
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
            parts.append(_image_part(part, model, param))
        else:
            raise UnsupportedParameter(
                param, f"content part type `{kind}` is not supported; send text or image_url parts"
            )
    return parts


def _conversation(
    messages: list[dict[str, Any]], model: CatalogModel
) -> tuple[list[str], list[dict[str, Any]]]:
    """System texts (in order) and the user/assistant turns, each as OpenCode parts."""
    system: list[str] = []
    turns: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        role = message["role"]
        parts = _parts(message.get("content"), i, model)
        if role in ("system", "developer"):
            if any(p["type"] != "text" for p in parts):
                raise InvalidRequest("system messages take text only", param=f"messages[{i}].content")
            system.append("".join(p["text"] for p in parts))
        elif role in ("user", "assistant"):
            if role == "assistant" and message.get("tool_calls"):
                raise UnsupportedParameter(
                    f"messages[{i}].tool_calls", "tool calls are not supported by this gateway yet"
                )
            turns.append({"role": role, "parts": parts or [{"type": "text", "text": ""}]})
        else:
            raise UnsupportedParameter(
                f"messages[{i}].role", f"`{role}` messages are not supported by this gateway yet"
            )
    if not any(t["role"] == "user" for t in turns):
        raise InvalidRequest("messages must contain at least one user message", param="messages")
    return system, turns


def _output_schema(response_format: dict[str, Any] | None) -> dict[str, Any] | None:
    """response_format as the JSON Schema OpenCode's structured output must satisfy."""
    kind = (response_format or {}).get("type", "text")
    if kind == "json_object":
        return {"type": "object"}
    if kind == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema")  # type: ignore[union-attr]
        return schema if isinstance(schema, dict) else {"type": "object"}
    return None


def _params(body: dict[str, Any]) -> dict[str, Any]:
    """Sampling settings in the plugin's format (`chat.params` output fields and options)."""
    params: dict[str, Any] = {}
    if body.get("temperature") is not None:
        params["temperature"] = body["temperature"]
    if body.get("top_p") is not None:
        params["topP"] = body["top_p"]
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    if max_tokens is not None:
        params["maxOutputTokens"] = max_tokens
    # `options` keys are spread into the provider's request body by OpenCode's AI SDK layer.
    options = {
        key: body[key]
        for key in ("seed", "stop", "presence_penalty", "frequency_penalty", "user")
        if body.get(key) is not None
    }
    if body.get("reasoning_effort") is not None:
        # The AI SDK writes `reasoning_effort` itself from this provider option.
        options["reasoningEffort"] = body["reasoning_effort"]
    if options:
        params["options"] = options
    return params
