"""Stored responses and the keys' limits: what `store: true` keeps, and how much each key used.

`ResponseStore` is the interface the handlers use for responses, `Limits` (core/ratelimit.py)
the one for limits. `--store sqlite` (the default) keeps responses in an SQLite database in
the state directory (`SQLiteResponseStore`) and the limits in this process; `--store
redis://…` keeps both in a Redis that replicas share (store/redis.py). `open_stores` builds the
pair a GatewayConfig names.
"""

from opencode_openai.core.ratelimit import InProcessLimits, Limits
from opencode_openai.core.settings import GatewayConfig
from opencode_openai.store.base import ResponseStore, StoredResponse
from opencode_openai.store.redis import RedisLimits, RedisResponseStore, connect
from opencode_openai.store.sqlite import SQLiteResponseStore

__all__ = [
    "RedisLimits",
    "RedisResponseStore",
    "ResponseStore",
    "SQLiteResponseStore",
    "StoredResponse",
    "open_store",
    "open_stores",
]

#: How long past the request timeout a turn counts as running in Redis when its replica never
#: said it ended (it died): then its slot is free again.
TURN_LEASE_MARGIN_S = 60.0


def open_stores(config: GatewayConfig) -> tuple[ResponseStore, Limits]:
    """The response store and the limits a config names (nothing connects until first used;
    closing the response store closes what they share)."""
    if not config.shared_store:
        return open_store(config), InProcessLimits()
    client = connect(config.store.reveal())
    responses = RedisResponseStore(
        client,
        max_age_s=config.response_store_max_age_s,
        max_bytes=config.response_store_max_mb * 1024 * 1024,
        prefix=config.store_prefix,
    )
    limits = RedisLimits(
        client, turn_lease_s=config.timeout_s + TURN_LEASE_MARGIN_S, prefix=config.store_prefix
    )
    return responses, limits


def open_store(config: GatewayConfig) -> ResponseStore:
    """The SQLite store of a config: in the state dir unless a file is given."""
    return SQLiteResponseStore(
        config.response_store_file or config.state_dir / "responses.sqlite3",
        max_age_s=config.response_store_max_age_s,
        max_bytes=config.response_store_max_mb * 1024 * 1024,
    )
