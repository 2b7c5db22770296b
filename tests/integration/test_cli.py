"""The `opencode-openai server-openai` command as a user runs it: a real subprocess."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway import free_port, fresh_state_dir, opencode_config

COMMAND = [sys.executable, "-m", "opencode_openai.cli.main", "server-openai"]


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_PROXY_", "OPENCODE_"))}
    return {**env, **extra}


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*COMMAND, *args], capture_output=True, text=True, timeout=30, env=env or clean_env()
    )


def test_non_loopback_without_key_is_refused_with_exit_2() -> None:
    result = run_cli("--host", "0.0.0.0", "--port", str(free_port()))
    assert result.returncode == 2
    assert "without an API key" in result.stderr
    assert "Traceback" not in result.stderr


def test_no_auth_beyond_loopback_is_refused() -> None:
    result = run_cli("--host", "0.0.0.0", "--no-auth", "--port", str(free_port()))
    assert result.returncode == 2
    assert "--no-auth" in result.stderr


def test_port_in_use_is_one_line_not_a_traceback() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_cli("--port", str(port))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "already in use" in lines[0]


def test_help_lists_the_documented_options() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    for option in (
        "--port",
        "--host",
        "--api-key",
        "--key",
        "--no-auth",
        "--opencode-url",
        "--opencode-bin",
        "--opencode-config",
        "--isolated",
        "OPENAI_PROXY_TIMEOUT",
    ):
        assert option in result.stdout


def accepting(port: int) -> bool:
    """Whether something accepts TCP connections on the port (asked without a request)."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except OSError:
        return False
    return True


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except FileNotFoundError:
        return False
    return state != "Z"


@pytest.fixture
def started(
    fake_upstream: FakeUpstream, tmp_path: Path
) -> Iterator[tuple[subprocess.Popen[str], list[str], int]]:
    config = tmp_path / "extra.json"
    config.write_text(json.dumps(opencode_config(fake_upstream.base_url)))
    port = free_port()
    proc = subprocess.Popen(
        [
            *COMMAND,
            "--port",
            str(port),
            "--isolated",
            "--opencode-config",
            str(config),
            "--state-dir",
            str(fresh_state_dir()),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=clean_env(),
    )
    lines: list[str] = []
    assert proc.stdout is not None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip())
        if "ready:" in line:
            break
    yield proc, lines, port
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    proc.stdout.close()


@pytest.mark.opencode
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL])
def test_generated_key_ready_line_and_no_orphan_on_exit(
    started: tuple[subprocess.Popen[str], list[str], int], sig: signal.Signals
) -> None:
    proc, lines, port = started
    key_line = next(line for line in lines if line.startswith("Generated API key"))
    key = key_line.split(": ", 1)[1]
    assert any(
        f"curl http://127.0.0.1:{port}/v1/models -H 'Authorization: Bearer {key}'" in line
        for line in lines
    )
    ready = lines[-1]
    assert re.search(
        rf"ready: http://127\.0\.0\.1:{port}/v1 \(key {re.escape(key)}\), 4 models", ready
    ), ready
    assert (
        sum(key in line for line in lines) == 3
    )  # printed at start-up only: key line, curl, ready

    models = httpx.get(
        f"http://127.0.0.1:{port}/v1/models", headers={"Authorization": f"Bearer {key}"}
    )
    assert models.status_code == 200
    opencode_pids = [
        pid for pid in children(proc.pid) if "opencode" in Path(f"/proc/{pid}/cmdline").read_text()
    ]
    assert len(opencode_pids) == 1

    proc.send_signal(sig)
    code = proc.wait(timeout=30)
    assert code == (-signal.SIGKILL if sig == signal.SIGKILL else 0)
    deadline = time.monotonic() + 10
    while alive(opencode_pids[0]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(opencode_pids[0]), "opencode serve outlived the gateway"


@pytest.mark.opencode
@pytest.mark.parametrize(("grace", "finishes"), [("20", True), ("0.5", False)])
def test_sigterm_lets_running_streams_finish_within_the_grace(
    fake_upstream: FakeUpstream, tmp_path: Path, grace: str, finishes: bool
) -> None:
    """SIGTERM: stop accepting, let running streams finish (up to the grace), abort the rest,
    stop OpenCode, exit 0."""
    from tests.support import fake_upstream as fu

    marker = f"[graceful-{grace}]"
    fake_upstream.script(marker, fu.text(["start "] + ["more "] * 12, chunk_delay_s=0.25))
    config = tmp_path / "extra.json"
    config.write_text(json.dumps(opencode_config(fake_upstream.base_url)))
    port = free_port()
    proc = subprocess.Popen(
        [
            *COMMAND,
            "--port",
            str(port),
            "--isolated",
            "--opencode-config",
            str(config),
            "--state-dir",
            str(fresh_state_dir()),
            "--key",
            "sk-graceful",
            "--shutdown-grace",
            grace,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=clean_env(),
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if "ready:" in line:
                break
        opencode_pid = next(
            p for p in children(proc.pid) if "opencode" in Path(f"/proc/{p}/cmdline").read_text()
        )
        body = {
            "model": "fake/fake-model",
            "stream": True,
            "messages": [{"role": "user", "content": marker}],
        }
        with httpx.stream(
            "POST",
            f"http://127.0.0.1:{port}/v1/chat/completions",
            json=body,
            headers={"Authorization": "Bearer sk-graceful"},
            timeout=30,
        ) as response:
            lines = response.iter_lines()
            for line in lines:
                if "start" in line:
                    break
            proc.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            # It stops accepting within a second (while the stream runs on).
            FakeUpstream.wait_for(lambda: not accepting(port), timeout=1.0)
            with pytest.raises(httpx.ConnectError):
                httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
            rest = []
            with contextlib.suppress(httpx.ReadError, httpx.RemoteProtocolError):
                rest += [line[6:] for line in lines if line.startswith("data: ")]
        text = "start " + "".join(
            json.loads(d)["choices"][0]["delta"].get("content") or ""
            for d in rest
            if d.startswith("{") and json.loads(d).get("choices")
        )
        if finishes:
            assert rest[-1] == "[DONE]" and text == "start " + "more " * 12
        else:
            assert text != "start " + "more " * 12, "the stream outlived the grace period"
            [received] = fake_upstream.chat_requests(marker)
            # The abort at the end of the grace closes it at once: give it half a second.
            with contextlib.suppress(TimeoutError):
                closed_by = signalled + float(grace) + 0.5
                fake_upstream.wait_for(
                    lambda: received.disconnected_at, timeout=closed_by - time.monotonic()
                )
            assert received.disconnected_at is not None, (
                "the aborted turn's upstream call was closed"
            )
        assert proc.wait(timeout=30) == 0
        deadline = time.monotonic() + 10
        while alive(opencode_pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not alive(opencode_pid)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()  # type: ignore[union-attr]
