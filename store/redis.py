"""The shared store in Redis: stored responses and the keys' limits, for several replicas.

With `--store redis://…` every replica of the gateway keeps its stored responses and counts its
keys' limits in one Redis, so a `previous_response_id` chain continues on any replica and a
key's limits hold across all of them. Each operation is one Lua script, so it is atomic in
Redis however many replicas run it at once, and costs one round trip.

Keys (under the prefix, `opencode-openai` unless `--store-prefix` says otherwise):

- `P:resp:ID`, a hash: the response's JSON (`body`), `owner`, `created_at`; it expires
  (Redis's own TTL) when the response's age passes `max_age_s`.
- `P:resp-age`, a sorted set of response ids by creation time, `P:resp-size`, each one's size,
  and `P:resp-bytes`, the size of them all: past `max_bytes`, the oldest go, as in SQLite.
- `P:limits:NAME:admitted` (admission times), `:charged` (tokens of finished turns) and
  `:running` (turns running, each by its ticket): sorted sets by time. A turn whose replica
  died without finishing it stops counting as running once `turn_lease_s` has passed.

Times come from the gateway's clock (the wall clock: replicas on several machines agree on it
as NTP does), passed to each script, so the same tests run with a fake clock on both stores.
A Redis that cannot be reached is StoreUnavailable (503): a stored response cannot be read and
a limited key cannot be admitted, rather than admitted past its limits.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import RedisError

from opencode_openai.core.errors import StoreUnavailable
from opencode_openai.core.keys import ApiKey
from opencode_openai.core.ratelimit import WINDOW_S, Quotas, quotas_of, refused
from opencode_openai.store.base import StoredResponse, body_within, from_body

__all__ = ["DEFAULT_PREFIX", "RedisLimits", "RedisResponseStore", "connect"]


T = TypeVar("T")

DEFAULT_PREFIX = "opencode-openai"


def connect(url: str) -> aioredis.Redis:
    """A client for `url` (redis://, rediss:// or unix://); it connects at its first command.

    A lost connection is retried twice, quickly (a Redis restarting, a failover), then the
    request fails with 503: a request never waits long on a Redis that is gone.
    """
    return aioredis.Redis.from_url(
        url,
        decode_responses=True,
        socket_timeout=2.0,
        socket_connect_timeout=2.0,
        retry=Retry(ExponentialBackoff(cap=0.25, base=0.05), retries=2),
    )


async def _call(work: Awaitable[T]) -> T:
    try:
        return await work
    except (RedisError, OSError) as exc:
        # The message names the failure, never the URL (it may hold a password).
        raise StoreUnavailable(
            f"The shared store (Redis) is unavailable: {type(exc).__name__}. Try again."
        ) from exc


# -- stored responses ------------------------------------------------------------------------

# Drops what expired from the age index, then the oldest until `room` bytes fit. The sizes are
# kept apart from the responses (which Redis may already have expired) so the total stays right.
# KEYS: age, bytes, (the response), sizes. ARGV: prefix, cutoff, room, max_bytes.
_MAKE_ROOM = """
local function forget(id)
  local size = tonumber(redis.call('HGET', KEYS[4], id) or '0') or 0
  redis.call('DEL', ARGV[1] .. ':resp:' .. id)
  redis.call('ZREM', KEYS[1], id)
  redis.call('HDEL', KEYS[4], id)
  redis.call('DECRBY', KEYS[2], size)
end
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[2])) do
  forget(id)
end
local room, max = tonumber(ARGV[3]), tonumber(ARGV[4])
while tonumber(redis.call('GET', KEYS[2]) or '0') + room > max do
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0)
  if #oldest == 0 then break end
  forget(oldest[1])
end
"""

# KEYS: age, bytes, the response, sizes. ARGV: prefix, cutoff, size, max_bytes, id, body,
# owner, created_at, ttl_ms.
_PUT = (
    """
local previous = redis.call('HGET', KEYS[4], ARGV[5])
if previous then
  redis.call('DECRBY', KEYS[2], previous)
  redis.call('DEL', KEYS[3])
  redis.call('ZREM', KEYS[1], ARGV[5])
  redis.call('HDEL', KEYS[4], ARGV[5])
