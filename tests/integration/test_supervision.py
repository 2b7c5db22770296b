"""Supervision of the embedded OpenCode, through the whole gateway and the OS process table.

A crash loop is given up on (an `opencode` that exits at once), a lone worker being recycled
says so in /health while its turns wait, and a gateway stopped in the middle of a recycle
leaves no OpenCode process behind, whichever step the recycle was at.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from prometheus_client.parser import text_string_to_metric_families

from contract.transport import ValidatingTransport
from opencode_openai.app import create_app
from opencode_openai.backend.process import find_opencode
from opencode_openai.backend.worker import MAX_CRASHES, WorkerState, backoff_s
from opencode_openai.core.settings import GatewayConfig
from tests.support import fake_upstream as fu
from tests.support.gateway import API_KEY, GatewayServer, gateway_config

AUTH = {"Authorization": f"Bearer {API_KEY}"}
MODEL = "fake/fake-model"


def until(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll `condition` until it returns something truthy; that value."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)
    return value


def processes_with(fragment: bytes) -> list[int]:
    """Every running process (anyone's) whose command line contains `fragment`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            continue
        if fragment in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


def on_port(port: int) -> list[int]:
    """The `opencode serve` processes (or stand-ins) started for this port."""
    return processes_with(b"serve\0--port\0" + str(port).encode() + b"\0")


@contextlib.contextmanager
def serving(config: GatewayConfig) -> Iterator[str]:
    """The gateway in a real uvicorn, whether or not its OpenCode ever becomes ready."""
    server = uvicorn.Server(
        uvicorn.Config(create_app(config), host="127.0.0.1", port=config.port, log_level="error")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{config.port}"

    def answers() -> bool:
        with contextlib.suppress(httpx.HTTPError):
            return httpx.get(f"{url}/health", timeout=2).status_code in (200, 503)
        return False

    try:
        until(answers, 30, "the gateway to listen")
        yield url
    finally:
        server.should_exit = True
        thread.join(30)
        assert not thread.is_alive(), "the gateway did not stop"


def test_an_opencode_that_exits_at_once_is_given_up_on(tmp_path: Path) -> None:
    """The bound as shipped: MAX_CRASHES starts, backing off, then `failed` in /health and
    /metrics with OpenCode's last words (password hidden), and nothing left running."""
    binary = tmp_path / "opencode"
    binary.write_text(
        "#!/bin/sh\n"
        'here=$(dirname "$0")\n'
        'echo "$$ $(date +%s.%N)" >> "$here/runs"\n'
        'echo "$OPENCODE_SERVER_PASSWORD" > "$here/password"\n'
        'echo "fatal: cannot open the database (password $OPENCODE_SERVER_PASSWORD)" >&2\n'
        "exit 3\n"
    )
    binary.chmod(0o755)
    config = gateway_config(
        tmp_path, "http://127.0.0.1:9/v1", opencode_bin=str(binary), state_dir=tmp_path / "state"
    )
    transport = ValidatingTransport()  # every answer seen is held to the spec
    with serving(config) as url, httpx.Client(transport=transport, timeout=5) as http:

        def failed() -> httpx.Response | None:
            response = http.get(f"{url}/health")
            return response if response.json()["status"] == "failed" else None

        health = until(failed, 60, "/health to say failed")
        password = (tmp_path / "password").read_text().strip()
        assert health.status_code == 503
        assert password not in health.text
        backend = health.json()["backend"]
        assert backend["state"] == "failed" and backend["ready"] is False
        [worker] = backend["workers"]
        assert worker["state"] == "failed" and worker["pid"] is None
        assert worker["crashes"] == MAX_CRASHES and worker["restarts"] == MAX_CRASHES - 1
        assert "exited with status 3 while starting" in worker["error"]
        assert f"gave up after {MAX_CRASHES} crashes" in worker["error"]
        assert worker["error"] in backend["error"]
        assert worker["log_tail"] == ["fatal: cannot open the database (password **********)"]

        runs = [line.split() for line in (tmp_path / "runs").read_text().splitlines()]
        assert len(runs) == MAX_CRASHES
        starts = [float(at) for _, at in runs]
        for crash, (before, after) in enumerate(itertools.pairwise(starts), 1):
            assert after - before >= backoff_s(crash) - 0.05, (crash, starts)
        assert not processes_with(str(binary).encode())

        metrics = {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(
                httpx.get(f"{url}/metrics", headers=AUTH).text
            )
            for sample in family.samples
        }
        assert metrics[("opencode_openai_opencode_workers", (("state", "failed"),))] == 1
        assert metrics[("opencode_openai_opencode_workers", (("state", "ready"),))] == 0
        events = "opencode_openai_opencode_supervisor_events_total"
        assert metrics[(events, (("event", "give_up"),))] == 1
        assert metrics[(events, (("event", "restart"),))] == MAX_CRASHES - 1
        assert metrics[("opencode_openai_opencode_processes", ())] == 0

        chat = http.post(
            f"{url}/v1/chat/completions",
            headers=AUTH,
            json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}]},
        )
        assert chat.status_code == 503 and "has failed" in chat.json()["error"]["message"]
        assert password not in chat.text
    transport.assert_clean()
    assert len((tmp_path / "runs").read_text().splitlines()) == MAX_CRASHES


