"""OpenCodeClient: a typed wrapper over the OpenCode v1 HTTP API, one method per endpoint.

Each client speaks for one workspace: every call carries it as `?directory=`, so it reaches the
OpenCode instance that has the gateway's agent and plugin. The clients of one OpenCode process
share one connection pool (`connection_pool`). It is aiohttp's: a call costs about a third of
the CPU an httpx call does (its pool scan and URL building were the largest item of the
gateway's own CPU, see bench/), and this is the hot path. aiohttp failures become BackendError
subclasses here and nowhere else.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any
from urllib.parse import quote

import aiohttp

from opencode_openai.core.errors import BackendError, BackendTimeout, BackendUnavailable

__all__ = ["OpenCodeClient", "connection_pool"]

_LARGE_BODY = 1 << 20
_DEFAULT_TIMEOUT = aiohttp.ClientTimeout(total=30.0, sock_connect=2.0)
#: The event stream lives as long as the gateway: only its opening is bounded.
_STREAM_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=2.0, sock_read=None)
_STREAM_OPEN_S = 5.0


def connection_pool(base_url: str, password: str | None) -> aiohttp.ClientSession:
    """The HTTP connection pool to one OpenCode server (Basic auth with its password).

    Proxy variables are not read (`trust_env` off): OpenCode is the gateway's own backend.
    """
    headers = (
        {"Authorization": aiohttp.BasicAuth("opencode", password).encode()} if password else {}
    )
    return aiohttp.ClientSession(
        base_url=base_url.rstrip("/"),
        headers=headers,
        timeout=_DEFAULT_TIMEOUT,
        connector=aiohttp.TCPConnector(limit=512, keepalive_timeout=30.0),
    )


class OpenCodeClient:
    def __init__(self, pool: aiohttp.ClientSession, directory: str) -> None:
        self._pool = pool
        self.directory = directory
        self._query = f"?directory={quote(directory, safe='')}"

    async def _request(
        self, method: str, path: str, *, json_body: Any = None, timeout: float | None = None
    ) -> Any:
        """One call; the decoded JSON answer (None when there is no body)."""
        data: bytes | io.BytesIO | None = None
        if json_body is not None:
            data = json.dumps(json_body).encode()
            if len(data) > _LARGE_BODY:
                data = io.BytesIO(data)  # written in chunks, as aiohttp asks for large bodies
        try:
            async with self._pool.request(
                method,
                path + self._query,
                data=data,
                headers={"Content-Type": "application/json"} if data is not None else None,
                # Not None: for aiohttp, None means no limit at all, not the pool's default.
                timeout=aiohttp.ClientTimeout(total=timeout) if timeout else self._pool.timeout,
            ) as response:
                body = await response.read()
        except TimeoutError as exc:
            raise BackendTimeout(f"OpenCode did not answer {method} {path} in time") from exc
        except aiohttp.ClientError as exc:
            raise BackendUnavailable(f"OpenCode is not reachable ({exc})") from exc
        if response.status == 401:
            raise BackendUnavailable(
                "OpenCode refused the gateway's password (OPENCODE_SERVER_PASSWORD)"
            )
        if response.status >= 400:
            text = body[:300].decode("utf-8", "replace")
            raise BackendError(f"OpenCode answered {method} {path} with {response.status}: {text}")
        return json.loads(body) if body else None

    async def health(self, timeout: float = 1.0) -> dict[str, Any]:
        # A request sent while OpenCode is still starting can hang: keep this one short.
        result: dict[str, Any] = await self._request("GET", "/global/health", timeout=timeout)
        return result

    async def providers(self) -> dict[str, Any]:
        result: dict[str, Any] = await self._request("GET", "/config/providers")
        return result

    async def config(self) -> dict[str, Any]:
        result: dict[str, Any] = await self._request("GET", "/config")
        return result

    async def agents(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self._request("GET", "/agent")
        return result

    async def create_session(self, title: str) -> str:
        # Passing a title keeps OpenCode from making a hidden title-generation model call.
        session = await self._request("POST", "/session", json_body={"title": title})
        return str(session["id"])

    async def prompt_async(self, session_id: str, body: dict[str, Any]) -> None:
        await self._request("POST", f"/session/{session_id}/prompt_async", json_body=body)

    async def abort(self, session_id: str) -> None:
        await self._request("POST", f"/session/{session_id}/abort")

    async def delete_session(self, session_id: str) -> None:
        await self._request("DELETE", f"/session/{session_id}")

    async def dispose_instance(self) -> None:
        await self._request("POST", "/instance/dispose")

    async def message(self, session_id: str, message_id: str) -> dict[str, Any]:
        """One message of a session, `{info, parts}`."""
        result: dict[str, Any] = await self._request(
            "GET", f"/session/{session_id}/message/{message_id}"
        )
        return result

    async def messages(self, session_id: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self._request("GET", f"/session/{session_id}/message")
        return result

    @contextlib.asynccontextmanager
    async def event_data(self) -> AsyncIterator[AsyncIterator[bytes]]:
        """The `data:` payloads (JSON text) of `GET /event`: one long-lived stream per instance."""
        try:
            # An OpenCode still starting may take the request and never answer it: bound the
            # wait for the stream's head (the caller retries), not the stream itself.
            async with asyncio.timeout(_STREAM_OPEN_S):
                response = await self._pool.get("/event" + self._query, timeout=_STREAM_TIMEOUT)
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise BackendUnavailable("OpenCode's event stream did not open") from exc
        try:
            if response.status != 200:
                raise BackendUnavailable(f"OpenCode /event answered {response.status}")
            yield _sse_data(response.content.iter_any())
        except aiohttp.ClientError as exc:
            raise BackendUnavailable("OpenCode's event stream broke") from exc
        finally:
            response.close()


async def _sse_data(chunks: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
    """Split the stream's reads into lines and keep the `data:` ones (each one JSON event).

    Not `readline()`: aiohttp refuses lines above its buffer size, and an event carrying a long
    answer is one long line. Partial lines are joined once, so a huge event costs linear time.
    """
    pending: list[bytes] = []
    async for chunk in chunks:
        *complete, rest = chunk.split(b"\n")
        if complete:
            if pending:
                complete[0] = b"".join([*pending, complete[0]])
                pending = []
            for line in complete:
                if line.startswith(b"data:"):
                    yield line[5:]
        if rest:
            pending.append(rest)
