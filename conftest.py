"""Session fixtures shared by tests/ and contract/: real servers, only the model is fake.

fake_upstream -> opencode serve (embedded in `gateway`, isolated) -> gateway (real uvicorn).
`tight_gateway` attaches to the same OpenCode with a short timeout and a small body limit.
`opencode_turns` follows that OpenCode's events, so tests can wait for a turn to be over.

A request the fake upstream has no script for fails the test that sent it (see
`_no_unscripted_upstream_requests`).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import openai
import pytest

from contract.transport import ValidatingTransport
from opencode_openai.core.settings import Secret
from tests.support.fake_upstream import FakeUpstream, RecordedRequest
from tests.support.gateway import (
    API_KEY,
    CORS_ORIGIN,
    SECOND_KEY,
    STATE_DIR,
    GatewayServer,
    attached_to,
    gateway_config,
)
from tests.support.opencode_turns import OpenCodeTurns
from tests.support.redis_server import RedisServer


@pytest.fixture(scope="session", autouse=True)
def _state_dir() -> Iterator[None]:
    """The run's gateway state (OpenCode home, workspaces, logs) goes when the run ends."""
    yield
    shutil.rmtree(STATE_DIR, ignore_errors=True)


@dataclass
class _Unscripted:
    """Who sent the fake upstream's unscripted requests; `checked` is where to look from."""

    fake: FakeUpstream | None = None
    markers: dict[str, str] = field(default_factory=dict)  # marker -> test (node id)
    checked: int = 0
    #: Unscripted requests of no running test (sent by one that had ended, or between tests).
    orphans: list[str] = field(default_factory=list)

    def new(self) -> list[RecordedRequest]:
        """The unscripted requests since the last look."""
        if self.fake is None:
            return []
        until = self.fake.next_seq
        found = [r for r in self.fake.unscripted if self.checked <= r.seq < until]
        self.checked = until
        return found

    def owner(self, record: RecordedRequest) -> str | None:
        """The test whose marker the request carries, if any."""
        text = json.dumps(record.body, ensure_ascii=False)
        return next((test for marker, test in self.markers.items() if marker in text), None)


_UNSCRIPTED = pytest.StashKey[_Unscripted]()


def _ledger(config: pytest.Config) -> _Unscripted:
    return config.stash.setdefault(_UNSCRIPTED, _Unscripted())


def _describe(record: RecordedRequest) -> str:
    messages = record.body.get("messages") if isinstance(record.body, dict) else None
    last = json.dumps(messages[-1] if messages else record.body, ensure_ascii=False)
    return f"#{record.seq} {record.method} {record.path} at step {record.step}: {last[:300]}"


@pytest.fixture(scope="session")
def fake_upstream(pytestconfig: pytest.Config) -> Iterator[FakeUpstream]:
    ledger = _ledger(pytestconfig)
    with FakeUpstream() as fake:
        ledger.fake, ledger.checked = fake, fake.next_seq
        yield fake
        ledger.orphans += [f"{_describe(r)} (after the last test)" for r in ledger.new()]
        ledger.fake = None


@pytest.fixture(autouse=True)
def _no_unscripted_upstream_requests(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail a test whose requests reached the fake upstream without a script.

    The fake is shared by the whole run, so a test answers only for its own: the unscripted
    requests that arrived while it ran, unless they carry another test's marker. Those, and
    any that arrived between tests, fail the run at its end (`pytest_sessionfinish`).
    """
    ledger = _ledger(request.config)
    ledger.orphans += [f"{_describe(r)} (between tests)" for r in ledger.new()]
    yield
    mine: list[str] = []
    for record in ledger.new():
        owner = ledger.owner(record)
        if owner is None or owner == request.node.nodeid:
            mine.append(_describe(record))
        else:
            ledger.orphans.append(f"{_describe(record)} (sent for {owner}, arrived later)")
    if mine:
        pytest.fail(
            "the fake upstream got requests no script answers (script them with "
            "fake_upstream.script()):\n  " + "\n  ".join(mine),
            pytrace=False,
        )


def pytest_sessionfinish(session: pytest.Session) -> None:
    if session.config.stash.get(_UNSCRIPTED, _Unscripted()).orphans:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    orphans = config.stash.get(_UNSCRIPTED, _Unscripted()).orphans
    if orphans:
        terminalreporter.section("unscripted fake upstream requests of no running test", red=True)
        for line in orphans:
            terminalreporter.line(line)
        terminalreporter.line("(these fail the run: script them, or find which test sent them)")


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One real redis-server for the run (started by the first test that asks for it); each
    test that uses it takes a key prefix of its own."""
    server = RedisServer().start()
    yield server
    server.stop()


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
    """httpx with the API key on the gateway; every response and chunk is checked against
    the contract."""
    headers = {"Authorization": f"Bearer {API_KEY}"}
    transport = ValidatingTransport()
    with httpx.Client(base_url=gateway.url, headers=headers, timeout=30, transport=transport) as c:
        yield c
    transport.assert_clean()


@pytest.fixture(scope="session")
def opencode_turns(gateway: GatewayServer) -> Iterator[OpenCodeTurns]:
    """The session gateway's OpenCode, followed on its event stream: `wait_over(marker)`
    returns once OpenCode is done with the turn (then counting upstream calls means something)."""
    assert gateway.backend is not None and gateway.backend.workers[0].process is not None
    process = gateway.backend.workers[0].process
    with OpenCodeTurns(process.url, process.password) as turns:
        yield turns


@pytest.fixture
def marker(request: pytest.FixtureRequest) -> str:
    """A string unique to the test, put in its messages so its upstream script is its own
    (two modules may hold tests of the same name: their node ids tell them apart)."""
    digest = hashlib.blake2b(request.node.nodeid.encode(), digest_size=3).hexdigest()
    marker = f"[{request.node.name} {digest}]"
    _ledger(request.config).markers[marker] = request.node.nodeid
    return marker
