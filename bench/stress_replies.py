"""What the stress run's fake upstream answers, derived from each request alone.

Every stress request carries a marker in its user message, `[stress:<kind>:<rid>]`. The upstream
reads it and answers with the scripted reply of that id; the checker (bench/stress.py) derives
the same reply from the same id, so it knows exactly what the client must receive:

- `text`: a text of 4 to 12 chunks (words, punctuation, non-ASCII letters, a blank line at
  times), streamed chunk by chunk, beginning with the id. No leading or trailing white space:
  OpenCode trims a text part's end, and the reply must be comparable byte for byte.
- `tool`: one call of one of the client tools in `TOOLS`, id `call_<rid>`, whose name and JSON
  arguments (nested objects, lists, quotes, escapes, non-ASCII) are picked from the id; the
  arguments match the tool's schema, so OpenCode accepts the call.

A request without a marker gets the fake's default reply (`echo: ...`).
"""

from __future__ import annotations

import json
import random
import re
import threading
from pathlib import Path
from typing import Any

from tests.support import fake_upstream as fu

MARKER = re.compile(r"\[stress:(text|tool):([A-Za-z0-9_]+)\]")

TOOLS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather and forecast for a city.",
            "parameters": {
                "type": "object",
                "properties": {
                    "city": {"type": "string"},
                    "unit": {"type": "string", "enum": ["c", "f"]},
                    "days": {"type": "integer"},
                },
                "required": ["city", "unit", "days"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "search_orders",
            "description": "Search a customer's orders.",
            "parameters": {
                "type": "object",
                "properties": {
                    "customer_id": {"type": "string"},
                    "status": {
                        "type": "array",
                        "items": {"type": "string", "enum": ["open", "shipped", "returned"]},
                    },
                    "limit": {"type": "integer"},
                    "include_archived": {"type": "boolean"},
                },
                "required": ["customer_id", "status", "limit", "include_archived"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "create_event",
            "description": "Put an event in the calendar.",
            "parameters": {
                "type": "object",
                "properties": {
                    "title": {"type": "string"},
                    "when": {
                        "type": "object",
                        "properties": {
                            "date": {"type": "string"},
                            "hour": {"type": "integer"},
                        },
                        "required": ["date", "hour"],
                    },
                    "attendees": {"type": "array", "items": {"type": "string"}},
                    "notes": {"type": "string"},
                },
                "required": ["title", "when", "attendees", "notes"],
            },
        },
    },
]

_WORDS = (
    "alpha",
    "bravo",
    "charlie",
    "delta",
    "echo",
    "foxtrot",
    "golf",
    "hotel",
    "india",
    "juliett",
    "kilo",
    "lima",
    "mike",
    "november",
    "oscar",
    "papa",
    "quebec",
    "romeo",
    "sierra",
    "tango",
    "uniform",
    "victor",
    "whiskey",
    "xray",
    "yankee",
    "zulu",
    "café",
    "naïve",
    "Straße",
    "façade",
    "smörgåsbord",
    "déjà-vu",
    "東京",
    "Ελλάδα",
    "✓",
    "→",
    "42",
    "3.14",
    "(x)",
    "[y]",
    "{z}",
    '"quoted"',
    "it's",
    "a/b",
    "back\\slash",
    "50%",
    "#tag",
    "@here",
)
_CITIES = ("Paris", "Oslo", "São Paulo", "Zürich", "Kraków", "Reykjavík", "東京", "New York")


def marker(kind: str, rid: str) -> str:
    return f"[stress:{kind}:{rid}]"


def parse(text: str) -> tuple[str, str] | None:
    """(kind, rid) of the last marker in `text`, or None."""
    found = MARKER.findall(text)
    return (found[-1][0], found[-1][1]) if found else None


def text_chunks(rid: str) -> tuple[str, ...]:
    """The scripted text of `rid`, as the chunks the upstream streams."""
    rng = random.Random(f"text:{rid}")
    chunks = [f"[{rid}]"]
    for _ in range(rng.randint(3, 11)):
        words = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(1, 5)))
        sep = "\n\n" if rng.random() < 0.15 else " "
        chunks.append(sep + words)
    chunks.append(".")
    return tuple(chunks)


def expected_text(rid: str) -> str:
    return "".join(text_chunks(rid))


def expected_call(rid: str) -> tuple[str, str, dict[str, Any]]:
    """(id, name, arguments) of the scripted tool call of `rid`."""
    rng = random.Random(f"tool:{rid}")
    name = rng.choice(TOOLS)["function"]["name"]
    arguments: dict[str, Any]
    if name == "get_weather":
        arguments = {
            "city": f"{rng.choice(_CITIES)} {rid}",
            "unit": rng.choice(["c", "f"]),
            "days": rng.randint(1, 14),
        }
    elif name == "search_orders":
        arguments = {
            "customer_id": f"cust-{rid}",
            "status": rng.sample(["open", "shipped", "returned"], rng.randint(0, 3)),
            "limit": rng.randint(1, 500),
            "include_archived": rng.random() < 0.5,
        }
    else:
        arguments = {
            "title": f"Réunion {rid} — {rng.choice(_WORDS)}",
            "when": {"date": f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"},
            "attendees": [f"{rng.choice(_WORDS)}@example.test" for _ in range(rng.randint(0, 4))],
            "notes": 'line one\nline "two"\ttab \\ backslash ✓',
        }
        arguments["when"]["hour"] = rng.randint(0, 23)
    return f"call_{rid}", name, arguments


def reply_for(kind: str, rid: str) -> fu.Completion:
    if kind == "text":
        return fu.text(text_chunks(rid))
    call_id, name, arguments = expected_call(rid)
    return fu.tool_calls(fu.ToolCall(name, json.dumps(arguments, ensure_ascii=False), id=call_id))


class StressUpstream(fu.FakeUpstream):
    """The tests' fake upstream, answering marked requests with their scripted replies.

    With `served_log`, the id of every marked request it answers goes there, one a line, so the
    run can count upstream calls per request.
    """

    def __init__(self, served_log: Path | None = None) -> None:
        super().__init__()
        self._served = served_log.open("a", buffering=1) if served_log else None
        self._served_lock = threading.Lock()
        self.script("", fu.echo())  # unmarked requests (the warm-up): an explicit echo

    def _pick(self, record: fu.RecordedRequest) -> fu.Reply:
        found = parse(fu._last_user_text(record.body))
        if found is None:
            return super()._pick(record)
        kind, rid = found
        if self._served is not None:
            with self._served_lock:
                self._served.write(f"{kind} {rid}\n")
        return reply_for(kind, rid)

    def stop(self) -> None:
        super().stop()
        if self._served is not None:
            self._served.close()
