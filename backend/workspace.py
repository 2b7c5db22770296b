"""The gateway's own OpenCode workspace: a directory holding its agent and plugin.

Every call to OpenCode carries `?directory=<workspace>`, so OpenCode opens a separate instance
for it and loads `<workspace>/opencode.json` as project config. That is how the gateway gets its
pass-through agent and plugin into an OpenCode it starts and into one it attaches to alike,
without touching that server's own files. The directory is otherwise empty, so no AGENTS.md or
project file can leak into prompts.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

__all__ = ["AGENT", "PLUGIN_PATH", "prepare_workspace", "workspace_config"]

AGENT = "opencode-openai"
PLUGIN_PATH = Path(str(resources.files(__package__).joinpath("plugin/opencode-openai.js")))


def workspace_config() -> dict[str, Any]:
    """Project config for the workspace: a tool-less, prompt-less agent and the gateway plugin."""
    return {
        "$schema": "https://opencode.ai/config.json",
        "plugin": [PLUGIN_PATH.resolve().as_uri()],
        # Auto-compaction makes hidden extra model calls; one request is one upstream call.
        "compaction": {"auto": False, "prune": False},
        "agent": {
            AGENT: {
                "description": "Pass-through agent of opencode-openai: no prompt, no tools.",
                "mode": "primary",
                "prompt": " ",
                # StructuredOutput is OpenCode's internal tool for `format` (response_format);
                # it only exists on prompts that ask for it and runs no host code.
                "tools": {"*": False, "StructuredOutput": True},
                "permission": {"*": "deny", "StructuredOutput": "allow"},
            }
        },
    }


def prepare_workspace(directory: Path) -> Path:
    """Create the workspace (idempotent) and return its absolute path."""
    directory = directory.expanduser().resolve()
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "opencode.json"
    text = json.dumps(workspace_config(), indent=2) + "\n"
    if not config.exists() or config.read_text() != text:
        tmp = config.with_suffix(".json.tmp")
        tmp.write_text(text)
        tmp.replace(config)
    return directory
