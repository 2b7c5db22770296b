"""EventStream: the one `GET /event` reader of an OpenCode instance, demultiplexed by session.

OpenCode sends the events of every session on one SSE stream; opening one per request costs
latency, so a single reader feeds a queue per subscribed session. When the stream breaks it
reconnects; every subscriber is told with `stream.lost` and `stream.reconnected` events, so a
turn that may have missed events can check OpenCode is alive and read its session's messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from opencode_openai.backend.client import OpenCodeClient

__all__ = ["LOST", "RECONNECTED", "EventStream"]

log = logging.getLogger("opencode_openai.events")

#: Synthetic events told to every subscriber: the stream broke / is back (events may be lost).
LOST = "stream.lost"
RECONNECTED = "stream.reconnected"


class EventStream:
    def __init__(self, client: OpenCodeClient) -> None:
        self._client = client
        self._queues: dict[str, asyncio.Queue[dict[str, Any]]] = {}
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self._ever_connected = False

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="opencode-event-stream")

    async def wait_connected(self, timeout: float) -> None:
        await asyncio.wait_for(self._connected.wait(), timeout)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def subscribe(self, session_id: str) -> asyncio.Queue[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._queues[session_id] = queue
        return queue

    def unsubscribe(self, session_id: str) -> None:
        self._queues.pop(session_id, None)

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        delay = 0.05
        while True:
            try:
                async with self._client.event_data() as payloads:
                    async for payload in payloads:
                        event = json.loads(payload)
                        if event.get("type") == "server.connected":
                            if self._ever_connected:
                                self._broadcast({"type": RECONNECTED, "properties": {}})
                            self._ever_connected = True
                            self._connected.set()
                            delay = 0.05
                            continue
                        self._dispatch(event)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("OpenCode event stream failed (%s); reconnecting", exc)
            self._connected.clear()
            self._broadcast({"type": LOST, "properties": {}})
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)

    def _dispatch(self, event: dict[str, Any]) -> None:
        session_id = (event.get("properties") or {}).get("sessionID")
        queue = self._queues.get(session_id) if session_id else None
        if queue is not None:
            queue.put_nowait(event)

    def _broadcast(self, event: dict[str, Any]) -> None:
        for queue in self._queues.values():
            queue.put_nowait(event)
