"""OpenCodeWorker: one OpenCode server (started, or attached to) and what the gateway keeps of it.

Its workspace instances (the main one, and one per client tool set, least recently used first
out), its model catalog, its backpressure limiter and its state. A worker that has served
`recycle_after_turns` turns, or whose process grew past `recycle_rss_mb`, is drained (no new
turns) and restarted once its running turns are done: OpenCode does not give memory back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

import aiohttp

from opencode_openai.backend._tasks import BackgroundTasks
from opencode_openai.backend.catalog import catalog_from_opencode
from opencode_openai.backend.client import connection_pool
from opencode_openai.backend.instance import WorkspaceInstance
from opencode_openai.backend.limiter import TurnLimiter
from opencode_openai.backend.process import OpenCodeProcess, find_opencode
from opencode_openai.backend.plugin_contract import AGENT
from opencode_openai.backend.workspace import prepare_workspace, toolset_key
from opencode_openai.core.errors import BackendUnavailable, GatewayError
from opencode_openai.core.models import ModelCatalog
from opencode_openai.core.plan import ClientTool
from opencode_openai.core.settings import GatewayConfig

__all__ = ["OpenCodeWorker"]

log = logging.getLogger("opencode_openai.backend")

#: Sessions created during warm-up, so the first requests skip the create.
WARM_SESSIONS = 2
#: Tool-set instances kept loaded in OpenCode; the least recently used idle one goes first.
MAX_TOOLSETS = 32


def _rss_mb(pid: int | None) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        pass
    return 0.0


class OpenCodeWorker:
    def __init__(self, config: GatewayConfig, index: int) -> None:
        self.config = config
        self.index = index
        self.state = "starting"
        self.error: str | None = None
        self.catalog = ModelCatalog()
        self.process: OpenCodeProcess | None = None
        self.main: WorkspaceInstance | None = None
        self.limiter = TurnLimiter(config.max_concurrent_turns, config.max_queued_turns)
        self.turns_served = 0
        self.recycles = 0
        self.draining = False
        self._background = BackgroundTasks()
        self._toolsets: OrderedDict[str, WorkspaceInstance] = OrderedDict()
        self._toolset_lock = asyncio.Lock()
        #: One HTTP connection pool to the process, shared by its instances (and kept across
        #: restarts: the process keeps its port and password).
        self._pool: aiohttp.ClientSession | None = None
        self._workspace = config.state_dir / "workspace"

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        config = self.config
        workspace = self._workspace = prepare_workspace(self._workspace)
        if config.opencode_url:
            password = config.opencode_password.reveal() if config.opencode_password else None
            self._pool = connection_pool(config.opencode_url, password)
        else:
            self.process = OpenCodeProcess(
                binary=find_opencode(config.opencode_bin),
                workspace=workspace,
                user_config=config.opencode_config,
                isolated=config.isolated,
                state_dir=config.state_dir,
                name="opencode" if self.index == 0 else f"opencode-{self.index}",
                on_exit=self._after_exit,
                on_restart=self._after_restart,
            )
            await self.process.start()
            self._pool = connection_pool(self.process.url, self.process.password)
        self.main = self._main_instance()
        await self._become_ready()

    def _main_instance(self) -> WorkspaceInstance:
        # As many idle sessions as turns may run at once: under load, a session released by
        # one turn is taken by the next instead of being deleted and created again.
        assert self._pool is not None
        return WorkspaceInstance(
            self._pool,
            self._workspace,
            max_idle_sessions=self.config.max_concurrent_turns,
        )

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
        providers, opencode_config = await asyncio.gather(
            self.main.client.providers(), self.main.client.config()
        )
        self.catalog = catalog_from_opencode(providers, opencode_config, self.config.model_aliases)
        await self._check_agent()
        self.state = "ready"
        self.error = None
        log.info("OpenCode worker %d ready: %d models", self.index, len(self.catalog.models))

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
        """OpenCode died: no new turns here until it is back (other workers take them)."""
        self.state = "restarting"
        for instance in self._instances():
            instance.sessions.forget()

    async def _after_restart(self) -> None:
        """A restarted OpenCode has none of our sessions or instances: warm up afresh.

        A failed warm-up is tried again (backing off) while the process lives; if it dies, the
        supervisor restarts it and calls this again.
        """
        delay = 1.0
        pid = self.process.pid if self.process is not None else None
        while self.state != "stopped":
            try:
                await self._become_ready()
                return
            except Exception as exc:
                self.state = "unavailable"
                self.error = str(exc)
                log.warning(
                    "OpenCode worker %d did not warm up after a restart (%s)", self.index, exc
                )
            if self.process is not None and (self.process.exited() or self.process.pid != pid):
                return  # died again: its next restart warms up on its own
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)

    async def stop(self) -> None:
        self.state = "stopped"
        for instance in self._instances():
            await instance.aclose()
        if self.process is not None:
            await self.process.stop()
        if self._pool is not None:
            await self._pool.close()

    def _instances(self) -> list[WorkspaceInstance]:
        return ([self.main] if self.main else []) + list(self._toolsets.values())

    # -- turns -------------------------------------------------------------------------------

    @property
    def accepting(self) -> bool:
        return self.state == "ready" and not self.draining

    @property
    def load(self) -> int:
        return self.limiter.active + self.limiter.waiting

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
                assert self._pool is not None
                instance = WorkspaceInstance(self._pool, directory)
                await instance.open(timeout_s=self.config.startup_timeout_s)
                self._toolsets[key] = instance
                self._evict()
            self._toolsets.move_to_end(key)
        return instance

    def _evict(self) -> None:
        idle = [key for key, instance in self._toolsets.items() if not instance.busy]
        for key in idle[: max(0, len(self._toolsets) - MAX_TOOLSETS)]:
            instance = self._toolsets.pop(key)
            self._background.spawn(instance.aclose(dispose=True))

    def turn_done(self, others_accepting: bool) -> None:
        """Count a finished turn; start draining when the process is due for recycling.

        With other workers, one drains only while the others take new turns (never all at
        once); a lone worker drains anyway and new turns wait for it.
        """
        self.turns_served += 1
        if self.process is None or self.draining or not others_accepting:
            return
        config = self.config
        due = bool(config.recycle_after_turns and self.turns_served >= config.recycle_after_turns)
        if not due and config.recycle_rss_mb and self.turns_served % 50 == 0:
            due = _rss_mb(self.process.pid) > config.recycle_rss_mb
        if due:
            self.draining = True
            self._background.spawn(self._recycle())

    async def _recycle(self) -> None:
        """Let running turns finish, then restart the process; no request is lost."""
        assert self.process is not None
        log.info("recycling OpenCode worker %d after %d turns", self.index, self.turns_served)
        while self.load:
            await asyncio.sleep(0.05)
        self.state = "recycling"
        for instance in list(self._toolsets.values()):
            await instance.aclose()
        self._toolsets.clear()
        if self.main is not None:
            await self.main.aclose()
        await self.process.restart()
        self.main = self._main_instance()
        await self._become_ready()
        self.turns_served = 0
        self.recycles += 1
        self.draining = False

    def health(self) -> dict[str, Any]:
        instances = self._instances()
        return {
            "index": self.index,
            "state": self.state,
            "draining": self.draining,
            "pid": self.process.pid if self.process else None,
            "rss_mb": round(_rss_mb(self.process.pid), 1) if self.process else None,
            "restarts": self.process.restarts if self.process else 0,
            "recycles": self.recycles,
            "turns_served": self.turns_served,
            "sessions": {
                "idle": sum(i.sessions.idle for i in instances),
                "in_use": sum(i.sessions.in_use for i in instances),
            },
            "turns": {"running": self.limiter.active, "queued": self.limiter.waiting},
        }