end
"""
    + _MAKE_ROOM
    + """
redis.call('HSET', KEYS[3], 'body', ARGV[6], 'owner', ARGV[7], 'created_at', ARGV[8])
redis.call('PEXPIRE', KEYS[3], ARGV[9])
redis.call('ZADD', KEYS[1], ARGV[8], ARGV[5])
redis.call('HSET', KEYS[4], ARGV[5], ARGV[3])
redis.call('INCRBY', KEYS[2], ARGV[3])
"""
)

# KEYS: age, bytes, the response, sizes. ARGV: id, owner, cutoff. 1 when a live one was
# deleted.
_DELETE = """
local found = redis.call('HMGET', KEYS[3], 'owner', 'created_at')
if not found[1] or (found[1] ~= ARGV[2] and found[1] ~= '') then return 0 end
redis.call('DEL', KEYS[3])
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('DECRBY', KEYS[2], redis.call('HGET', KEYS[4], ARGV[1]) or 0)
redis.call('HDEL', KEYS[4], ARGV[1])
if tonumber(found[2]) < tonumber(ARGV[3]) then return 0 end
return 1
"""


class RedisResponseStore:
    """Stored responses in Redis, bounded by age and size like SQLiteResponseStore."""

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        max_age_s: float,
        max_bytes: int,
        prefix: str = DEFAULT_PREFIX,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.max_age_s = max_age_s
        self.max_bytes = max_bytes
        self._client = client
        self._prefix = prefix
        self._clock = clock
        self._age = f"{prefix}:resp-age"
        self._bytes = f"{prefix}:resp-bytes"
        self._sizes = f"{prefix}:resp-size"
        self._put = client.register_script(_PUT)
        self._delete = client.register_script(_DELETE)

    def _key(self, response_id: str) -> str:
        return f"{self._prefix}:resp:{response_id}"

    async def put(self, stored: StoredResponse) -> None:
        kept = body_within(stored, self.max_bytes)
        if kept is None:
            return
        body, size = kept
        now = self._clock()
        ttl_ms = int((stored.created_at + self.max_age_s - now) * 1000)
        if ttl_ms <= 0:
            return  # already past its age: nothing to keep
        args: list[str | float] = [
            self._prefix,
            repr(now - self.max_age_s),
            size,
            self.max_bytes,
            stored.id,
            body,
            stored.owner,
            repr(stored.created_at),
            ttl_ms,
        ]
        keys = [self._age, self._bytes, self._key(stored.id), self._sizes]
        await _call(self._put(keys=keys, args=args))

    async def get(self, response_id: str, owner: str) -> StoredResponse | None:
        found = await _call(
            self._client.hmget(self._key(response_id), ["body", "owner", "created_at"])
        )
        # decode_responses=True: str, never bytes.
        body, stored_owner, created = (None if v is None else str(v) for v in found)
        if body is None or stored_owner is None or created is None:
            return None
        if stored_owner not in (owner, ""):
            return None
        created_at = float(created)
        if created_at < self._clock() - self.max_age_s:
            return None
        return from_body(response_id, created_at, body, stored_owner)

    async def delete(self, response_id: str, owner: str) -> bool:
        cutoff = repr(self._clock() - self.max_age_s)
        keys = [self._age, self._bytes, self._key(response_id), self._sizes]
        deleted = await _call(self._delete(keys=keys, args=[response_id, owner, cutoff]))
        return bool(deleted)

    async def close(self) -> None:
        await self._client.aclose()


# -- limits ------------------------------------------------------------------------------------

# Slides every window of one key to `now`, then admits one turn or says why not.
# KEYS: admitted, charged, running. ARGV: now, window, lease, cap, rpm, tpm, ticket (a limit
# of -1 is not set). Returns {1} or {0, what, retry_after_s}.
_SLIDE = """
local now, window = tonumber(ARGV[1]), tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - window)
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - tonumber(ARGV[3]))
local charged = redis.call('ZRANGE', KEYS[2], 0, -1, 'WITHSCORES')
local tokens = 0
for i = 1, #charged, 2 do
  tokens = tokens + tonumber(string.match(charged[i], ':(%d+)$'))
