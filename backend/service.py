"""OpenCodeBackend: everything the gateway needs from OpenCode, owned in one place.

It starts (embedded) or reaches (attach) the OpenCode server, keeps the workspace instances
(the main one, and one per client tool set, least recently used first out), the model catalog,
and reports its state for /health. Created in the app's lifespan, reached by handlers through
the request state; no module globals.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from ..config import GatewayConfig
from ..errors import BackendUnavailable, GatewayError
from .catalog import ModelCatalog
from .client import OpenCodeClient
from .instance import WorkspaceInstance
from .limiter import TurnLimiter
from .process import OpenCodeProcess, find_opencode
from .workspace import AGENT, ClientTool, prepare_workspace, toolset_key

__all__ = ["OpenCodeBackend"]

log = logging.getLogger("opencode_openai.backend")

#: Sessions created during warm-up, so the first requests skip the create.
WARM_SESSIONS = 2
#: Tool-set instances kept loaded in OpenCode; the least recently used idle one goes first.
MAX_TOOLSETS = 32


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
        self.main: WorkspaceInstance | None = None
        self._toolsets: OrderedDict[str, WorkspaceInstance] = OrderedDict()
        self._toolset_lock = asyncio.Lock()
        self._base_url = ""
        self._password: str | None = None
        self.limiter = TurnLimiter(config.max_concurrent_turns, config.max_queued_turns)
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
            self._base_url = config.opencode_url
            self._password = config.opencode_password.reveal() if config.opencode_password else None
        else:
            self.process = OpenCodeProcess(
                binary=find_opencode(config.opencode_bin),
                workspace=workspace,
                user_config=config.opencode_config,
                isolated=config.isolated,
                state_dir=config.state_dir,
                on_exit=self._after_exit,
                on_restart=self._after_restart,
            )
            await self.process.start()
            self._base_url, self._password = self.process.url, self.process.password
        self.main = WorkspaceInstance(self._base_url, self._password, workspace)
        await self._become_ready()

    async def _become_ready(self) -> None:
        assert self.main is not None
        deadline = time.monotonic() + self.config.startup_timeout_s
        while True:
            if self.process is not None and self.process.exited():
                raise BackendUnavailable("opencode serve exited during start-up")
            try:
                await self.main.client.health()
                break
            except GatewayError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)
        # Warm-up: the first calls for a directory load its instance, config and plugin (slow,
        # seconds); the first session is cold too. Do both before saying we are ready.
        await self.main.open(
            timeout_s=max(1.0, deadline - time.monotonic()), warm_sessions=WARM_SESSIONS
        )
        await self.refresh_catalog()
        await self._check_agent()
        self.state = "ready"
        self.error = None
        log.info("OpenCode backend ready: %d models", len(self.catalog.models))
        if self._on_ready is not None:
            result = self._on_ready(self)
            if asyncio.iscoroutine(result):
                await result

    async def _check_agent(self) -> None:
        """OpenCode must have loaded the workspace's agent: without it nothing is safe to run."""
        assert self.main is not None
        names = {agent.get("name") for agent in await self.main.client.agents()}
        if AGENT not in names:
            raise BackendUnavailable(
                f"OpenCode did not load the gateway's agent from {self.main.directory}: it must "
                "see the same filesystem as the gateway (see README, attach mode)"
            )

    def _after_exit(self) -> None:
        """OpenCode died: refuse new requests (503, Retry-After) until it is back."""
        self.state = "restarting"
        for instance in self._instances():
            instance.sessions.forget()

    async def _after_restart(self) -> None:
        """A restarted OpenCode has none of our sessions or instances: warm up afresh."""
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
        for instance in self._instances():
            await instance.aclose()
        if self.process is not None:
            await self.process.stop()

    def _instances(self) -> list[WorkspaceInstance]:
        return ([self.main] if self.main else []) + list(self._toolsets.values())

    # -- what handlers use -------------------------------------------------------------------

    def ensure_ready(self) -> None:
        if self.state != "ready":
            detail = f": {self.error}" if self.error else ""
            raise BackendUnavailable(f"the OpenCode backend is {self.state}{detail}")

    async def refresh_catalog(self) -> None:
        assert self.main is not None
        client: OpenCodeClient = self.main.client
        providers, config = await asyncio.gather(client.providers(), client.config())
        self.catalog = ModelCatalog.from_opencode(providers, config)

    async def instance_for(self, tools: tuple[ClientTool, ...]) -> WorkspaceInstance:
        """The main workspace, or the (possibly new) workspace of this client tool set."""
        assert self.main is not None
        if not tools:
            return self.main
        key = toolset_key(tools)
        async with self._toolset_lock:
            instance = self._toolsets.get(key)
            if instance is None:
                directory = prepare_workspace(self.config.state_dir / "toolsets" / key, tools)
                instance = WorkspaceInstance(self._base_url, self._password, directory)
                await instance.open(timeout_s=self.config.startup_timeout_s)
                self._toolsets[key] = instance
                self._evict()
            self._toolsets.move_to_end(key)
        return instance

    def _evict(self) -> None:
        idle = [key for key, instance in self._toolsets.items() if not instance.busy]
        for key in idle[: max(0, len(self._toolsets) - MAX_TOOLSETS)]:
            instance = self._toolsets.pop(key)
            task = asyncio.ensure_future(instance.aclose(dispose=True))
            task.add_done_callback(lambda t: t.exception())

    def health(self) -> dict[str, Any]:
        instances = self._instances()
        return {
            "mode": self.config.mode,
            "ready": self.state == "ready",
            "state": self.state,
            "models": len(self.catalog.models),
            "restarts": self.process.restarts if self.process else 0,
            "sessions": {
                "idle": sum(i.sessions.idle for i in instances),
                "in_use": sum(i.sessions.in_use for i in instances),
            },
            "turns": {"running": self.limiter.active, "queued": self.limiter.waiting},
        }
