"""OpenCodeClient: a typed wrapper over the OpenCode v1 HTTP API, one method per endpoint.

Every call carries the gateway's workspace as `?directory=`, so it reaches the instance that has
the gateway's agent and plugin. httpx failures become BackendError subclasses here and nowhere
else.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx

from ..errors import BackendError, BackendTimeout, BackendUnavailable

__all__ = ["OpenCodeClient"]


class OpenCodeClient:
    def __init__(self, base_url: str, password: str | None, directory: str) -> None:
        auth = httpx.BasicAuth("opencode", password) if password else None
        self.base_url = base_url.rstrip("/")
        self.directory = directory
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            auth=auth,
            params={"directory": directory},
            timeout=httpx.Timeout(30.0, connect=2.0),
            limits=httpx.Limits(max_connections=512, max_keepalive_connections=64),
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.TimeoutException as exc:
            raise BackendTimeout(f"OpenCode did not answer {method} {path} in time") from exc
        except httpx.TransportError as exc:
            raise BackendUnavailable(f"OpenCode is not reachable at {self.base_url}") from exc
        if response.status_code == 401:
            raise BackendUnavailable(
                "OpenCode refused the gateway's password (OPENCODE_SERVER_PASSWORD)"
            )
        if response.status_code >= 400:
            raise BackendError(
                f"OpenCode answered {method} {path} with {response.status_code}: "
                f"{response.text[:300]}"
            )
        return response

    async def health(self, timeout: float = 1.0) -> dict[str, Any]:
        # A request sent while OpenCode is still starting can hang: keep this one short.
        response = await self._request("GET", "/global/health", timeout=timeout)
        result: dict[str, Any] = response.json()
        return result

    async def providers(self) -> dict[str, Any]:
        result: dict[str, Any] = (await self._request("GET", "/config/providers")).json()
        return result

    async def config(self) -> dict[str, Any]:
        result: dict[str, Any] = (await self._request("GET", "/config")).json()
        return result

    async def agents(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = (await self._request("GET", "/agent")).json()
        return result

    async def create_session(self, title: str) -> str:
        # Passing a title keeps OpenCode from making a hidden title-generation model call.
        response = await self._request("POST", "/session", json={"title": title})
        return str(response.json()["id"])

    async def prompt_async(self, session_id: str, body: dict[str, Any]) -> None:
        await self._request("POST", f"/session/{session_id}/prompt_async", json=body)

    async def abort(self, session_id: str) -> None:
        await self._request("POST", f"/session/{session_id}/abort")

    async def delete_session(self, session_id: str) -> None:
        await self._request("DELETE", f"/session/{session_id}")

    async def dispose_instance(self) -> None:
        await self._request("POST", "/instance/dispose")

    async def messages(self, session_id: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = (
            await self._request("GET", f"/session/{session_id}/message")
        ).json()
        return result

    async def sessions(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = (await self._request("GET", "/session")).json()
        return result

    @contextlib.asynccontextmanager
    async def event_lines(self) -> AsyncIterator[AsyncIterator[str]]:
        """The raw lines of `GET /event` for the workspace instance (one long-lived stream)."""
        timeout = httpx.Timeout(None, connect=2.0)
        try:
            async with self._http.stream("GET", "/event", timeout=timeout) as response:
                if response.status_code != 200:
                    raise BackendUnavailable(f"OpenCode /event answered {response.status_code}")
                yield response.aiter_lines()
        except httpx.TransportError as exc:
            raise BackendUnavailable("OpenCode's event stream broke") from exc
