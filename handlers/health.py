"""GET /health: no auth, no secrets; 200 while chat turns are taken, 503 while they are refused.

`status` is what a client can act on: `ok` (send requests), `recycling` (send them: they wait a
second or two for the lone OpenCode process being recycled, they are not refused, so a load
balancer should keep the gateway in rotation), `starting` (starting or restarting after a crash:
retry after a moment), `failed` (OpenCode was given up on after a crash loop: retrying will not
help, an operator must look; `backend.error` and each worker's `log_tail` say why),
`unavailable` (shutting down).
"""

from __future__ import annotations

from typing import Any

from connexion import request

from opencode_openai.backend import OpenCodeBackend

#: The backend's state -> the gateway's status.
STATUS = {
    "ready": "ok",
    "recycling": "recycling",
    "starting": "starting",
    "restarting": "starting",
    "failed": "failed",
}
#: Statuses under which chat requests are taken.
SERVING = frozenset({"ok", "recycling"})


async def get_health() -> Any:
    backend: OpenCodeBackend = request.state.backend
    info = backend.health()
    status = STATUS.get(info["state"], "unavailable")
    return {"status": status, "backend": info}, 200 if status in SERVING else 503
