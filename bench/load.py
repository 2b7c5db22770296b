"""The requests the bench sends, and the ways it sends many of them.

Three ways to get the same answer ("echo: hi" from the fake upstream, through OpenCode):

- `naive`: what a client of OpenCode does on its own: create a session (with a title, so no
  hidden title call), `POST /session/{id}/message` (blocking) with the model and the gateway
  workspace's agent, then delete the session. The timer covers create + message: the answer is
  there then; the delete is awaited after it, so it still costs throughput.
- `direct`: exactly the OpenCode calls the gateway makes, made by the bench: a pre-created,
  reused session (retired after 16 turns, as the gateway's pool does), `prompt_async` with the
  same body, and the turn followed on one shared `/event` stream until `session.idle`. The
  difference between the gateway and this is the gateway's own cost (HTTP, validation, mapping).
- `gateway`: `POST /v1/chat/completions`, plain or streamed.

One httpx AsyncClient with a large pool carries all of it; auth goes in precomputed headers.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx

from opencode_openai.backend.plugin_contract import AGENT, METADATA_KEY

from .procs import Meter, OpenCodeTarget

log = logging.getLogger("bench")

PROMPT = "hi"
EXPECTED = "echo: hi"  # the fake upstream's echo of the prompt, streamed in three chunks
PROVIDER, MODEL = "fake", "fake-model"
#: As the gateway's session pool: a session is retired after this many turns.
MAX_USES = 16


@dataclass
class Outcome:
    #: ok, 429, error or hung (past the per-request deadline).
    kind: str
    latency: float
    ttft: float | None = None
    detail: str = ""
    #: OpenCode events of the session during the turn (direct turns only).
    events: int = 0


Request = Callable[[], Awaitable[Outcome]]


def _error(t0: float, detail: str) -> Outcome:
    return Outcome("error", time.perf_counter() - t0, detail=detail[:300])


def _status(t0: float, response: httpx.Response) -> Outcome:
    kind = "429" if response.status_code == 429 else "error"
    return Outcome(kind, time.perf_counter() - t0, detail=f"{response.status_code}")


def make_client() -> httpx.AsyncClient:
    # The deadline of each request is enforced by the bench (asyncio), not by httpx.
    return httpx.AsyncClient(
        timeout=httpx.Timeout(600.0, connect=10.0),
        limits=httpx.Limits(max_connections=2000, max_keepalive_connections=2000),
    )


class EventReader:
    """One `GET /event` stream of an OpenCode instance, split by session (as the gateway does)."""

    def __init__(self, client: httpx.AsyncClient, target: OpenCodeTarget) -> None:
        self.client = client
        self.target = target
        self.queues: dict[str, asyncio.Queue[dict[str, Any]]] = {}
        self.connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            try:
                async with self.client.stream(
                    "GET",
                    f"{self.target.url}/event",
                    params=self.target.params,
                    headers=self.target.headers,
                    timeout=httpx.Timeout(None, connect=5.0),
                ) as response:
                    async for line in response.aiter_lines():
                        if not line.startswith("data:"):
                            continue
                        event = json.loads(line[5:])
                        if event.get("type") == "server.connected":
                            self.connected.set()
                            continue
                        sid = (event.get("properties") or {}).get("sessionID")
                        queue = self.queues.get(sid) if sid else None
                        if queue is not None:
                            queue.put_nowait(event)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("bench event stream broke (%s); reconnecting", exc)
            await asyncio.sleep(0.1)

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


class OpenCodeDriver:
    """The baseline side: requests straight to one OpenCode."""

    def __init__(self, client: httpx.AsyncClient, target: OpenCodeTarget) -> None:
        self.client = client
        self.t = target
        self.events = EventReader(client, target)
        self._idle: list[str] = []
        self._uses: dict[str, int] = {}

    async def start(self, timeout: float = 60.0) -> None:
        self.events.start()
        await asyncio.wait_for(self.events.connected.wait(), timeout)

    async def aclose(self) -> None:
        await self.events.aclose()
        for sid in self._idle:
            with contextlib.suppress(httpx.HTTPError):
                await self._delete(sid)
        self._idle.clear()

    async def _create(self, title: str) -> str:
        response = await self.client.post(
            f"{self.t.url}/session",
            params=self.t.params,
            headers=self.t.headers,
            json={"title": title},
        )
        response.raise_for_status()
        return str(response.json()["id"])

    async def _delete(self, sid: str) -> None:
        await self.client.delete(
            f"{self.t.url}/session/{sid}", params=self.t.params, headers=self.t.headers
        )

    async def sessions(self) -> list[dict[str, Any]]:
        response = await self.client.get(
            f"{self.t.url}/session", params=self.t.params, headers=self.t.headers
        )
        response.raise_for_status()
        result: list[dict[str, Any]] = response.json()
        return result

    # -- naive: create + blocking message (+ delete) ----------------------------------------

    async def naive(self) -> Outcome:
        t0 = time.perf_counter()
        sid = None
        try:
            sid = await self._create("bench")
            response = await self.client.post(
                f"{self.t.url}/session/{sid}/message",
                params=self.t.params,
                headers=self.t.headers,
                json={
                    "agent": AGENT,
                    "model": {"providerID": PROVIDER, "modelID": MODEL},
                    "parts": [{"type": "text", "text": PROMPT}],
                },
            )
            latency = time.perf_counter() - t0
            if response.status_code != 200:
                return _status(t0, response)
            body = response.json()
            text = "".join(
                p.get("text", "") for p in body.get("parts", []) if p.get("type") == "text"
            )
            if body.get("info", {}).get("error") or text != EXPECTED:
                return _error(t0, f"unexpected answer: {json.dumps(body)[:200]}")
            return Outcome("ok", latency)
        except httpx.HTTPError as exc:
            return _error(t0, repr(exc))
        finally:
            if sid is not None:
                with contextlib.suppress(httpx.HTTPError):
                    await self._delete(sid)

    # -- direct: the gateway's own calls, pooled session + prompt_async + /event ------------

    async def _acquire(self) -> str:
        if self._idle:
            return self._idle.pop()
        sid = await self._create("opencode-openai")
        self._uses[sid] = 0
        return sid

    def _release(self, sid: str, clean: bool) -> None:
        uses = self._uses.pop(sid, 0) + 1
        if clean and uses < MAX_USES:
            self._uses[sid] = uses
            self._idle.append(sid)
        else:
            task = asyncio.ensure_future(self._delete(sid))
            task.add_done_callback(lambda t: t.cancelled() or t.exception())

    async def direct(self) -> Outcome:
        """A turn the way the gateway runs it; `ttft` is the first text delta on /event."""
        sid = await self._acquire()  # outside the timer: the gateway pre-creates sessions too
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.events.queues[sid] = queue
        clean = False
        t0 = time.perf_counter()
        ttft = None
        text = ""
        request = {
            "system": [],
            "messages": [{"role": "user", "parts": [{"type": "text", "text": PROMPT}]}],
            "params": {},
        }
        body = {
            "agent": AGENT,
            "model": {"providerID": PROVIDER, "modelID": MODEL},
            "parts": [{"type": "text", "text": PROMPT, "metadata": {METADATA_KEY: request}}],
        }
        try:
            response = await self.client.post(
                f"{self.t.url}/session/{sid}/prompt_async",
                params=self.t.params,
                headers=self.t.headers,
                json=body,
            )
            if response.status_code >= 300:
                return _status(t0, response)
            events = 0
            while True:
                event = await queue.get()
                events += 1
                kind = event.get("type")
                props = event.get("properties") or {}
                if kind == "message.part.delta" and props.get("field") == "text":
                    if ttft is None:
                        ttft = time.perf_counter() - t0
                    text += props.get("delta") or ""
                elif kind == "session.error":
                    return _error(t0, json.dumps(props)[:200])
                elif kind == "session.idle":
                    clean = True
                    latency = time.perf_counter() - t0
                    if text != EXPECTED:
                        return _error(t0, f"unexpected answer {text!r}")
                    return Outcome("ok", latency, ttft, events=events)
        except httpx.HTTPError as exc:
            return _error(t0, repr(exc))
        finally:
            self.events.queues.pop(sid, None)
            self._release(sid, clean)


class GatewayDriver:
    def __init__(self, client: httpx.AsyncClient, url: str, headers: dict[str, str]) -> None:
        self.client = client
        self.url = f"{url}/v1/chat/completions"
        self.messages_url = f"{url}/v1/messages"
        self.models_url = f"{url}/v1/models"
        self.headers = headers
        self.body = {
            "model": f"{PROVIDER}/{MODEL}",
            "messages": [{"role": "user", "content": PROMPT}],
        }
        self.stream_body = {**self.body, "stream": True}
        self.messages_body = {**self.body, "max_tokens": 100}

    async def models(self) -> Outcome:
        """A round trip through the gateway that does not reach OpenCode."""
        t0 = time.perf_counter()
        try:
            response = await self.client.get(self.models_url, headers=self.headers)
            if response.status_code != 200:
                return _status(t0, response)
            return Outcome("ok", time.perf_counter() - t0)
        except httpx.HTTPError as exc:
            return _error(t0, repr(exc))

    async def chat(self) -> Outcome:
        t0 = time.perf_counter()
        try:
            response = await self.client.post(self.url, headers=self.headers, json=self.body)
            latency = time.perf_counter() - t0
            if response.status_code != 200:
                return _status(t0, response)
            content = response.json()["choices"][0]["message"]["content"]
            if content != EXPECTED:
                return _error(t0, f"unexpected answer {content!r}")
            return Outcome("ok", latency)
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            return _error(t0, repr(exc))

    async def messages(self) -> Outcome:
        """The same turn through Anthropic's Messages API (`POST /v1/messages`, not streamed)."""
        t0 = time.perf_counter()
        try:
            response = await self.client.post(
                self.messages_url, headers=self.headers, json=self.messages_body
            )
            latency = time.perf_counter() - t0
            if response.status_code != 200:
                return _status(t0, response)
            content = response.json()["content"][0]["text"]
            if content != EXPECTED:
                return _error(t0, f"unexpected answer {content!r}")
            return Outcome("ok", latency)
        except (httpx.HTTPError, ValueError, KeyError, IndexError) as exc:
            return _error(t0, repr(exc))

    async def stream(self) -> Outcome:
        """A streamed chat; `ttft` is the first chunk with content, `latency` is `[DONE]`."""
        t0 = time.perf_counter()
        ttft = None
        text = ""
        try:
            async with self.client.stream(
                "POST", self.url, headers=self.headers, json=self.stream_body
            ) as response:
                if response.status_code != 200:
                    await response.aread()
                    return _status(t0, response)
                async for line in response.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        latency = time.perf_counter() - t0
                        if text != EXPECTED:
                            return _error(t0, f"unexpected answer {text!r}")
                        return Outcome("ok", latency, ttft)
                    chunk = json.loads(data)
                    if "error" in chunk:
                        return _error(t0, json.dumps(chunk["error"])[:200])
                    for choice in chunk.get("choices") or ():
                        piece = (choice.get("delta") or {}).get("content")
                        if piece:
                            if ttft is None:
                                ttft = time.perf_counter() - t0
                            text += piece
            return _error(t0, "the stream ended without [DONE]")
        except (httpx.HTTPError, ValueError) as exc:
            return _error(t0, repr(exc))


