"""Helpers for the client compatibility tests: a recording proxy and a runner for JS clients.

`RecordingProxy` is a plain TCP pipe in front of the gateway. It forwards bytes both ways
unchanged (streams included, so it adds no buffering) and parses the client-to-gateway side to
record each HTTP request exactly as the client sent it: method, path, headers, body. The tests
use it to assert on what real clients put on the wire, which the fake upstream cannot show
(it sees what OpenCode sends, not what the client sent).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support import fake_upstream as fu
from tests.support.gateway import API_KEY, GatewayServer

ROOT = Path(__file__).resolve().parents[2]
JS_DIR = Path(__file__).resolve().parent / "js"
MODEL = "fake/fake-model"


@dataclass
class SentRequest:
    """One HTTP request as a client sent it to the gateway."""

    method: str
    path: str
    headers: dict[str, str]  # lower-case names; a repeated header keeps its last value
    raw_body: bytes

    @property
    def body(self) -> Any:
        try:
            return json.loads(self.raw_body) if self.raw_body else None
        except ValueError:
            return None


class _RequestParser:
    """Splits the client-to-server byte stream of one connection into HTTP/1.1 requests."""

    def __init__(self, sink: list[SentRequest], lock: threading.Lock) -> None:
        self._buf = b""
        self._sink = sink
        self._lock = lock

    def feed(self, data: bytes) -> None:
        self._buf += data
        while (request := self._take()) is not None:
            with self._lock:
                self._sink.append(request)

    def _take(self) -> SentRequest | None:
        end = self._buf.find(b"\r\n\r\n")
        if end < 0:
            return None
        head = self._buf[:end].decode("latin-1").split("\r\n")
        method, path, _ = head[0].split(" ", 2)
        headers: dict[str, str] = {}
        for line in head[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        rest = self._buf[end + 4 :]
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body, consumed = _dechunk(rest)
            if body is None:
                return None
        else:
            consumed = int(headers.get("content-length") or 0)
            if len(rest) < consumed:
                return None
            body = rest[:consumed]
        self._buf = rest[consumed:]
        return SentRequest(method, path, headers, body)


def _dechunk(data: bytes) -> tuple[bytes | None, int]:
    body, pos = b"", 0
    while True:
        line_end = data.find(b"\r\n", pos)
        if line_end < 0:
            return None, 0
        size = int(data[pos:line_end].split(b";")[0], 16)
        start = line_end + 2
        if size == 0:
            trailer_end = data.find(b"\r\n\r\n", line_end)
            if trailer_end < 0:
                return None, 0
            return body, trailer_end + 4
        if len(data) < start + size + 2:
            return None, 0
        body += data[start : start + size]
        pos = start + size + 2


class RecordingProxy:
    """Forward 127.0.0.1:<port> to the gateway, recording every request that goes through."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self._lock = threading.Lock()
        self._requests: list[SentRequest] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event
        self._tasks: set[asyncio.Task[None]] = set()
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def start(self) -> RecordingProxy:
        started = threading.Event()

        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stopping = asyncio.Event()
            server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
            self.port = server.sockets[0].getsockname()[1]
            started.set()
            await self._stopping.wait()
            server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await server.wait_closed()

        self._thread = threading.Thread(
            target=asyncio.run, args=(main(),), daemon=True, name="recording-proxy"
        )
        self._thread.start()
        if not started.wait(10):
            raise RuntimeError("recording proxy did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        if self._thread is not None:
            self._thread.join(5)

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._pipe(client_r, client_w)
        except asyncio.CancelledError:
            client_w.close()
        finally:
            self._tasks.discard(task)

    async def _pipe(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            up_r, up_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            client_w.close()
            return
        parser = _RequestParser(self._requests, self._lock)

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter, record: bool) -> None:
            try:
                while data := await src.read(65536):
                    if record:
                        parser.feed(data)
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                with contextlib.suppress(OSError):
                    dst.close()

        await asyncio.gather(pump(client_r, up_w, True), pump(up_r, client_w, False))

    def requests(self, match: str | None = None, path: str | None = None) -> list[SentRequest]:
        """Recorded requests, oldest first; only those whose body contains `match` if given."""
        with self._lock:
            found = list(self._requests)
        if path is not None:
            found = [r for r in found if r.path.split("?")[0] == path]
        if match is not None:
            found = [r for r in found if match.encode() in r.raw_body]
        return found

    def chat_requests(self, match: str | None = None) -> list[SentRequest]:
        return self.requests(match, path="/v1/chat/completions")


def run_node(script: str, env: dict[str, str], *args: str, timeout: float = 60) -> dict[str, Any]:
    """Run `tests/clients/js/<script>` with node and return the JSON object it prints last."""
    # ES modules resolve `openai`, `ai`... from the repository's node_modules, up the tree.
    full_env = {**os.environ, **env}
    started = time.monotonic()
    proc = subprocess.run(
        ["node", str(JS_DIR / script), *args],
        env=full_env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    assert proc.returncode == 0 and lines, (
        f"node {script} {' '.join(args)} exited {proc.returncode} after "
        f"{time.monotonic() - started:.1f} s\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    )
    return json.loads(lines[-1])


@contextlib.contextmanager
def occupied(gateway: GatewayServer, fake: fu.FakeUpstream, marker: str) -> Iterator[None]:
    """Hold the gateway's one turn slot with a request the upstream never answers.

    A raw socket sends it, so that closing the socket (the client hanging up) frees the slot.
    """
    hold = f"{marker}[hold]"
    fake.script(hold, fu.hang())
    body = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": hold}]}).encode()
    head = (
        "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {API_KEY}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    sock = socket.create_connection(("127.0.0.1", gateway.config.port), timeout=30)
    try:
        sock.sendall(head + body)
        fake.wait_for(lambda: fake.chat_requests(hold), timeout=20)
        yield
    finally:
        sock.close()
    fake.wait_for(lambda: [r for r in fake.chat_requests(hold) if r.disconnected_at], timeout=10)
