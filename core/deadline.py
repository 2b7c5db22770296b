"""Deadline: the time by which a request must be answered, from its arrival to its last byte.

OPENAI_PROXY_TIMEOUT (`--timeout`) bounds the whole request: every wait on the way (a worker,
a slot, a tool-set instance, a session, the prompt, each event) takes from the same budget.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TypeVar

from opencode_openai.core.errors import BackendTimeout

__all__ = ["Deadline"]

T = TypeVar("T")


@dataclass(frozen=True)
class Deadline:
    #: The event loop's clock (`loop.time()`) when the request is due.
    at: float
    #: The configured timeout, named in the error a client gets.
    timeout_s: float

    @classmethod
    def after(cls, timeout_s: float, *, start: float | None = None) -> Deadline:
        """`timeout_s` from `start` (the request's arrival, in loop time), or from now."""
        begun = asyncio.get_running_loop().time() if start is None else start
        return cls(begun + timeout_s, timeout_s)

    def remaining(self) -> float:
        return self.at - asyncio.get_running_loop().time()

    def exceeded(self, doing: str) -> BackendTimeout:
        return BackendTimeout(
            f"the request did not finish within OPENAI_PROXY_TIMEOUT ({self.timeout_s:g} s): "
            f"{doing} took too long"
        )

    async def bound(self, work: Awaitable[T], doing: str) -> T:
        """Await `work`, cancelled once the deadline passes (BackendTimeout naming `doing`)."""
        try:
            async with asyncio.timeout_at(self.at):
                return await work
        except TimeoutError as exc:
            if self.remaining() > 0:
                raise  # the work's own timeout, not ours
            raise self.exceeded(doing) from exc
