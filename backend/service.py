"""OpenCodeBackend: everything the gateway needs from OpenCode, owned in one place.

It starts (embedded) or reaches (attach) the OpenCode server, keeps its client, event stream and
model catalog, hands out sessions, and reports its state for /health. Created in the app's
lifespan, reached by handlers through the request state; no module globals.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from ..config import GatewayConfig
from ..errors import BackendUnavailable, GatewayError
from .catalog import ModelCatalog
from .client import OpenCodeClient
from .events import EventStream
from .process import OpenCodeProcess, find_opencode
from .sessions import SessionPool
from .workspace import prepare_workspace

__all__ = ["OpenCodeBackend"]

log = logging.getLogger("opencode_openai.backend")

#: Sessions created during warm-up, so the first requests skip the create.
WARM_SESSIONS = 2


class OpenCodeBackend:
    def __init__(
        self,
        config: GatewayConfig,
        on_ready: Callable[[OpenCodeBackend], Awaitable[None] | None] | None = None,
    ) -> None:
        self.config = config
        self.state = "starting"
        self.error: str | None = None
        self.catalog = ModelCatalog()
        self.process: OpenCodeProcess | None = None
        self.client: OpenCodeClient
        self.events: EventStream
        self.sessions: SessionPool
        self._on_ready = on_ready
        self._starter: asyncio.Task[None] | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start_in_background(self) -> None:
        self._starter = asyncio.create_task(self._start_logged(), name="opencode-start")

    async def _start_logged(self) -> None:
        try:
            await self.start()
        except Exception as exc:
            self.state = "unavailable"
            self.error = exc.message if isinstance(exc, GatewayError) else str(exc)
            log.error("OpenCode backend failed to start: %s", self.error)

    async def start(self) -> None:
        config = self.config
        workspace = prepare_workspace(config.state_dir / "workspace")
        if config.opencode_url:
            password = config.opencode_password.reveal() if config.opencode_password else None
            self.client = OpenCodeClient(config.opencode_url, password, str(workspace))
        else:
            self.process = OpenCodeProcess(
                binary=find_opencode(config.opencode_bin),
                workspace=workspace,
                user_config=config.opencode_config,
                isolated=config.isolated,
                on_restart=self._after_restart,
            )
            await self.process.start()
            self.client = OpenCodeClient(self.process.url, self.process.password, str(workspace))
        self.events = EventStream(self.client)
        self.sessions = SessionPool(self.client)
        await self._become_ready()

    async def _become_ready(self) -> None:
        deadline = time.monotonic() + self.config.startup_timeout_s
        while True:
            if self.process is not None and self.process.exited():
                raise BackendUnavailable("opencode serve exited during start-up")
            try:
                await self.client.health()
                break
            except GatewayError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)
        self.events.start()
        await self.events.wait_connected(max(1.0, deadline - time.monotonic()))
        # Warm-up: the first calls for a directory load its instance, config and plugin (slow,
        # seconds); the first session is cold too. Do both before saying we are ready.
        await self.refresh_catalog()
        await self.sessions.fill(WARM_SESSIONS)
        self.state = "ready"
        self.error = None
        log.info("OpenCode backend ready: %d models", len(self.catalog.models))
        if self._on_ready is not None:
            result = self._on_ready(self)
            if asyncio.iscoroutine(result):
                await result

    async def _after_restart(self) -> None:
        self.state = "restarting"
        self.sessions.forget()
        try:
            await self._become_ready()
        except Exception as exc:  # noqa: BLE001 - the next death restarts it again
            self.state = "unavailable"
            self.error = str(exc)

    async def stop(self) -> None:
        self.state = "stopped"
        if self._starter is not None:
            self._starter.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._starter
        if hasattr(self, "sessions"):
            await self.sessions.aclose()
        if hasattr(self, "events"):
            await self.events.aclose()
        if hasattr(self, "client"):
            await self.client.aclose()
        if self.process is not None:
            await self.process.stop()

    # -- what handlers use -------------------------------------------------------------------

    def ensure_ready(self) -> None:
        if self.state != "ready":
            detail = f": {self.error}" if self.error else ""
            raise BackendUnavailable(
                f"the OpenCode backend is {self.state}{detail}", headers={"Retry-After": "1"}
            )

    async def refresh_catalog(self) -> None:
        providers, config = await asyncio.gather(self.client.providers(), self.client.config())
        self.catalog = ModelCatalog.from_opencode(providers, config)

    def health(self) -> dict[str, Any]:
        return {
            "mode": self.config.mode,
            "ready": self.state == "ready",
            "state": self.state,
            "models": len(self.catalog.models),
            "restarts": self.process.restarts if self.process else 0,
            "sessions": {"idle": self.sessions.idle, "in_use": self.sessions.in_use}
            if hasattr(self, "sessions")
            else {"idle": 0, "in_use": 0},
        }
