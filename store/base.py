"""ResponseStore: the small interface every store of responses provides."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["ResponseStore", "StoredResponse"]


@dataclass(frozen=True)
class StoredResponse:
    """A response as the store keeps it: protocol JSON, which the store does not read.

    `input_items` are the items the request sent; `conversation` the whole conversation a
    request continuing this response carries on from. `owner` is the name of the key that
    created it: only that key reads, continues or deletes it. A response stored before keys
    had names has owner "", and stays every key's, as it was.
    """

    id: str
    #: Unix time (seconds) of the response's creation: its age counts from here.
    created_at: float
    response: dict[str, Any]
    input_items: list[dict[str, Any]]
    conversation: list[dict[str, Any]]
    owner: str


class ResponseStore(Protocol):
    """Keeps responses by id, each until it expires, is evicted or is deleted.

    Safe to call from concurrent requests. `get` of an expired or evicted response is None,
    as for one never stored, and so is one of another owner (`delete` of one: False).
    """

    async def put(self, stored: StoredResponse) -> None: ...

    async def get(self, response_id: str, owner: str) -> StoredResponse | None: ...

    async def delete(self, response_id: str, owner: str) -> bool: ...

    async def close(self) -> None: ...
