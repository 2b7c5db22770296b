"""Incremental server-sent-event parsing, so a stream can be checked while it arrives."""

from __future__ import annotations

import re

_EVENT_END = re.compile(rb"\r\n\r\n|\n\n|\r\r")
_LINE_END = re.compile(r"\r\n|\n|\r")


class EventParser:
    """Feed it the body's bytes as they come; it hands back the `data` of each whole event."""

    def __init__(self) -> None:
        self._pending = b""

    def feed(self, chunk: bytes) -> list[str]:
        return [data for _, data in self.feed_named(chunk)]

    def feed_named(self, chunk: bytes) -> list[tuple[str | None, str]]:
        """Each whole event's name (its `event:` line, None without one) and `data`."""
        self._pending += chunk
        events: list[tuple[str | None, str]] = []
        while match := _EVENT_END.search(self._pending):
            raw, self._pending = self._pending[: match.start()], self._pending[match.end() :]
            text = raw.decode()
            data = _data(text)
            if data is not None:
                events.append((_name(raw.decode()), data))
        return events

    @property
    def leftover(self) -> bytes:
        """What came after the last complete event (should be nothing once the stream ends)."""
        return self._pending


def _data(event: str) -> str | None:
    """The event's `data` lines joined (SSE rules: one optional space after the colon)."""
    lines = [
        line[5:].removeprefix(" ") for line in _LINE_END.split(event) if line.startswith("data:")
    ]
    return "\n".join(lines) if lines else None


def _name(event: str) -> str | None:
    names = [
        line[6:].removeprefix(" ") for line in _LINE_END.split(event) if line.startswith("event:")
    ]
    return names[-1] if names else None
