"""Session fixtures shared by tests/ and contract/: real servers, only the model is fake.

fake_upstream -> opencode serve (embedded in `gateway`, isolated) -> gateway (real uvicorn).
`tight_gateway` attaches to the same OpenCode with a short timeout and a small body limit.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from contract.transport import ValidatingTransport
from opencode_openai.core.settings import Secret
from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway import (
    API_KEY,
    CORS_ORIGIN,
    SECOND_KEY,
    STATE_DIR,
    GatewayServer,
    attached_to,
    gateway_config,
)


@pytest.fixture(scope="session", autouse=True)
def _state_dir() -> Iterator[None]:
    """The run's gateway state (OpenCode home, workspaces, logs) goes when the run ends."""
    yield
    shutil.rmtree(STATE_DIR, ignore_errors=True)


@pytest.fixture(scope="session")
def fake_upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as fake:
        yield fake


@pytest.fixture(scope="session")
def gateway(
    fake_upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayServer]:
    tmp: Path = tmp_path_factory.mktemp("gateway")
    server = GatewayServer(gateway_config(tmp, fake_upstream.base_url)).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def tight_gateway(gateway: GatewayServer) -> Iterator[GatewayServer]:
    """Attach mode, against the embedded gateway's OpenCode: 3 s timeout, 64 KiB bodies,
    2 turns running + 2 queued, CORS for one origin, and a second key."""
    server = attached_to(
        gateway,
        timeout_s=3.0,
        max_body_bytes=64 * 1024,
        max_concurrent_turns=2,
        max_queued_turns=2,
        cors_origins=(CORS_ORIGIN,),
        api_keys=(Secret(API_KEY), Secret(SECOND_KEY)),
    )
    yield server
    server.stop()


@pytest.fixture
def client(gateway: GatewayServer) -> Iterator[openai.OpenAI]:
    """The openai SDK on the gateway; every response and chunk is checked against the contract."""
    transport = ValidatingTransport()
    with httpx.Client(transport=transport, timeout=30) as http_client:
        yield openai.OpenAI(
            base_url=gateway.base_url,
            api_key=API_KEY,
            max_retries=0,
            timeout=30,
            http_client=http_client,
        )
    transport.assert_clean()


@pytest.fixture
def http(gateway: GatewayServer) -> Iterator[httpx.Client]:
    """httpx with the API key on the gateway; every response and chunk is checked against the contract."""
    headers = {"Authorization": f"Bearer {API_KEY}"}
    transport = ValidatingTransport()
    with httpx.Client(base_url=gateway.url, headers=headers, timeout=30, transport=transport) as c:
        yield c
    transport.assert_clean()


@pytest.fixture
def marker(request: pytest.FixtureRequest) -> str:
    """A string unique to the test, put in its messages so its upstream script is its own."""
    return f"[{request.node.name}]"
