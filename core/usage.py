"""Usage per request: who (the key's name), which model, tokens and timing, never a prompt or a
key. One `RequestUsage` per request, filled as it goes (app/security.py: the key; the turn
pipeline: the model, tokens, time to first token); at the end, AccessLog counts it in the
metrics and writes it to the usage log (`--usage-log`), one JSON line per API request.
`opencode-openai usage` reads that log back (`summarise`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from opencode_openai.core.keys import ApiKey

__all__ = ["RequestUsage", "UsageLog", "UsageRow", "parse_since", "summarise", "usage_line"]


@dataclass
class RequestUsage:
    #: The key the request came with; None: no key was accepted.
    key: ApiKey | None = None
    #: The `provider/model` id that ran the turn; None: no turn.
    model: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    ttft_s: float | None = None

    @property
    def key_name(self) -> str | None:
        return None if self.key is None else self.key.name


def usage_line(
    usage: RequestUsage,
    *,
    at: float,
    request_id: str,
    route: str,
    status: int,
    duration_s: float,
) -> str:
    """The request's JSON line: `at` is its arrival (Unix time)."""
    return json.dumps(
        {
            "time": datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds"),
            "request_id": request_id,
            "key": usage.key_name,
            "route": route,
            "model": usage.model,
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "cached_tokens": usage.cached_tokens,
            "reasoning_tokens": usage.reasoning_tokens,
            "ttft_ms": None if usage.ttft_s is None else round(usage.ttft_s * 1000, 1),
            "duration_ms": round(duration_s * 1000, 1),
            "status": status,
        },
        separators=(",", ":"),
    )


class UsageLog:
    """Appends lines to a file, each written whole at once (several gateways may share it)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[str] | None = None

    def write(self, line: str) -> None:
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("a", buffering=1, encoding="utf-8")
        self._file.write(line + "\n")

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


_SINCE = re.compile(r"^(\d+)([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(text: str, now: datetime) -> datetime:
    """`30m`, `12h`, `1d`, `2w` back from `now`, or a date or a date-time (UTC unless given)."""
    found = _SINCE.match(text.strip())
    if found:
        return now - timedelta(**{_UNITS[found.group(2)]: int(found.group(1))})
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not 30m, 12h, 1d, 2w or a date") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass
class UsageRow:
    """The requests of one key and model: counts, tokens, and mean times."""

    key: str
    model: str
    requests: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    _ttft_ms: float = 0.0
    _ttft_count: int = 0
    _duration_ms: float = 0.0

    def add(self, entry: dict[str, Any]) -> None:
        self.requests += 1
        self.errors += entry["status"] >= 400
        for kind in ("prompt", "completion", "cached", "reasoning"):
            field = f"{kind}_tokens"
            setattr(self, field, getattr(self, field) + (entry.get(field) or 0))
        if entry.get("ttft_ms") is not None:
            self._ttft_ms += entry["ttft_ms"]
            self._ttft_count += 1
        self._duration_ms += entry.get("duration_ms") or 0.0

    @property
    def mean_ttft_ms(self) -> float | None:
        return self._ttft_ms / self._ttft_count if self._ttft_count else None

    @property
    def mean_duration_ms(self) -> float:
        return self._duration_ms / self.requests if self.requests else 0.0


def summarise(lines: Iterable[str], since: datetime) -> list[UsageRow]:
    """The log's requests from `since` on, by key and model (sorted); unreadable lines are
    skipped (a line cut short by a crash, say)."""
    rows: dict[tuple[str, str], UsageRow] = {}
    for line in lines:
        try:
            entry = json.loads(line)
            if datetime.fromisoformat(entry["time"]) < since:
                continue
        except (ValueError, KeyError, TypeError):
            continue
        group = (entry.get("key") or "-", entry.get("model") or "-")
        rows.setdefault(group, UsageRow(*group)).add(entry)
    return [rows[group] for group in sorted(rows)]