@pytest.fixture
def recycling_gateway(fake_upstream: fu.FakeUpstream, tmp_path: Path) -> Iterator[GatewayServer]:
    """A lone worker recycled after every turn. Its `opencode` is the pinned one under a shell
    that outlives SIGTERM by 1.5 s, so that each step of a recycle lasts long enough to be seen
    (the shell and OpenCode share the process group that the gateway signals)."""
    wrapper = tmp_path / "opencode"
    wrapper.write_text(
        f'#!/bin/sh\ntrap \'sleep 1.5; exit 0\' TERM\n"{find_opencode(None)}" "$@" &\nwait $!\n'
    )
    wrapper.chmod(0o755)
    config = gateway_config(
        tmp_path,
        fake_upstream.base_url,
        opencode_bin=str(wrapper),
        recycle_after_turns=1,
        timeout_s=60.0,
    )
    server = GatewayServer(config).start()
    yield server
    server.stop()


def chat(gateway: GatewayServer, content: str) -> httpx.Response:
    return httpx.post(
        f"{gateway.base_url}/chat/completions",
        headers=AUTH,
        timeout=60,
        json={"model": MODEL, "messages": [{"role": "user", "content": content}]},
    )


@pytest.mark.opencode
def test_a_lone_recycling_worker_reports_recycling_and_its_turns_wait(
    recycling_gateway: GatewayServer, fake_upstream: fu.FakeUpstream, marker: str
) -> None:
    gateway = recycling_gateway
    fake_upstream.script(marker, fu.text("ok"))
    assert chat(gateway, f"{marker} first").status_code == 200

    transport = ValidatingTransport()
    with httpx.Client(transport=transport, timeout=5) as http:

        def recycling() -> httpx.Response | None:
            response = http.get(f"{gateway.url}/health")
            return response if response.json()["status"] == "recycling" else None

        health = until(recycling, 30, "/health to say recycling")
        during = chat(gateway, f"{marker} during the recycle")
    transport.assert_clean()
    assert health.status_code == 200
    backend = health.json()["backend"]
    assert backend["state"] == "recycling" and backend["ready"] is True
    assert [w["state"] for w in backend["workers"]] == ["recycling"]
    assert during.status_code == 200, during.text
    assert during.json()["choices"][0]["message"]["content"] == "ok"
    after = httpx.get(f"{gateway.url}/health").json()["backend"]["workers"][0]
    assert after["recycles"] >= 1 and after["restarts"] == 0


@pytest.mark.opencode
@pytest.mark.parametrize("step", ["old process stopping", "new process warming up"])
def test_stop_during_a_recycle_leaves_no_opencode_process(
    recycling_gateway: GatewayServer, fake_upstream: fu.FakeUpstream, marker: str, step: str
) -> None:
    gateway = recycling_gateway
    assert gateway.backend is not None
    worker = gateway.backend.workers[0]
    assert worker.process is not None
    process, old = worker.process, worker.process.pid
    assert old in on_port(process.port)
    fake_upstream.script(marker, fu.text("ok"))
    assert chat(gateway, marker).status_code == 200

    def at_step() -> bool:
        if worker.state is not WorkerState.RECYCLING:
            return False
        if step == "old process stopping":
            return process.pid == old
        return process.pid not in (None, old)

    until(at_step, 30, f"the recycle to reach: {step}")
    seen = on_port(process.port)
    assert seen, "an OpenCode process runs at this step"
    gateway.stop()
    assert gateway.backend.workers[0].state is WorkerState.STOPPED
    assert not on_port(process.port), json.dumps({"seen": seen, "step": step})
