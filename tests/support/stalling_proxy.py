"""StallingProxy: an HTTP proxy in front of a real `opencode serve` that can hold requests.

It forwards everything (streams included) to OpenCode, except the requests a test tells it
to stall: those get no answer at all until the gateway gives up on them. With it a test
makes OpenCode hang at one step of a turn's set-up (loading a tool set, creating a session,
taking the prompt) without changing OpenCode. It runs its own event loop in a thread.
"""

from __future__ import annotations

import asyncio
import re
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import aiohttp
from aiohttp import web

__all__ = ["StallingProxy"]

_HOP = {"host", "content-length", "transfer-encoding", "connection", "keep-alive"}


class StallingProxy:
    def __init__(self, target: str) -> None:
        self.target = target.rstrip("/")
        self._stall: re.Pattern[str] | None = None
        #: How many requests it held (method and path with the query).
        self.stalled: list[str] = []
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True, name="stalling-proxy")
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> StallingProxy:
        self._thread.start()
        if not self._started.wait(10):
            raise RuntimeError("the stalling proxy did not start")
        return self

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._stopping.set)
        self._thread.join(10)

    @contextmanager
    def stalling(self, pattern: str) -> Iterator[None]:
        """Hold every request whose `METHOD path?query` matches `pattern` (re.search)."""
        with self._lock:
            self._stall = re.compile(pattern)
        try:
            yield
        finally:
            with self._lock:
                self._stall = None

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._main())
        finally:
            self._loop.close()

    async def _main(self) -> None:
        self._stopping = asyncio.Event()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._forward)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self.port).start()
        async with aiohttp.ClientSession(auto_decompress=False) as session:
            self._session = session
            self._started.set()
            await self._stopping.wait()
            await runner.cleanup()

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        line = f"{request.method} {request.path_qs}"
        with self._lock:
            stall = self._stall is not None and self._stall.search(line) is not None
            if stall:
                self.stalled.append(line)
        if stall:
            await asyncio.Event().wait()  # until the gateway hangs up (cancelled then)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP}
        async with self._session.request(
            request.method,
            self.target + request.path_qs,
            headers=headers,
            data=await request.read(),
            timeout=aiohttp.ClientTimeout(total=None),
        ) as upstream:
            response = web.StreamResponse(
                status=upstream.status,
                headers={k: v for k, v in upstream.headers.items() if k.lower() not in _HOP},
            )
            await response.prepare(request)
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
            return response
