"""ResponseStore: the small interface every store of responses provides."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["ResponseStore", "StoredResponse", "body_within", "from_body"]

log = logging.getLogger("opencode_openai.store")


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


def body_within(stored: StoredResponse, max_bytes: int) -> tuple[str, int] | None:
    """What a store keeps of `stored` (its JSON, and that JSON's size in bytes), or None (and
    a warning) when it is larger than the store's whole bound, so it is not kept."""
    body = json.dumps(
        {
            "response": stored.response,
            "input_items": stored.input_items,
            "conversation": stored.conversation,
        },
        separators=(",", ":"),
        ensure_ascii=False,
    )
    size = len(body.encode())
    if size > max_bytes:
        log.warning(
            "response %s not stored: %d bytes, more than the store's bound (%d bytes)",
            stored.id,
            size,
            max_bytes,
        )
        return None
    return body, size


def from_body(response_id: str, created_at: float, body: str, owner: str) -> StoredResponse:
    """The stored response of a body that `body_within` made."""
    data = json.loads(body)
    return StoredResponse(
        response_id,
        created_at,
        data["response"],
        data["input_items"],
        data["conversation"],
        owner,
    )
