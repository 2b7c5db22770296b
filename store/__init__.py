"""Stored responses: what `store: true` keeps, so that a later request can continue from it.

`ResponseStore` is the interface the handlers use; `SQLiteResponseStore` keeps responses in an
SQLite database in the state directory, bounded by age and size; `open_store` builds the one a
GatewayConfig names. Another implementation (a store shared by several gateways) only has to
provide the same four methods.
"""

from opencode_openai.core.settings import GatewayConfig
from opencode_openai.store.base import ResponseStore, StoredResponse
from opencode_openai.store.sqlite import SQLiteResponseStore

__all__ = ["ResponseStore", "SQLiteResponseStore", "StoredResponse", "open_store"]


def open_store(config: GatewayConfig) -> ResponseStore:
    """The store a config names: SQLite, in the state dir unless a file is given."""
    return SQLiteResponseStore(
        config.response_store_file or config.state_dir / "responses.sqlite3",
        max_age_s=config.response_store_max_age_s,
        max_bytes=config.response_store_max_mb * 1024 * 1024,
    )
