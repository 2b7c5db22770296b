"""No answer is lost or changed by event timing: the fold over OpenCode's events in any order.

Each turn below is the sequence OpenCode 1.18.33 published (as recorded, shortened), and the
assistant message it stored. The events are shuffled many ways — parts before their message,
deltas before their part, snapshots before the deltas they hold, the finish before the last
part — keeping only what one publisher emits in order (a part's deltas). The fold is driven as
backend/turn.py drives it: every end signal is checked against the stored message, and the turn
stops once complete. Whatever the order, the client gets all the text and every tool call,
once.
"""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from opencode_openai.backend.fold import TurnFold
from opencode_openai.core.events import (
    ReasoningDelta,
    TextDelta,
    ToolCallDelta,
    TurnEvent,
    TurnFinished,
)

TOKENS = {"input": 70, "output": 13, "reasoning": 7, "cache": {"read": 30, "write": 0}}
USER = {"id": "msg_u", "role": "user", "time": {"created": 1}}


def ev(kind: str, **props: Any) -> dict[str, Any]:
    return {"type": kind, "properties": {"sessionID": "ses_1", **props}}


def info(**fields: Any) -> dict[str, Any]:
    return {"id": "msg_a", "role": "assistant", "time": {"created": 2}, **fields}


def part(pid: str, kind: str, message: str = "msg_a", **fields: Any) -> dict[str, Any]:
    return {"id": pid, "messageID": message, "type": kind, **fields}


def updated(p: dict[str, Any]) -> dict[str, Any]:
    return ev("message.part.updated", part=p)


def delta(pid: str, text: str) -> dict[str, Any]:
    return ev("message.part.delta", partID=pid, field="text", delta=text)


def text_turn() -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Reasoning, then an answer in deltas, then the finish."""
    final = [
        part("prt_s", "step-start"),
        part("prt_r", "reasoning", text="thinking it over"),
        part("prt_t", "text", text="Hello, wörld! How are you?"),
        part("prt_f", "step-finish", reason="stop", tokens=TOKENS),
    ]
    events = [
        ev("message.updated", info=USER),
        updated(part("prt_u", "text", message="msg_u", text="the user's question")),
        ev("message.updated", info=info()),
        updated(final[0]),
        updated(part("prt_r", "reasoning", text="")),
        delta("prt_r", "thinking "),
        delta("prt_r", "it over"),
        updated(final[1]),
        updated(part("prt_t", "text", text="")),
        *(delta("prt_t", piece) for piece in ("Hello, ", "wörld!", " How ", "are you?")),
        updated(part("prt_t", "text", text="Hello, wörld!")),  # a snapshot half-way
        updated(final[2]),
        updated(final[3]),
        ev("message.updated", info=info(finish="stop", tokens=TOKENS, time={"completed": 3})),
        ev("session.status", status={"type": "idle"}),
        ev("session.idle"),
    ]
    stored = {"info": info(finish="stop", tokens=TOKENS, time={"created": 2, "completed": 3})}
    return events, {**stored, "parts": final}


def tool_turn() -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Some text, then two calls of the client's tools; OpenCode then tries a second step."""
    calls = [
        part("prt_c1", "tool", tool="get_weather", callID="call_1",
             state={"status": "running", "input": {"city": "Lima", "unit": "c"}}),
        part("prt_c2", "tool", tool="get_time", callID="call_2",
             state={"status": "running", "input": {"tz": "America/Lima"}}),
    ]  # fmt: skip
    final = [
        part("prt_t", "text", text="Let me look."),
        *calls,
        part("prt_f", "step-finish", reason="tool-calls", tokens=TOKENS),
    ]
    events = [
        ev("message.updated", info=USER),
        ev("message.updated", info=info()),
        updated(part("prt_t", "text", text="")),
        delta("prt_t", "Let me "),
        delta("prt_t", "look."),
        updated(final[0]),
        updated(part("prt_c1", "tool", tool="get_weather", callID="call_1",
                     state={"status": "pending", "input": {}})),
        updated(calls[0]),
        updated(part("prt_c2", "tool", tool="get_time", callID="call_2",
                     state={"status": "pending", "input": {}})),
        updated(calls[1]),
        updated(final[3]),
        ev("message.updated",
           info=info(finish="tool-calls", tokens=TOKENS, time={"completed": 3})),
        # What follows is OpenCode's refused second step: never part of the answer.
        ev("message.updated", info={"id": "msg_b", "role": "assistant", "time": {"created": 4},
                                    "error": {"name": "UnknownError",
                                              "data": {"message": "a second step was refused"}}}),
    ]  # fmt: skip
    stored = {"info": info(finish="tool-calls", tokens=TOKENS, time={"created": 2, "completed": 3})}
    return events, {**stored, "parts": final}


