"""Two gateways on one machine never mix: each owns its state dir, and answers from its own
providers only.

Found on an earlier main: both used the default state dir, so the second overwrote the first's
generated OpenCode config, and a tools request to the first was answered by the second's
provider. Here two gateways run at once, each with its own fake upstream behind the same
provider name (`fake`), with and without client tools.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import fake_upstream as fu
from tests.support.gateway import API_KEY, GatewayServer, free_port, gateway_config

pytestmark = pytest.mark.opencode

MODEL = "fake/fake-model"
TOOL = {
    "type": "function",
    "function": {
        "name": "lookup",
        "description": "Look something up.",
        "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
    },
}


@pytest.fixture(scope="module")
def other_upstream() -> Iterator[fu.FakeUpstream]:
    with fu.FakeUpstream() as fake:
        yield fake


@pytest.fixture(scope="module")
def other_gateway(
    other_upstream: fu.FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayServer]:
    server = GatewayServer(
        gateway_config(tmp_path_factory.mktemp("other"), other_upstream.base_url)
    ).start()
    yield server
    server.stop()


def ask(gateway: GatewayServer, content: str, *, tools: bool) -> str:
    body = {"model": MODEL, "messages": [{"role": "user", "content": content}]}
    if tools:
        body["tools"] = [TOOL]
    reply = httpx.post(
        f"{gateway.base_url}/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {API_KEY}"},
        timeout=30,
    )
    assert reply.status_code == 200, reply.text
    content_out: str = reply.json()["choices"][0]["message"]["content"]
    return content_out


@pytest.mark.parametrize("tools", [False, True], ids=["plain", "tools"])
def test_each_gateway_is_answered_by_its_own_upstream_only(
    gateway: GatewayServer,
    fake_upstream: fu.FakeUpstream,
    other_gateway: GatewayServer,
    other_upstream: fu.FakeUpstream,
    marker: str,
    tools: bool,
) -> None:
    assert gateway.config.state_dir != other_gateway.config.state_dir
    first, second = f"{marker} first", f"{marker} second"
    for fake, name in ((fake_upstream, "first"), (other_upstream, "second")):
        fake.script(f"{marker} first", fu.text(f"{name} upstream answers the first"))
        fake.script(f"{marker} second", fu.text(f"{name} upstream answers the second"))
    # Interleaved, so that neither gateway's OpenCode config can be the last one written.
    assert ask(gateway, first, tools=tools) == "first upstream answers the first"
    assert ask(other_gateway, second, tools=tools) == "second upstream answers the second"
    assert ask(gateway, first, tools=tools) == "first upstream answers the first"
    assert len(fake_upstream.chat_requests(first)) == 2
    assert other_upstream.chat_requests(first) == []
    assert len(other_upstream.chat_requests(second)) == 1
    assert fake_upstream.chat_requests(second) == []


def test_a_second_gateway_on_a_held_state_dir_is_refused(
    gateway: GatewayServer, tmp_path: Path
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "opencode_openai.cli.main", "server-openai",
         "--port", str(free_port()),
         "--state-dir", str(gateway.config.state_dir), "--no-auth"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert f"pid {os.getpid()}" in line
    assert str(gateway.config.state_dir) in line and "--state-dir" in line
