"""Session fixtures shared by tests/ and contract/: real servers, only the model is fake.

fake_upstream -> opencode serve (embedded in `gateway`, isolated) -> gateway (real uvicorn).
`tight_gateway` attaches to the same OpenCode with a short timeout and a small body limit.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import openai
import pytest

from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway import API_KEY, GatewayServer, free_port, gateway_config


@pytest.fixture(scope="session")
def fake_upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as fake:
        yield fake


@pytest.fixture(scope="session")
def gateway(fake_upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayServer]:
    tmp: Path = tmp_path_factory.mktemp("gateway")
    server = GatewayServer(gateway_config(tmp, fake_upstream.base_url)).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def tight_gateway(
    gateway: GatewayServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayServer]:
    """Attach mode, against the embedded gateway's OpenCode: 2 s timeout, 64 KiB bodies."""
    assert gateway.backend is not None and gateway.backend.process is not None
    process = gateway.backend.process
    from opencode_openai.config import Secret

    config = replace(
        gateway.config,
        port=free_port(),
        opencode_url=process.url,
        opencode_password=Secret(process.password),
        timeout_s=2.0,
        max_body_bytes=64 * 1024,
        state_dir=tmp_path_factory.mktemp("tight") / "state",
    )
    server = GatewayServer(config).start()
    yield server
    server.stop()


@pytest.fixture
def client(gateway: GatewayServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.base_url, api_key=API_KEY, max_retries=0, timeout=30)


@pytest.fixture
def http(gateway: GatewayServer) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {API_KEY}"}
    with httpx.Client(base_url=gateway.url, headers=headers, timeout=30) as c:
        yield c


@pytest.fixture
def marker(request: pytest.FixtureRequest) -> str:
    """A string unique to the test, put in its messages so its upstream script is its own."""
    return f"[{request.node.name}]"