def shuffled(events: list[dict[str, Any]], rng: random.Random) -> list[dict[str, Any]]:
    """A random interleaving that keeps each part's deltas in their order, and a later step's
    events after the turn's (OpenCode starts that step only once the turn's step is over, and
    publishes in order; what arrives out of order is the state of this step's objects)."""
    later = [e for e in events if (e["properties"].get("info") or {}).get("id") == "msg_b"]
    events = [e for e in events if e not in later]
    chains: dict[str, list[dict[str, Any]]] = {}
    singles: list[list[dict[str, Any]]] = []
    for event in events:
        if event["type"] == "message.part.delta":
            chains.setdefault(event["properties"]["partID"], []).append(event)
        else:
            singles.append([event])
    queues = [*chains.values(), *singles]
    order: list[dict[str, Any]] = []
    while queues:
        queue = rng.choice(queues)
        order.append(queue.pop(0))
        if not queue:
            queues.remove(queue)
    return order + later


def drive(fold: TurnFold, events: list[dict[str, Any]], stored: dict[str, Any]) -> list[TurnEvent]:
    """As backend/turn.py does: reconcile at each end signal, stop once complete."""
    out: list[TurnEvent] = []
    seen = 0
    for event in events:
        out += fold.feed(event)
        if fold.end_signals > seen:
            seen = fold.end_signals
            out += fold.reconcile([stored])
        if fold.complete:
            return out + fold.finished()
    raise AssertionError("the turn never completed")


def answer(out: list[TurnEvent]) -> dict[str, Any]:
    calls: dict[int, dict[str, str]] = {}
    for event in out:
        if isinstance(event, ToolCallDelta):
            call = calls.setdefault(event.index, {"id": "", "name": "", "arguments": ""})
            call["id"] += event.id or ""
            call["name"] += event.name or ""
            call["arguments"] += event.arguments
    [finished] = [e for e in out if isinstance(e, TurnFinished)]
    return {
        "text": "".join(e.text for e in out if isinstance(e, TextDelta)),
        "reasoning": "".join(e.text for e in out if isinstance(e, ReasoningDelta)),
        "calls": [{**c, "arguments": json.loads(c["arguments"])} for _, c in sorted(calls.items())],
        "finish": finished.finish_reason,
        "usage": finished.usage,
    }


def test_the_recorded_orders_give_the_expected_answers() -> None:
    events, stored = text_turn()
    text = answer(drive(TurnFold(structured=False, tool_names=frozenset()), events, stored))
    assert (text["text"], text["reasoning"], text["finish"]) == (
        "Hello, wörld! How are you?",
        "thinking it over",
        "stop",
    )
    assert (text["usage"].prompt_tokens, text["usage"].completion_tokens) == (100, 20)
    events, stored = tool_turn()
    tools = frozenset({"get_weather", "get_time"})
    called = answer(drive(TurnFold(structured=False, tool_names=tools), events, stored))
    assert called["calls"] == [
        {"id": "call_1", "name": "get_weather", "arguments": {"city": "Lima", "unit": "c"}},
        {"id": "call_2", "name": "get_time", "arguments": {"tz": "America/Lima"}},
    ]
    assert (called["text"], called["finish"]) == ("Let me look.", "tool_calls")


@pytest.mark.parametrize("seed", range(300))
@pytest.mark.parametrize("turn", [text_turn, tool_turn], ids=["text", "tool"])
def test_any_order_gives_the_same_answer(seed: int, turn: Any) -> None:
    events, stored = turn()
    tools = frozenset({"get_weather", "get_time"})
    expected = answer(drive(TurnFold(structured=False, tool_names=tools), events, stored))
    order = shuffled(events, random.Random(seed))
    got = answer(drive(TurnFold(structured=False, tool_names=tools), order, stored))
    assert got == expected, [e["type"] for e in order]


def test_the_finish_before_every_part_loses_nothing() -> None:
    """The loss seen under load: the assistant's message.updated already carried its finish
    (tool-calls) before any part; the old fold stopped there with no call."""
    events, stored = tool_turn()
    finish = events.pop(11)
    assert finish["properties"]["info"]["finish"] == "tool-calls"
    tools = frozenset({"get_weather", "get_time"})
    got = answer(drive(TurnFold(structured=False, tool_names=tools), [finish, *events], stored))
    assert [c["name"] for c in got["calls"]] == ["get_weather", "get_time"]
    assert got["finish"] == "tool_calls"


def test_a_later_steps_error_is_not_the_turns() -> None:
    events, stored = tool_turn()
    tools = frozenset({"get_weather", "get_time"})
    fold = TurnFold(structured=False, tool_names=tools)
    for event in events[:2]:  # the user's message, then the turn's assistant message
        fold.feed(event)
    assert fold.feed(events[-1]) == []  # msg_b, the refused second step, with its error
    got = answer(drive(fold, events[2:-1], stored))
    assert got["finish"] == "tool_calls" and len(got["calls"]) == 2


def test_parts_before_their_message_are_kept_until_it_says_whose() -> None:
    fold = TurnFold(structured=False, tool_names=frozenset())
    early = [
        updated(part("prt_u", "text", message="msg_u", text="the user's question")),
        updated(part("prt_t", "text", text="")),
        delta("prt_t", "an"),
        delta("prt_t", "swer"),
    ]
    assert [e for event in early for e in fold.feed(event)] == []
    assert fold.feed(ev("message.updated", info=USER)) == []  # the user's part: dropped
    assert fold.feed(ev("message.updated", info=info())) == [TextDelta("an"), TextDelta("swer")]
