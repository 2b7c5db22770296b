"""The OpenCode client's event stream: how it cuts `GET /event` into events, and how it opens."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest

from opencode_openai.backend import client as client_module
from opencode_openai.backend.client import OpenCodeClient, _sse_data, connection_pool
from opencode_openai.core.errors import BackendTimeout, BackendUnavailable


def _payloads(chunks: list[bytes]) -> list[bytes]:
    async def reads() -> AsyncIterator[bytes]:
        for chunk in chunks:
            yield chunk

    async def run() -> list[bytes]:
        return [payload async for payload in _sse_data(reads())]

    return asyncio.run(run())


def _event(n: int, text: str = "") -> bytes:
    return (
        b"data: "
        + json.dumps({"type": "message.part.delta", "n": n, "text": text}).encode()
        + b"\n\n"
    )


def test_whole_events_in_one_read() -> None:
    stream = b": comment\n" + _event(1) + b"event: x\n" + _event(2)
    assert [json.loads(p)["n"] for p in _payloads([stream])] == [1, 2]


@pytest.mark.parametrize("size", [1, 2, 7, 64])
def test_events_cut_at_any_byte(size: int) -> None:
    stream = _event(1, "héllo") + _event(2, "wörld") + _event(3)
    chunks = [stream[i : i + size] for i in range(0, len(stream), size)]
    assert [json.loads(p)["n"] for p in _payloads(chunks)] == [1, 2, 3]


def test_an_event_far_longer_than_the_read_buffer() -> None:
    # aiohttp's readline() refuses lines above its buffer limit; a long answer is one line.
    text = "x" * (3 * 2**20)
    stream = _event(1, text) + _event(2)
    chunks = [stream[i : i + 65536] for i in range(0, len(stream), 65536)]
    events = [json.loads(p) for p in _payloads(chunks)]
    assert [e["n"] for e in events] == [1, 2]
    assert events[0]["text"] == text


def test_a_last_line_without_newline_is_not_an_event() -> None:
    # A stream cut mid-event (OpenCode died) must not yield half a JSON document.
    stream = _event(1) + _event(2)[:20]
    assert [json.loads(p)["n"] for p in _payloads([stream])] == [1]


@contextlib.asynccontextmanager
async def _silent_opencode() -> AsyncIterator[OpenCodeClient]:
    """A client of a server that takes every connection and never answers (OpenCode starting)."""
    accepted: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)  # read nothing, answer nothing

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    pool = connection_pool(f"http://127.0.0.1:{port}", "secret")
    try:
        yield OpenCodeClient(pool, "/tmp/ws")
    finally:
        await pool.close()
        for writer in accepted:
            writer.close()
        server.close()
        await server.wait_closed()


def test_an_event_stream_that_never_opens_fails_instead_of_hanging(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # OpenCode still starting can accept `GET /event` and never answer; the event reader must
    # get an error (and retry) rather than wait forever.
    monkeypatch.setattr(client_module, "_STREAM_OPEN_S", 0.3)

    async def run() -> float:
        async with _silent_opencode() as client:
            t0 = time.monotonic()
            # Without the bound: TimeoutError (the test's own), not BackendUnavailable.
            opening = asyncio.timeout(3)
            with pytest.raises(BackendUnavailable, match="did not open"):
                async with opening, client.event_data():
                    pass
            return time.monotonic() - t0

    assert asyncio.run(run()) < 2.0


def test_a_call_opencode_never_answers_ends_at_the_pool_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Every short call (prompt, session create and delete) is bounded by the pool's timeout
    # (30 s); here shortened, so the test is quick.
    monkeypatch.setattr(client_module, "_DEFAULT_TIMEOUT", aiohttp.ClientTimeout(total=0.3))

    async def run() -> float:
        async with _silent_opencode() as client:
            t0 = time.monotonic()
            with pytest.raises(BackendTimeout, match="did not answer POST /session"):
                async with asyncio.timeout(3):  # unbounded: TimeoutError, not ours
                    await client.create_session("t")
            return time.monotonic() - t0

    assert asyncio.run(run()) < 2.0
