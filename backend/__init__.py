"""Everything that talks to OpenCode: process supervision, HTTP client, event stream, turns.

OpenCode's wire format (its HTTP API, events, part objects, the plugin's metadata) stays in
this package; the rest of the gateway speaks `opencode_openai.core`'s plan and events.
"""

from opencode_openai.backend.service import OpenCodeBackend
from opencode_openai.backend.turn import run_turn

__all__ = ["OpenCodeBackend", "run_turn"]
