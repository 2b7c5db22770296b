"""OPENAI_PROXY_TIMEOUT covers the whole request, its set-up included.

A gateway attached to the real OpenCode through a proxy that holds the requests of one
set-up step at a time: loading a client tool set (its instance's event stream), creating a
session, sending the prompt. Each time the client gets 504 within the timeout (plus a little),
naming what took too long, and the gateway serves the next request as usual.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support import fake_upstream as fu
from tests.support.gateway import API_KEY, GatewayServer, attached_to
from tests.support.stalling_proxy import StallingProxy

pytestmark = pytest.mark.opencode

TIMEOUT_S = 3.0
SLACK_S = 2.0
_tools = itertools.count()


@pytest.fixture(scope="module")
def proxy(gateway: GatewayServer) -> Iterator[StallingProxy]:
    assert gateway.backend is not None and gateway.backend.workers[0].process is not None
    stalling = StallingProxy(gateway.backend.workers[0].process.url).start()
    yield stalling
    stalling.stop()


@pytest.fixture(scope="module")
def tight(gateway: GatewayServer, proxy: StallingProxy) -> Iterator[GatewayServer]:
    server = attached_to(gateway, opencode_url=proxy.url, timeout_s=TIMEOUT_S)
    yield server
    server.stop()


def new_tool() -> dict[str, Any]:
    """A tool set the gateway has not seen: its first request loads a new OpenCode instance."""
    name = f"lookup_{next(_tools)}"
    return {"type": "function", "function": {"name": name, "parameters": {"type": "object"}}}


def ask(gateway: GatewayServer, content: str, **body: Any) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = httpx.post(
        f"{gateway.base_url}/chat/completions",
        json={
            "model": "fake/fake-model",
            "messages": [{"role": "user", "content": content}],
            **body,
        },
        headers={"Authorization": f"Bearer {API_KEY}"},
        timeout=TIMEOUT_S * 5,
    )
    return response, time.monotonic() - started


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize(
    ("stall", "doing"),
    [
        (r"^GET /event\?directory=.*toolsets", "loading the tool set"),
        (r"^POST /session\?directory=.*toolsets", "creating a session"),
        (r"^POST /session/[^/?]+/prompt_async", "sending the prompt"),
    ],
    ids=["tool-set", "session", "prompt"],
)
def test_a_stalled_set_up_step_ends_in_504_within_the_timeout(
    tight: GatewayServer,
    proxy: StallingProxy,
    fake_upstream: fu.FakeUpstream,
    marker: str,
    stall: str,
    doing: str,
    stream: bool,
) -> None:
    fake_upstream.script(marker, fu.text("served"))
    held = len(proxy.stalled)
    with proxy.stalling(stall):
        response, took = ask(tight, f"{marker} stalled", tools=[new_tool()], stream=stream)
    assert len(proxy.stalled) > held, "the step was not reached"
    assert response.status_code == 504, response.text
    error = response.json()["error"]
    assert "OPENAI_PROXY_TIMEOUT" in error["message"] and doing in error["message"]
    assert TIMEOUT_S * 0.9 < took < TIMEOUT_S + SLACK_S
    # Nothing stays stuck: the next request, the same tools and all, is served.
    response, _ = ask(tight, f"{marker} after", tools=[new_tool()])
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"] == "served"
