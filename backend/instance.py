"""WorkspaceInstance: one OpenCode directory instance, with its client, events and sessions.

OpenCode keeps one instance per `?directory=`; its sessions' events appear only on that
directory's `/event` stream. The gateway's main workspace is one instance, and each client tool
set has its own (see workspace.py), so each of them carries its own stream and session pool.
The instances of one OpenCode process share its HTTP connection pool.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import aiohttp

from opencode_openai.backend.client import OpenCodeClient
from opencode_openai.backend.events import EventStream
from opencode_openai.backend.sessions import SessionPool
from opencode_openai.core.errors import GatewayError

__all__ = ["WorkspaceInstance"]


class WorkspaceInstance:
    def __init__(
        self, pool: aiohttp.ClientSession, directory: Path, *, max_idle_sessions: int = 8
    ) -> None:
        self.directory = directory
        self.client = OpenCodeClient(pool, str(directory))
        self.events = EventStream(self.client)
        self.sessions = SessionPool(self.client, max_idle=max_idle_sessions)

    async def open(self, *, timeout_s: float, warm_sessions: int = 0) -> None:
        """Follow the instance's events (its first call also loads it), then pre-create sessions."""
        self.events.start()
        await self.events.wait_connected(timeout_s)
        if warm_sessions:
            await self.sessions.fill(warm_sessions)

    @property
    def busy(self) -> bool:
        return self.sessions.in_use > 0

    async def aclose(self, *, dispose: bool = False) -> None:
        await self.sessions.aclose()
        await self.events.aclose()
        if dispose:
            # Frees the instance's memory in OpenCode; it is reloaded if the tool set returns.
            with contextlib.suppress(GatewayError):
                await self.client.dispose_instance()
