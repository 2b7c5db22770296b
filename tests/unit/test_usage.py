"""core/usage.py and `opencode-openai usage`: a JSON line per request, summed up by key and
model."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from opencode_openai.cli.main import main
from opencode_openai.core.keys import ApiKey, hash_key
from opencode_openai.core.usage import RequestUsage, UsageLog, parse_since, summarise, usage_line

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def line(key: str | None, model: str | None, status: int, at: datetime, **tokens: int) -> str:
    api_key = None if key is None else ApiKey(key, hash_key(key))
    usage = RequestUsage(api_key, model, ttft_s=0.2 if model else None, **tokens)
    return usage_line(
        usage,
        at=at.timestamp(),
        request_id="req_1",
        route="/v1/chat/completions",
        status=status,
        duration_s=0.5,
    )


def test_a_line_holds_who_what_and_how_long() -> None:
    entry = json.loads(line("alice", "fake/m", 200, NOW, prompt_tokens=3, completion_tokens=4))
    assert entry == {
        "time": "2026-12-02T12:00:00.000+00:00",
        "request_id": "req_1",
        "key": "alice",
        "route": "/v1/chat/completions",
        "model": "fake/m",
        "prompt_tokens": 3,
        "completion_tokens": 4,
        "cached_tokens": 0,
        "reasoning_tokens": 0,
        "ttft_ms": 200.0,
        "duration_ms": 500.0,
        "status": 200,
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30m", NOW - timedelta(minutes=30)),
        ("12h", NOW - timedelta(hours=12)),
        ("1d", NOW - timedelta(days=1)),
        ("2w", NOW - timedelta(weeks=2)),
        ("2026-12-01", datetime(2026, 12, 1, tzinfo=UTC)),
        ("2026-12-01T10:00:00+02:00", datetime(2026, 12, 1, 8, tzinfo=UTC)),
    ],
)
def test_since_reads_durations_and_dates(text: str, expected: datetime) -> None:
    assert parse_since(text, NOW) == expected


def test_since_refuses_what_it_cannot_read() -> None:
    with pytest.raises(ValueError, match="not 30m"):
        parse_since("yesterday", NOW)


def test_summary_groups_by_key_and_model_from_since_on() -> None:
    lines = [
        line("alice", "fake/m", 200, NOW, prompt_tokens=10, completion_tokens=5),
        line("alice", "fake/m", 429, NOW),
        line("alice", "fake/m", 200, NOW - timedelta(days=2), prompt_tokens=999),  # too old
        line("bob", "fake/n", 200, NOW, prompt_tokens=1, completion_tokens=1),
        line("bob", None, 404, NOW),
        '{"time": "cut sh',
    ]
    rows = summarise(lines, NOW - timedelta(days=1))
    assert [(r.key, r.model, r.requests, r.errors) for r in rows] == [
        ("alice", "fake/m", 2, 1),
        ("bob", "-", 1, 1),
        ("bob", "fake/n", 1, 0),
    ]
    alice = rows[0]
    assert (alice.prompt_tokens, alice.completion_tokens) == (10, 5)
    assert alice.mean_ttft_ms == 200.0 and alice.mean_duration_ms == 500.0
    assert rows[1].mean_ttft_ms is None


def test_usage_command_prints_the_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    log = UsageLog(tmp_path / "logs" / "usage.jsonl")
    now = datetime.now(UTC)
    log.write(line("alice", "fake/m", 200, now, prompt_tokens=10, completion_tokens=5))
    log.write(line("alice", "fake/m", 502, now))
    log.close()
    assert main(["usage", "--since", "1d", "--log", str(log.path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1].split() == [
        "key", "model", "requests", "errors", "prompt", "completion", "cached", "reasoning",
        "ttft", "ms", "duration", "ms",
    ]  # fmt: skip
    assert out[2].split() == ["alice", "fake/m", "2", "1", "10", "5", "0", "0", "200", "500"]
    # The log the usage-log setting names, as the server reads it (here: its variable).
    monkeypatch.setenv("OPENCODE_OPENAI_USAGE_LOG", str(log.path))
    assert main(["usage"]) == 0 and "alice" in capsys.readouterr().out
    monkeypatch.delenv("OPENCODE_OPENAI_USAGE_LOG")
    assert main(["usage"]) == 2 and "no usage log" in capsys.readouterr().err
    assert main(["usage", "--since", "soon", "--log", str(log.path)]) == 2
