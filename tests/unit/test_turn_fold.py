"""backend/fold.py's fold of OpenCode events, on event sequences recorded from opencode 1.18.33."""

from __future__ import annotations

from typing import Any

import pytest

from opencode_openai.backend.fold import TurnFold
from opencode_openai.core.errors import UpstreamFailed
from opencode_openai.core.events import (
    ReasoningDelta,
    ReasoningSignature,
    TextDelta,
    ToolCallDelta,
    TurnFinished,
)


def ev(kind: str, **props: Any) -> dict[str, Any]:
    return {"type": kind, "properties": {"sessionID": "ses_1", **props}}


def assistant(**info: Any) -> dict[str, Any]:
    return ev("message.updated", info={"id": "msg_a", "role": "assistant", **info})


def part(pid: str, kind: str, message: str = "msg_a", **fields: Any) -> dict[str, Any]:
    return ev(
        "message.part.updated", part={"id": pid, "messageID": message, "type": kind, **fields}
    )


def delta(pid: str, text: str) -> dict[str, Any]:
    return ev("message.part.delta", partID=pid, field="text", delta=text)


TOKENS = {"input": 70, "output": 13, "reasoning": 7, "cache": {"read": 30, "write": 0}}


def fold(events: list[dict[str, Any]], turn: TurnFold | None = None) -> tuple[TurnFold, list[Any]]:
    turn = turn or TurnFold(structured=False, tool_names=frozenset())
    out = [e for event in events for e in turn.feed(event)]
    return turn, out


def test_text_and_reasoning_deltas_then_finish() -> None:
    turn, out = fold(
        [
            ev("message.updated", info={"id": "msg_u", "role": "user"}),
            part("prt_u", "text", message="msg_u", text="the user's text"),  # not the answer
            assistant(),
            part("prt_r", "reasoning", text=""),
            delta("prt_r", "think"),
            delta("prt_r", "ing"),
            part("prt_r", "reasoning", text="thinking"),
            part("prt_t", "text", text=""),
            delta("prt_t", "ans"),
            delta("prt_t", "wer"),
            part("prt_t", "text", text="answer"),
            part("prt_f", "step-finish", reason="stop", tokens=TOKENS),
            assistant(finish="stop", tokens=TOKENS),
        ]
    )
    assert out == [
        ReasoningDelta("think"),
        ReasoningDelta("ing"),
        TextDelta("ans"),
        TextDelta("wer"),
    ]
    [finished] = turn.finished()
    assert isinstance(finished, TurnFinished) and finished.finish_reason == "stop"
    assert (finished.usage.prompt_tokens, finished.usage.completion_tokens) == (100, 20)
    assert (finished.usage.cached_tokens, finished.usage.reasoning_tokens) == (30, 7)


def test_snapshot_without_deltas_is_not_lost_or_doubled() -> None:
    _, out = fold(
        [
            assistant(),
            part("p", "text", text="Hel"),
            delta("p", "lo"),
            part("p", "text", text="Hello world"),
        ]
    )
    assert "".join(e.text for e in out) == "Hello world"


@pytest.mark.parametrize(
    ("finish", "expected"),
    [("length", "length"), ("content-filter", "content_filter"), ("other", "stop")],
)
def test_finish_reasons(finish: str, expected: str) -> None:
    error = (
        {"name": "ContentFilterError", "data": {"message": "blocked"}}
        if finish == "content-filter"
        else None
    )
    turn, _ = fold(
        [
            assistant(finish=finish, tokens=TOKENS, **({"error": error} if error else {})),
            *([ev("session.error", error=error)] if error else []),
        ]
    )
    assert turn.finished()[-1].finish_reason == expected  # type: ignore[union-attr]


def test_provider_error_carries_status_and_message() -> None:
    with pytest.raises(UpstreamFailed) as info:
        fold(
            [
                assistant(
                    error={
                        "name": "APIError",
                        "data": {"message": "Incorrect API key", "statusCode": 401},
                    }
                )
            ]
        )
    assert info.value.upstream_status == 401 and info.value.code == "upstream_authentication_failed"


