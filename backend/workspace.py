"""The gateway's own OpenCode workspaces: directories holding its agent, plugin and tool set.

Every call to OpenCode carries `?directory=<workspace>`, so OpenCode opens a separate instance
for it and loads `<workspace>/opencode.json` as project config. That is how the gateway gets its
pass-through agent and plugin into an OpenCode it starts and into one it attaches to alike,
without touching that server's own files. The directory is otherwise empty, so no AGENTS.md or
project file can leak into prompts.

OpenCode registers tools once per instance, so each distinct set of client tools gets its own
workspace (`toolsets/<hash>`), whose agent enables exactly those tool names.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from opencode_openai.backend.plugin_contract import (
    AGENT,
    PLUGIN_PATH,
    STRUCTURED_OUTPUT,
    TOOLS_FILE,
)
from opencode_openai.core.plan import ClientTool

__all__ = ["prepare_workspace", "toolset_key"]


def toolset_key(tools: tuple[ClientTool, ...]) -> str:
    canonical = json.dumps([t.as_json() for t in tools], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:24]


def _config(tools: tuple[ClientTool, ...]) -> dict[str, Any]:
    names = [STRUCTURED_OUTPUT, *(t.name for t in tools)]
    return {
        "$schema": "https://opencode.ai/config.json",
        "plugin": [PLUGIN_PATH.resolve().as_uri()],
        # Auto-compaction makes hidden extra model calls; one request is one upstream call.
        "compaction": {"auto": False, "prune": False},
        # OpenCode snapshots the enclosing git work tree around every turn (a `git write-tree`
        # over the whole checkout when the state dir sits in one): useless here, and it
        # doubled OpenCode's CPU per turn in the benchmark.
        "snapshot": False,
        "agent": {
            AGENT: {
                "description": "Pass-through agent of opencode-openai: no prompt, no host tools.",
                "mode": "primary",
                "prompt": " ",
                # Only the client's tools are offered upstream; the plugin refuses to run any.
                "tools": {"*": False, **dict.fromkeys(names, True)},
                "permission": {"*": "deny", **dict.fromkeys(names, "allow")},
            }
        },
    }


def _write(path: Path, text: str) -> None:
    if not path.exists() or path.read_text() != text:
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(text)
        tmp.replace(path)


def prepare_workspace(directory: Path, tools: tuple[ClientTool, ...] = ()) -> Path:
    """Create a workspace (idempotent) and return its absolute path."""
    directory = directory.expanduser().resolve()
    directory.mkdir(parents=True, exist_ok=True)
    _write(directory / "opencode.json", json.dumps(_config(tools), indent=2) + "\n")
    if tools:
        _write(directory / TOOLS_FILE, json.dumps([t.as_json() for t in tools], indent=2) + "\n")
    return directory
