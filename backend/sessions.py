"""SessionPool: warm OpenCode sessions, each driven by one request at a time.

The plugin rebuilds every request's conversation from the prompt itself, so a session carries
no meaning between requests and can be reused by any of them. Reuse saves the session create on
the hot path; sessions that ended a turn badly (aborted, failed) are deleted rather than reused,
and each is retired after `max_uses` turns, because OpenCode reloads a session's stored messages
on every prompt. At most `max_idle` sessions wait in the pool; the rest are deleted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from opencode_openai.backend._tasks import BackgroundTasks
from opencode_openai.backend.client import OpenCodeClient
from opencode_openai.core.errors import GatewayError

__all__ = ["SessionPool"]

log = logging.getLogger("opencode_openai.sessions")

SESSION_TITLE = "opencode-openai"


class SessionPool:
    def __init__(self, client: OpenCodeClient, *, max_idle: int = 8, max_uses: int = 16) -> None:
        self._client = client
        self.max_idle = max_idle
        self.max_uses = max_uses
        self._idle: list[str] = []
        self._uses: dict[str, int] = {}
        self._background = BackgroundTasks()

    @property
    def idle(self) -> int:
        return len(self._idle)

    @property
    def in_use(self) -> int:
        return len(self._uses) - len(self._idle)

    async def fill(self, count: int) -> None:
        """Pre-create sessions (warm-up): the first requests then skip the create."""
        created = await asyncio.gather(
            *(self._client.create_session(SESSION_TITLE) for _ in range(count))
        )
        for session_id in created:
            self._uses[session_id] = 0
            self._idle.append(session_id)

    async def acquire(self) -> str:
        if self._idle:
            return self._idle.pop()
        # A title keeps OpenCode from making a hidden title-generation model call.
        session_id = await self._client.create_session(SESSION_TITLE)
        self._uses[session_id] = 0
        return session_id

    def release(self, session_id: str, *, clean: bool) -> None:
        """Give a session back; after a turn that did not end cleanly it is aborted and dropped."""
        uses = self._uses.get(session_id, 0) + 1
        if clean and uses < self.max_uses and len(self._idle) < self.max_idle:
            self._uses[session_id] = uses
            self._idle.append(session_id)
            return
        self._uses.pop(session_id, None)
        self._background.spawn(self._dispose(session_id, abort=not clean))

    async def _dispose(self, session_id: str, *, abort: bool) -> None:
        with contextlib.suppress(GatewayError):
            if abort:
                await self._client.abort(session_id)
            await self._client.delete_session(session_id)

    async def aclose(self) -> None:
        """Delete every session the pool knows (and wait for pending clean-ups)."""
        idle, self._idle = self._idle, []
        for session_id in idle:
            self._uses.pop(session_id, None)
            self._background.spawn(self._dispose(session_id, abort=False))
        await self._background.wait(2.0)

    def forget(self) -> None:
        """After an OpenCode restart its sessions are gone: drop them without a call."""
        self._idle.clear()
        self._uses.clear()
