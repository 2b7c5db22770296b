"""Fixtures for the client compatibility tests (tests/clients).

Every client talks to the real gateway (real `opencode serve`, scripted fake upstream) through a
`RecordingProxy`, so that a test can also assert on what the client itself put on the wire.
`busy_gateway` is a second gateway on the same OpenCode that runs one turn at a time and queues
none: with one request held there, the next one gets the gateway's real 429.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest

from tests.clients._support import RecordingProxy
from tests.support.gateway import GatewayServer, free_port


@pytest.fixture(scope="session")
def proxy(gateway: GatewayServer) -> Iterator[RecordingProxy]:
    recorder = RecordingProxy(gateway.config.port).start()
    yield recorder
    recorder.stop()


@pytest.fixture(scope="session")
def busy_gateway(gateway: GatewayServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayServer]:
    """Attach mode on the session gateway's OpenCode; one turn at a time, none queued."""
    assert gateway.backend is not None and gateway.backend.process is not None
    from opencode_openai.config import Secret

    process = gateway.backend.process
    config = replace(
        gateway.config,
        port=free_port(),
        opencode_url=process.url,
        opencode_password=Secret(process.password),
        max_concurrent_turns=1,
        max_queued_turns=0,
        state_dir=tmp_path_factory.mktemp("busy") / "state",
    )
    server = GatewayServer(config).start()
    yield server
    server.stop()
