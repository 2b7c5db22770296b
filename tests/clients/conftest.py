"""Fixtures for the client compatibility tests (tests/clients).

Every client talks to the real gateway (real `opencode serve`, scripted fake upstream) through a
`RecordingProxy`, so that a test can also assert on what the client itself put on the wire.
`busy_gateway` is a second gateway on the same OpenCode that runs one turn at a time and queues
none: with one request held there, the next one gets the gateway's real 429.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.clients._support import RecordingProxy
from tests.support.gateway import GatewayServer, attached_to


@pytest.fixture(scope="session")
def proxy(gateway: GatewayServer) -> Iterator[RecordingProxy]:
    recorder = RecordingProxy(gateway.config.port).start()
    yield recorder
    recorder.stop()


@pytest.fixture(scope="session")
def busy_gateway(gateway: GatewayServer) -> Iterator[GatewayServer]:
    """Attach mode on the session gateway's OpenCode; one turn at a time, none queued."""
    server = attached_to(gateway, max_concurrent_turns=1, max_queued_turns=0)
    yield server
    server.stop()
