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
import re
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any

from opencode_openai.core.config_file import BadValue

__all__ = [
    "ANONYMOUS",
    "ApiKey",
    "check_key_name",
    "find_key",
    "hash_key",
    "keys_from_file",
    "new_key",
    "unlimited_key",
]

#: Printed keys start with this, so a leaked one is easy to recognise (and to scan for).
KEY_PREFIX = "sk-oo-"
_HASH = "sha256:"
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
#: The names of --api-key keys (`unlimited_key`): no named key may take one.
_FLAG_KEY_NAME = re.compile(r"^api-key-[0-9]+$")


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


def check_key_name(name: str) -> str | None:
    """A complaint about a key's name, or None: names go into metrics and logs as they are."""
    if not _NAME.match(name):
        return "expected a name of letters, digits, '.', '_' or '-' (at most 64)"
    if _FLAG_KEY_NAME.match(name):
        return "api-key-N names the keys of --api-key: pick another name"
    return None


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise BadValue("expected a string")
    return value


def _name(value: Any) -> str:
    complaint = check_key_name(_text(value))
    if complaint:
        raise BadValue(complaint)
    return str(value)


def _digest(value: Any) -> str:
    if not _DIGEST.match(_text(value)):
        raise BadValue(
            "expected sha256:<64 hex digits>, a key's hash (`opencode-openai keys new NAME` "
            "prints one); a key in clear is refused"
        )
    return str(value)


def _models(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(m, str) and m for m in value):
        raise BadValue('expected a list of model ids, aliases or patterns ("openai/*")')
    return tuple(value)


def _limit(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BadValue("expected a whole number, at least 1")
    return value


def _expires(value: Any) -> datetime:
    """A date (the key works until that day begins, UTC) or a date-time with its offset."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise BadValue("expected a date-time with its offset (2027-01-31T00:00:00Z)")
        return value
    if isinstance(value, date):
        return datetime.combine(value, time(), UTC)
    raise BadValue("expected a date (2027-01-31) or a date-time with its offset")


#: A `[[keys]]` table's fields and their readers; `name` and `key` are required.
_FIELDS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "name": ("name", _name),
    "key": ("digest", _digest),
    "models": ("models", _models),
    "requests-per-minute": ("requests_per_minute", _limit),
    "tokens-per-minute": ("tokens_per_minute", _limit),
    "max-concurrent-turns": ("max_concurrent_turns", _limit),
    "expires": ("expires", _expires),
}


def _key(entry: Any) -> ApiKey:
    if not isinstance(entry, dict):
        raise BadValue("expected a table: [[keys]] with name and key")
    fields: dict[str, Any] = {}
    for field_name, value in entry.items():
        if field_name not in _FIELDS:
            raise BadValue(f"unknown field; expected one of {', '.join(_FIELDS)}", (field_name,))
        attribute, read = _FIELDS[field_name]
        try:
            fields[attribute] = read(value)
        except BadValue as exc:
            raise BadValue(str(exc), (field_name,)) from None
    for required in ("name", "key"):
        if _FIELDS[required][0] not in fields:
            raise BadValue(f"a key needs a {required}")
    return ApiKey(**fields)


def keys_from_file(value: Any) -> tuple[ApiKey, ...]:
    """The config file's `[[keys]]` tables: each a name, a hash, and optional rules."""
    if not isinstance(value, list):
        raise BadValue("expected [[keys]] tables")
    keys: list[ApiKey] = []
    for index, entry in enumerate(value):
        try:
            key = _key(entry)
        except BadValue as exc:
            raise BadValue(str(exc), (index, *exc.where)) from None
        if any(key.name == other.name for other in keys):
            raise BadValue(f"a second key named {key.name!r}", (index, "name"))
        if any(key.digest == other.digest for other in keys):
            raise BadValue(
                "the same key as an earlier one (its hash is listed twice)", (index, "key")
            )
        keys.append(key)
    return tuple(keys)