end
"""

_ADMIT = (
    _SLIDE
    + """
local cap, rpm, tpm = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
if cap >= 0 and redis.call('ZCARD', KEYS[3]) >= cap then
  return {0, cap .. ' concurrent turns', '1'}
end
if rpm >= 0 and redis.call('ZCARD', KEYS[1]) >= rpm then
  local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return {0, rpm .. ' requests per minute', tostring(tonumber(first[2]) + window - now)}
end
if tpm >= 0 and tokens >= tpm then
  local total = tokens
  for i = 1, #charged, 2 do
    total = total - tonumber(string.match(charged[i], ':(%d+)$'))
    if total < tpm then
      return {0, tpm .. ' tokens per minute', tostring(tonumber(charged[i + 1]) + window - now)}
    end
  end
  return {0, tpm .. ' tokens per minute', '0'}
end
if rpm >= 0 then
  redis.call('ZADD', KEYS[1], now, ARGV[7])
  redis.call('PEXPIRE', KEYS[1], math.ceil(window * 1000))
end
redis.call('ZADD', KEYS[3], now, ARGV[7])
redis.call('PEXPIRE', KEYS[3], math.ceil(tonumber(ARGV[3]) * 1000))
return {1}
"""
)

# KEYS: admitted, charged, running. ARGV: now, window, lease. Returns the number admitted in the
# window, the time of the last one, the tokens, the time of the last charge.
_STANDING = (
    _SLIDE
    + """
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
local last_charge = #charged > 0 and charged[#charged] or ''
return {redis.call('ZCARD', KEYS[1]), last[2] or '', tostring(tokens), last_charge}
"""
)

# KEYS: charged, running. ARGV: now, window, ticket, tokens (0: none to charge).
_FINISH = """
redis.call('ZREM', KEYS[2], ARGV[3])
if tonumber(ARGV[4]) > 0 then
  redis.call('ZADD', KEYS[1], ARGV[1], ARGV[3] .. ':' .. ARGV[4])
  redis.call('PEXPIRE', KEYS[1], math.ceil(tonumber(ARGV[2]) * 1000))
end
"""


def _limit(value: int | None) -> int:
    return -1 if value is None else value


class RedisLimits:
    """The keys' limits counted in Redis, shared by every replica (see core/ratelimit.py for
    what each limit means; the windows are the same)."""

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        turn_lease_s: float,
        prefix: str = DEFAULT_PREFIX,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._prefix = prefix
        self._lease = turn_lease_s
        self._clock = clock
        self._admit = client.register_script(_ADMIT)
        self._standing = client.register_script(_STANDING)
        self._finish = client.register_script(_FINISH)

    def _keys(self, key: ApiKey) -> list[str]:
        base = f"{self._prefix}:limits:{key.name}"
        return [f"{base}:admitted", f"{base}:charged", f"{base}:running"]

    async def admit(self, key: ApiKey) -> str:
        ticket = uuid.uuid4().hex
        if not key.limited:
            return ticket
        args: list[str | float] = [
            repr(self._clock()),
            WINDOW_S,
            self._lease,
            _limit(key.max_concurrent_turns),
            _limit(key.requests_per_minute),
            _limit(key.tokens_per_minute),
            ticket,
        ]
        answer = await _call(self._admit(keys=self._keys(key), args=args))
        if int(answer[0]) != 1:
            raise refused(key, str(answer[1]), float(answer[2]))
        return ticket

    async def standing(self, key: ApiKey) -> Quotas:
        now = self._clock()
        answer = await _call(
            self._standing(keys=self._keys(key), args=[repr(now), WINDOW_S, self._lease])
        )
        admitted, last, tokens, last_charge = answer
        return quotas_of(
            key,
            now,
            admitted=int(admitted),
            last_admitted=float(last) if last else None,
            tokens=int(tokens),
            last_charged=float(last_charge) if last_charge else None,
        )

    async def finish(self, key: ApiKey, ticket: str, tokens: int) -> None:
        if not key.limited:
            return
        charge = tokens if key.tokens_per_minute is not None else 0
        await _call(
            self._finish(
                keys=self._keys(key)[1:], args=[repr(self._clock()), WINDOW_S, ticket, charge]
            )
        )
