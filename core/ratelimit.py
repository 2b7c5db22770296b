"""Per-key limits: requests and tokens per minute, and turns running at once.

Windows slide: a limit of N per minute admits at most N in any 60 seconds, measured from each
admitted request (a log of admission times, at most N long, per key), so no burst at a window's
edge gets twice the limit. Tokens are the prompt and completion tokens of finished turns,
charged when a turn ends: a request is admitted while the last 60 seconds' tokens are under the
limit, so one admitted turn may take the key past it, and the next waits.

`InProcessLimits` keeps the counts in this process (one gateway); `store/redis.py`'s
RedisLimits keeps them in Redis, shared by replicas. `Limits` is the interface of both; its
methods are async for Redis. In process they never await, so admitting is atomic on the event
loop: however many requests come at once, no more than the limit get in. Each admitted turn
has a ticket, which its `finish` gives back: in Redis, a turn is counted as running by its
ticket, so a replica that dies mid-turn leaves no slot taken for good.
"""

from __future__ import annotations

import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from opencode_openai.core.errors import KeyLimitReached
from opencode_openai.core.keys import ApiKey

__all__ = ["WINDOW_S", "InProcessLimits", "Limits", "Quota", "Quotas", "quotas_of", "refused"]

WINDOW_S = 60.0


@dataclass(frozen=True)
class Quota:
    """One limit, as a key stands: what is left, and when the window is whole again."""

    limit: int
    remaining: int
    #: Seconds until the window holds nothing of this key (the limit is whole again).
    reset_s: float


@dataclass(frozen=True)
class Quotas:
    """A key's requests and tokens per minute (None: that limit is not set)."""

    requests: Quota | None = None
    tokens: Quota | None = None


def quotas_of(
    key: ApiKey,
    now: float,
    *,
    admitted: int,
    last_admitted: float | None,
    tokens: int,
    last_charged: float | None,
) -> Quotas:
    """Where `key` stands, from its window's counts: the turns admitted and the tokens charged
    in the last minute, and when the last of each was."""
    requests = charged = None
    if key.requests_per_minute is not None:
        requests = Quota(
            key.requests_per_minute,
            max(0, key.requests_per_minute - admitted),
            last_admitted + WINDOW_S - now if last_admitted is not None else 0.0,
        )
    if key.tokens_per_minute is not None:
        charged = Quota(
            key.tokens_per_minute,
            max(0, key.tokens_per_minute - tokens),
            last_charged + WINDOW_S - now if last_charged is not None else 0.0,
        )
    return Quotas(requests, charged)


def refused(key: ApiKey, what: str, retry_after_s: float) -> KeyLimitReached:
    """The 429 for a turn of `key` that `what` (a limit, in words) does not admit."""
    return KeyLimitReached(
        f"Rate limit reached for key {key.name!r}: at most {what}. "
        f"Try again in {max(1.0, retry_after_s):.0f}s.",
        retry_after_s=retry_after_s,
    )


class Limits(Protocol):
    async def admit(self, key: ApiKey) -> str:
        """Admit one turn of `key` (its ticket), or raise KeyLimitReached."""
        ...

    async def standing(self, key: ApiKey) -> Quotas:
        """Where `key` stands now, for its rate-limit headers."""
        ...

    async def finish(self, key: ApiKey, ticket: str, tokens: int) -> None:
        """The turn admitted with `ticket` ended, having used `tokens` (prompt and
        completion)."""
        ...


class InProcessLimits:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._admitted: defaultdict[str, deque[float]] = defaultdict(deque)
        self._charged: defaultdict[str, deque[tuple[float, int]]] = defaultdict(deque)
        self._tokens: defaultdict[str, int] = defaultdict(int)  # the sum of `_charged`
        self._running: defaultdict[str, int] = defaultdict(int)

    def _slide(self, name: str, now: float) -> None:
        """Drop what left the window."""
        admitted, charged = self._admitted[name], self._charged[name]
        while admitted and admitted[0] <= now - WINDOW_S:
            admitted.popleft()
        while charged and charged[0][0] <= now - WINDOW_S:
            self._tokens[name] -= charged.popleft()[1]

    def _tokens_fit_after(self, key: ApiKey, limit: int, now: float) -> float:
        """Seconds until the window's tokens are under `limit` again."""
        total = self._tokens[key.name]
        for at, tokens in self._charged[key.name]:
            total -= tokens
            if total < limit:
                return at + WINDOW_S - now
        return 0.0

    async def standing(self, key: ApiKey) -> Quotas:
        now = self._clock()
        name = key.name
        self._slide(name, now)
        admitted, charged = self._admitted[name], self._charged[name]
        return quotas_of(
            key,
            now,
            admitted=len(admitted),
            last_admitted=admitted[-1] if admitted else None,
            tokens=self._tokens[name],
            last_charged=charged[-1][0] if charged else None,
        )

    async def admit(self, key: ApiKey) -> str:
        if not key.limited:
            return ""
        now = self._clock()
        name = key.name
        self._slide(name, now)
        cap, rpm, tpm = key.max_concurrent_turns, key.requests_per_minute, key.tokens_per_minute
        refusal: tuple[str, float] | None = None
        if cap is not None and self._running[name] >= cap:
            refusal = (f"{cap} concurrent turns", 1.0)
        elif rpm is not None and len(self._admitted[name]) >= rpm:
            refusal = (f"{rpm} requests per minute", self._admitted[name][0] + WINDOW_S - now)
        elif tpm is not None and self._tokens[name] >= tpm:
            refusal = (f"{tpm} tokens per minute", self._tokens_fit_after(key, tpm, now))
        if refusal is not None:
            raise refused(key, *refusal)
        if rpm is not None:
            self._admitted[name].append(now)
        self._running[name] += 1
        return ""  # the count is this process's: no turn needs telling apart

    async def finish(self, key: ApiKey, ticket: str, tokens: int) -> None:
        if not key.limited:
            return
        self._running[key.name] -= 1
        if key.tokens_per_minute is not None and tokens > 0:
            self._charged[key.name].append((self._clock(), tokens))
            self._tokens[key.name] += tokens