def test_retry_fails_fast_with_retry_after() -> None:
    import time

    status = {
        "type": "retry",
        "attempt": 1,
        "message": "Rate limit reached",
        "next": (time.time() + 3) * 1000,
    }
    with pytest.raises(UpstreamFailed) as info:
        fold([ev("session.status", status=status)])
    assert info.value.message == "Rate limit reached"
    assert info.value.headers["Retry-After"] in {"2", "3"}


def test_client_tool_calls_only() -> None:
    turn = TurnFold(structured=False, tool_names=frozenset({"get_weather"}))
    _, out = fold(
        [
            assistant(),
            part(
                "t1",
                "tool",
                tool="get_weather",
                callID="call_1",
                state={"status": "pending", "input": {}},
            ),
            part(
                "t1",
                "tool",
                tool="get_weather",
                callID="call_1",
                state={"status": "running", "input": {"city": "Paris"}},
            ),
            part(
                "t1",
                "tool",
                tool="get_weather",
                callID="call_1",
                state={"status": "error", "input": {"city": "Paris"}},
            ),
            part(
                "t2",
                "tool",
                tool="bash",
                callID="call_2",
                state={"status": "running", "input": {"command": "rm -rf /"}},
            ),
            part("f", "step-finish", reason="tool-calls", tokens=TOKENS),
        ],
        turn,
    )
    # The calls go out when the turn ends, in the model's order (fold.py says why).
    assert out == []
    assert turn.stopped_at_tool_call
    *calls, finished = turn.finished()
    assert calls == [
        ToolCallDelta(0, id="call_1", name="get_weather"),
        ToolCallDelta(0, arguments='{"city": "Paris"}'),
    ]
    assert finished.finish_reason == "tool_calls"  # type: ignore[union-attr]


def test_structured_output_becomes_content() -> None:
    turn = TurnFold(structured=True, tool_names=frozenset())
    _, out = fold(
        [
            assistant(),
            part(
                "t",
                "tool",
                tool="StructuredOutput",
                callID="c",
                state={"status": "completed", "input": {"a": 1}},
            ),
            part("f", "step-finish", reason="tool-calls", tokens=TOKENS),
            assistant(finish="tool-calls", tokens=TOKENS, structured={"a": 1}),
        ],
        turn,
    )
    assert out == [] and not turn.stopped_at_tool_call
    content, finished = turn.finished()
    assert content == TextDelta('{"a": 1}') and finished.finish_reason == "stop"  # type: ignore[union-attr]


def test_structured_output_missing_is_an_error() -> None:
    turn, _ = fold(
        [assistant(finish="stop", tokens=TOKENS)], TurnFold(structured=True, tool_names=frozenset())
    )
    with pytest.raises(UpstreamFailed):
        turn.finished()


def test_a_signed_reasoning_part_tells_its_signature_once() -> None:
    """OpenCode keeps Anthropic's thinking signature in the reasoning part's metadata."""
    signed = {"anthropic": {"signature": "sig-123"}}
    _, out = fold(
        [
            assistant(),
            part("prt_r", "reasoning", text=""),
            delta("prt_r", "thinking"),
            part("prt_r", "reasoning", text="thinking", metadata=signed),
            part("prt_r", "reasoning", text="thinking", metadata=signed),
            part("prt_t", "text", text="answer"),
        ]
    )
    assert out == [ReasoningDelta("thinking"), ReasoningSignature("sig-123"), TextDelta("answer")]


def test_events_tell_the_whole_turn_only_once_idle_follows_the_completed_message() -> None:
    text_turn = [
        assistant(),
        part("prt_t", "text", text=""),
        delta("prt_t", "hi"),
        part("prt_t", "text", text="hi"),
        assistant(finish="stop", tokens=TOKENS, time={"created": 1, "completed": 2}),
    ]
    turn, _ = fold(text_turn)
    assert not turn.told_whole  # completed, but not idle yet
    fold([ev("session.idle")], turn)
    assert turn.told_whole and turn.complete

    # Idle without a completed assistant message: only the stored messages can say more.
    turn, _ = fold([assistant(), ev("session.idle")])
    assert not turn.told_whole

    # After lost events, the events no longer tell it all.
    turn, _ = fold(text_turn)
    turn.snapshots_only = True
    fold([ev("session.idle")], turn)
    assert not turn.told_whole
