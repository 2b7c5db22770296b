"""The names the gateway and its OpenCode plugin must agree on, from one file.

`plugin/contract.json` (shipped beside the plugin as package data) defines them; the plugin reads
it at load (`plugin/opencode-openai.js`) and this module reads it at import. Define these names
nowhere else: a copy that drifts makes the plugin silently ignore the gateway's requests.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Final

__all__ = [
    "AGENT",
    "AGENT_READY_DESCRIPTION",
    "CONTRACT_PATH",
    "METADATA_KEY",
    "PLUGIN_PATH",
    "STRUCTURED_OUTPUT",
    "TOOLS_FILE",
]

_PLUGIN_DIR = Path(str(resources.files("opencode_openai.backend").joinpath("plugin")))
#: The plugin OpenCode loads for the gateway's workspaces (config `plugin: [file URL]`).
PLUGIN_PATH: Final = _PLUGIN_DIR / "opencode-openai.js"
CONTRACT_PATH: Final = _PLUGIN_DIR / "contract.json"


def _load(path: Path) -> dict[str, str]:
    data = json.loads(path.read_text(encoding="utf-8"))
    names = {key: value for key, value in data.items() if not key.startswith("$")}
    for key, value in names.items():
        if not isinstance(value, str) or not value:
            raise ValueError(f"{path}: {key!r} must be a non-empty string")
    return names


_NAMES = _load(CONTRACT_PATH)

#: The gateway's pass-through agent, defined in each workspace's opencode.json.
AGENT: Final[str] = _NAMES["agent"]
#: The agent's description once the plugin runs in an instance (its `config` hook sets it; GET
#: /agent shows it). Any other description: the plugin is not loaded there, or it says why it is
#: broken. OpenCode runs an instance without a plugin that failed to load, guard and all.
AGENT_READY_DESCRIPTION: Final[str] = _NAMES["agentReadyDescription"]
#: The prompt part's `metadata` key under which the plugin finds the request.
METADATA_KEY: Final[str] = _NAMES["metadataKey"]
#: The client tool definitions in a tool-set workspace, read by the plugin at instance start.
TOOLS_FILE: Final[str] = _NAMES["toolsFile"]
#: OpenCode's internal tool for `format` (response_format); it runs no host code.
STRUCTURED_OUTPUT: Final[str] = _NAMES["structuredOutputTool"]
