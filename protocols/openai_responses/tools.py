"""Responses `tools` and `tool_choice` -> the plan's client tools and forced choice.

Function tools are offered under their own names. The function tools of a `namespace` are
offered too, under `<namespace>__<name>` (the upstream model sees one flat list of
functions); their calls come back with the client's `namespace` and `name`. Tools the gateway
cannot offer upstream (OpenAI's hosted tools such as `web_search`, and `custom` tools with
free-form input) are left out; the spec says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from opencode_openai.core.errors import InvalidRequest
from opencode_openai.core.plan import ClientTool, ForcedTool

__all__ = ["OfferedTools", "offered_tools", "upstream_name"]

_NAMESPACE_SEPARATOR = "__"


def upstream_name(namespace: str | None, name: str) -> str:
    """The name the upstream model knows a client function by."""
    return f"{namespace}{_NAMESPACE_SEPARATOR}{name}" if namespace else name


#: The parameters OpenAI assumes when a function tool gives none: no arguments.
_NO_PARAMETERS: dict[str, Any] = {"type": "object", "properties": {}}


@dataclass(frozen=True)
class OfferedTools:
    """What the upstream is offered, and how its names map back to the client's."""

    tools: tuple[ClientTool, ...] = ()
    forced: ForcedTool | None = None
    #: upstream name -> (namespace, name) as the client defined it
    by_upstream: dict[str, tuple[str | None, str]] = field(default_factory=dict)
    #: (namespace, name) -> upstream name (also for `tool_choice: none`, for replayed calls)
    upstream: dict[tuple[str | None, str], str] = field(default_factory=dict)

    def client_name(self, upstream: str) -> tuple[str | None, str]:
        return self.by_upstream.get(upstream, (None, upstream))


def _function(
    tool: dict[str, Any], namespace: dict[str, Any] | None
) -> tuple[tuple[str | None, str], ClientTool]:
    name: str = tool["name"]
    description = tool.get("description") or ""
    if namespace is None:
        return (None, name), ClientTool(name, description, tool.get("parameters") or _NO_PARAMETERS)
    outer = namespace.get("description") or ""
    if outer:
        description = f"{outer}\n\n{description}" if description else outer
    upstream = upstream_name(namespace["name"], name)
    return (namespace["name"], name), ClientTool(
        upstream, description, tool.get("parameters") or _NO_PARAMETERS
    )


def _functions(tools: list[dict[str, Any]]) -> list[tuple[str, tuple[str | None, str], ClientTool]]:
    """Each function tool offered, with its `param`; namespaces unfolded, others left out."""
    found = []
    for i, tool in enumerate(tools):
        if tool["type"] == "function":
            key, client_tool = _function(tool, None)
            found.append((f"tools[{i}].name", key, client_tool))
        elif tool["type"] == "namespace":
            for j, inner in enumerate(tool["tools"]):
                if inner["type"] == "function":
                    key, client_tool = _function(inner, tool)
                    found.append((f"tools[{i}].tools[{j}].name", key, client_tool))
    return found


def _forced(choice: Any, offered: OfferedTools) -> ForcedTool | None:
    if choice is None or choice == "auto":
        return None
    if not offered.tools:
        raise InvalidRequest(
            "tool_choice asks for a tool call, but the request offers no function tools",
            param="tool_choice",
        )
    if choice == "required":
        return ForcedTool(None)
    key = (choice.get("namespace"), choice["name"])
    upstream = offered.upstream.get(key)
    if upstream is None and choice["name"] in offered.by_upstream:
        upstream = choice["name"]
    if upstream is None:
        raise InvalidRequest(
            f"tool_choice names the function `{choice['name']}`, which `tools` does not define",
            param="tool_choice.name",
        )
    return ForcedTool(upstream)


def offered_tools(tools: list[dict[str, Any]] | None, choice: Any) -> OfferedTools:
    """The functions to offer; `tool_choice: none` offers none of them to this call (their
    names still map replayed calls)."""
    by_upstream: dict[str, tuple[str | None, str]] = {}
    upstream: dict[tuple[str | None, str], str] = {}
    client_tools: list[ClientTool] = []
    for param, key, tool in _functions(tools or []):
        if tool.name in by_upstream:
            raise InvalidRequest(f"tool `{tool.name}` is defined twice", param=param)
        by_upstream[tool.name], upstream[key] = key, tool.name
        client_tools.append(tool)
    if choice == "none":
        return OfferedTools((), None, by_upstream, upstream)
    offered = OfferedTools(tuple(client_tools), None, by_upstream, upstream)
    return OfferedTools(offered.tools, _forced(choice, offered), by_upstream, upstream)
