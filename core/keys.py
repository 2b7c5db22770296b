"""API keys: a name, the models a key may use, its limits and expiry; kept only as hashes.

Keys are random 256-bit strings, so one SHA-256 is the right hash: no dictionary can guess
them, and a request pays microseconds, not a password hash's milliseconds. A token is found
by comparing its hash with every key's in constant time, with no early exit, so neither the
time nor the order of keys says how much of a wrong key was right.
"""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

__all__ = ["ANONYMOUS", "ApiKey", "find_key", "hash_key", "new_key", "unlimited_key"]

#: Printed keys start with this, so a leaked one is easy to recognise (and to scan for).
KEY_PREFIX = "sk-oo-"
_HASH = "sha256:"


def new_key() -> str:
    """A fresh key: the prefix and 256 random bits."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    """What a config file stores for `key`: `sha256:` and the hex digest."""
    return _HASH + hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class ApiKey:
    """One accepted key. Every limit left at None is no limit; no models: every model."""

    name: str
    #: `sha256:<hex>` of the key (see `hash_key`); empty for the anonymous key of --no-auth.
    digest: str
    #: Model ids, aliases or glob patterns (`openai/*`) this key may use.
    models: tuple[str, ...] = ()
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    max_concurrent_turns: int | None = None
    #: When the key stops working (timezone-aware); None: never.
    expires: datetime | None = None

    def may_use(self, model: str) -> bool:
        """Whether `model` (an id or alias, as a client names it) is one of this key's."""
        return not self.models or any(fnmatch.fnmatchcase(model, rule) for rule in self.models)

    def expired(self, now: datetime) -> bool:
        return self.expires is not None and now >= self.expires

    @property
    def limited(self) -> bool:
        return any(
            limit is not None
            for limit in (
                self.requests_per_minute,
                self.tokens_per_minute,
                self.max_concurrent_turns,
            )
        )


#: The key every request carries when the gateway runs with --no-auth.
ANONYMOUS = ApiKey(name="anonymous", digest="")


def unlimited_key(name: str, key: str) -> ApiKey:
    """A key from --api-key, OPENAI_PROXY_API_KEY or --api-key-file: every model, no limit."""
    return ApiKey(name=name, digest=hash_key(key))


def find_key(token: str, keys: Iterable[ApiKey]) -> ApiKey | None:
    """The key `token` is, comparing its hash with every key's (constant time, no early exit)."""
    given = hash_key(token).encode()
    found: ApiKey | None = None
    for key in keys:
        if hmac.compare_digest(given, key.digest.encode()) and found is None:
            found = key
    return found