# -- ways to send many ----------------------------------------------------------------------


async def with_deadline(request: Request, deadline_s: float) -> Outcome:
    t0 = time.perf_counter()
    try:
        return await asyncio.wait_for(request(), deadline_s)
    except TimeoutError:
        return Outcome("hung", time.perf_counter() - t0, detail=f"no answer in {deadline_s:g} s")


async def interleaved(
    requests: dict[str, Request], rounds: int, deadline_s: float, max_seconds: float
) -> dict[str, list[Outcome]]:
    """Concurrency 1: each round sends one request of every kind, in a rotating order."""
    names = list(requests)
    results: dict[str, list[Outcome]] = {name: [] for name in names}
    stop_at = time.monotonic() + max_seconds
    for i in range(rounds):
        if time.monotonic() > stop_at:
            break
        shift = i % len(names)
        for name in names[shift:] + names[:shift]:
            results[name].append(await with_deadline(requests[name], deadline_s))
    return results


async def closed_loop(
    request: Request, concurrency: int, total: int, deadline_s: float, max_seconds: float
) -> tuple[list[Outcome], float]:
    """`concurrency` workers send `total` requests back to back (fewer if time runs out)."""
    counter = itertools.count()
    outcomes: list[Outcome] = []
    stop_at = time.monotonic() + max_seconds

    async def worker() -> None:
        while next(counter) < total and time.monotonic() < stop_at:
            outcomes.append(await with_deadline(request, deadline_s))

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return outcomes, time.perf_counter() - t0


async def burst(request: Request, count: int, deadline_s: float) -> tuple[list[Outcome], float]:
    """`count` requests all at once, each with its own deadline."""
    t0 = time.perf_counter()
    outcomes = await asyncio.gather(*(with_deadline(request, deadline_s) for _ in range(count)))
    return list(outcomes), time.perf_counter() - t0


class CpuWindow:
    """CPU used by each meter over a window, in % of one core (2 cores = 200%)."""

    def __init__(self, meters: list[Meter]) -> None:
        self.meters = meters

    def __enter__(self) -> CpuWindow:
        self._t0 = time.perf_counter()
        self._start = {m.name: m.cpu_s() for m in self.meters}
        return self

    def __exit__(self, *exc: object) -> None:
        wall = time.perf_counter() - self._t0
        self.wall = wall
        self.cpu_s = {m.name: m.cpu_s() - self._start[m.name] for m in self.meters}
        self.percent = {name: 100.0 * s / wall for name, s in self.cpu_s.items()}
