"""What a stored response keeps for later requests, and how its input items are listed.

A stored response keeps its own input items (for GET /v1/responses/{id}/input_items) and
its whole conversation: the conversation it continued, its input and its output. A request
naming it as `previous_response_id` continues from that conversation exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["conversation_of", "input_item_page"]


def conversation_of(
    history: Sequence[dict[str, Any]],
    input_items: Sequence[dict[str, Any]],
    response: dict[str, Any],
) -> list[dict[str, Any]]:
    """The conversation a later request continues: what came before, then the response's
    input and output items (output messages and function calls are valid input items)."""
    return [*history, *input_items, *response["output"]]


def input_item_page(
    items: Sequence[dict[str, Any]], *, limit: int = 20, order: str = "desc", after: str | None
) -> dict[str, Any]:
    """A page of input items as OpenAI lists them: `desc` is newest first; `after` is the id
    of the item the page starts after (an unknown id gives an empty page)."""
    ordered = list(reversed(items)) if order == "desc" else list(items)
    if after is not None:
        ids = [item["id"] for item in ordered]
        ordered = ordered[ids.index(after) + 1 :] if after in ids else []
    page = ordered[:limit]
    return {
        "object": "list",
        "data": page,
        "first_id": page[0]["id"] if page else "",
        "last_id": page[-1]["id"] if page else "",
        "has_more": len(ordered) > limit,
    }
