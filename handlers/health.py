"""GET /health: no auth, no secrets; 503 until the OpenCode backend is ready."""

from __future__ import annotations

from typing import Any

from connexion import request

from opencode_openai.backend import OpenCodeBackend


async def get_health() -> Any:
    backend: OpenCodeBackend = request.state.backend
    info = backend.health()
    status = {"ready": "ok", "starting": "starting", "restarting": "starting"}.get(
        info["state"], "unavailable"
    )
    return {"status": status, "backend": info}, 200 if info["ready"] else 503
