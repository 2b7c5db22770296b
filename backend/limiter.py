"""TurnLimiter: backpressure in front of one OpenCode process.

At most `limit` turns run at once; up to `queue` more wait for a slot; beyond that a request is
refused at once with 429 and Retry-After, instead of piling onto an OpenCode that already works
at capacity (one process served ~25-30 prompts/s in our measurements).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from opencode_openai.core.errors import RateLimited

__all__ = ["TurnLimiter"]


class TurnLimiter:
    def __init__(self, limit: int, queue: int) -> None:
        self.limit = limit
        self.queue = queue
        self.active = 0
        self.waiting = 0
        self._slots = asyncio.Semaphore(limit)

    def _busy(self) -> RateLimited:
        return RateLimited(
            f"the gateway is at capacity ({self.limit} running, {self.queue} queued); "
            "retry shortly",
            headers={"Retry-After": "1"},
        )

    @contextlib.asynccontextmanager
    async def slot(self, max_wait_s: float) -> AsyncIterator[None]:
        """Run now, or wait up to `max_wait_s` for a slot; a request that never ran gets 429."""
        if self.active >= self.limit and self.waiting >= self.queue:
            raise self._busy()
        self.waiting += 1
        try:
            async with asyncio.timeout(max_wait_s):  # no task per request, unlike wait_for
                await self._slots.acquire()
        except TimeoutError as exc:
            raise self._busy() from exc
        finally:
            self.waiting -= 1
        self.active += 1
        try:
            yield
        finally:
            self.active -= 1
            self._slots.release()
