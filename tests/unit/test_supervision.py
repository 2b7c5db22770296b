"""OpenCode supervision, driven with real processes: tiny `opencode` scripts that misbehave.

No OpenCode here (tests/integration/test_supervision.py has that): the scripts stand in for a
binary that exits at once, never answers, or will not die, and every check of what is running
reads the OS process table (/proc), not the worker's own idea of it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from opencode_openai.backend import OpenCodeBackend
from opencode_openai.backend import worker as worker_module
from opencode_openai.backend.process import RUN_MARK, OpenCodeProcess
from opencode_openai.backend.worker import (
    BACKOFF_MAX_S,
    MAX_CRASHES,
    OpenCodeWorker,
    WorkerState,
    backoff_s,
)
from opencode_openai.core.errors import BackendUnavailable
from opencode_openai.core.metrics import WORKER_STATES
from opencode_openai.core.settings import GatewayConfig

#: Each script notes its pid (and those of its children) in `pids` beside itself.
NOTE_PID = 'echo $$ >> "$(dirname "$0")/pids"\n'


def script(directory: Path, body: str) -> Path:
    path = directory / "opencode"
    path.write_text("#!/bin/sh\n" + NOTE_PID + body)
    path.chmod(0o755)
    return path


def pids(directory: Path) -> list[int]:
    path = directory / "pids"
    return [int(line) for line in path.read_text().split()] if path.exists() else []


def _stat(pid: int | str) -> list[str] | None:
    """/proc/<pid>/stat from the state on (state, ppid, ...); None once it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None


def running(pid: int) -> bool:
    """In the process table and not a zombie."""
    stat = _stat(pid)
    return stat is not None and stat[0] != "Z"


def our_children(directory: Path) -> list[int]:
    """Running processes whose parent is this test process and that run a script of
    `directory` (one killed before it noted its pid is still found here; other tests'
    children are not)."""
    me = str(os.getpid())
    return [
        int(entry.name)
        for entry in Path("/proc").iterdir()
        if entry.name.isdigit()
        and (stat := _stat(entry.name)) is not None
        and stat[1] == me
        and stat[0] != "Z"
        and str(directory).encode() in _cmdline(entry.name)
    ]


def _cmdline(pid: str) -> bytes:
    try:
        return (Path("/proc") / pid / "cmdline").read_bytes()
    except OSError:
        return b""


def runs(state_dir: Path) -> int:
    """Runs the gateway marked in the OpenCode log."""
    return (state_dir / "opencode.log").read_text().count(RUN_MARK)


async def until(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


def state_of(worker: OpenCodeWorker) -> WorkerState:
    """The worker's state now (a call, so that no earlier check is taken to still hold)."""
    return worker.state


def supervisors() -> list[asyncio.Task[object]]:
    return [
        t
        for t in asyncio.all_tasks()
        if t.get_name().startswith("opencode-supervisor") and not t.done()
    ]


def config_for(tmp_path: Path, binary: Path, **overrides: Any) -> GatewayConfig:
    config = GatewayConfig(
        opencode_bin=str(binary),
        state_dir=tmp_path / "state",
        isolated=True,
        startup_timeout_s=5.0,
    )
    return replace(config, **overrides)


@pytest.fixture
def quick_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """The crash-loop bound as shipped; only the waits between respawns are shortened."""
    monkeypatch.setattr(worker_module, "BACKOFF_FIRST_S", 0.01)


def test_backoff_doubles_up_to_its_cap() -> None:
    delays = [backoff_s(n) for n in range(1, 8)]
    assert delays[:4] == [0.5, 1.0, 2.0, 4.0]
    assert delays == sorted(delays) and max(delays) == BACKOFF_MAX_S


def test_the_metrics_know_every_worker_state() -> None:
    assert set(WORKER_STATES) == {state.value for state in WorkerState}


async def test_an_opencode_that_exits_at_once_is_given_up_on(
    tmp_path: Path, quick_backoff: None, caplog: pytest.LogCaptureFixture
) -> None:
    binary = script(
        tmp_path,
        "printf '\\033[31mfatal\\033[0m: no config (password %s)\\n' "
        '"$OPENCODE_SERVER_PASSWORD" >&2\n'
        "exit 3\n",
    )
    worker = OpenCodeWorker(config_for(tmp_path, binary), 0)
    with caplog.at_level(logging.INFO, logger="opencode_openai"), pytest.raises(BackendUnavailable):
        await worker.start()
    assert state_of(worker) is WorkerState.FAILED
    assert len(pids(tmp_path)) == runs(tmp_path / "state") == MAX_CRASHES
    assert not any(running(pid) for pid in pids(tmp_path)) and not our_children(tmp_path)
    assert not supervisors(), "nothing is left to spawn it again"

    assert worker.process is not None
    password = worker.process.password
    health = worker.health()
    assert health["state"] == "failed" and health["pid"] is None
    assert health["crashes"] == MAX_CRASHES and health["restarts"] == MAX_CRASHES - 1
    assert "exited with status 3 while starting" in health["error"]
    assert f"gave up after {MAX_CRASHES} crashes" in health["error"]
    assert health["log_tail"] == ["fatal: no config (password **********)"]
    assert password not in json.dumps(health)
    gave_up = [r.getMessage() for r in caplog.records if "gave up" in r.getMessage()]
    assert len(gave_up) == 1 and "fatal: no config" in gave_up[0]
    assert password not in caplog.text

    await worker.stop()
    assert state_of(worker) is WorkerState.STOPPED
    assert len(pids(tmp_path)) == MAX_CRASHES


async def test_a_run_that_never_answers_is_ended_and_counted(
    tmp_path: Path, quick_backoff: None
) -> None:
    binary = script(tmp_path, "exec sleep 600\n")
    worker = OpenCodeWorker(config_for(tmp_path, binary, startup_timeout_s=0.3), 0)
    with pytest.raises(BackendUnavailable, match="did not warm up"):
        await worker.start()
    assert state_of(worker) is WorkerState.FAILED
    assert runs(tmp_path / "state") == MAX_CRASHES
    assert 0 < len(pids(tmp_path)) <= MAX_CRASHES  # one killed before its `echo` is not noted
    assert not any(running(pid) for pid in pids(tmp_path))
    assert not our_children(tmp_path)
    await worker.stop()


async def test_stop_while_backing_off_starts_nothing_more(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(worker_module, "BACKOFF_FIRST_S", 30.0)
    binary = script(tmp_path, "exit 1\n")
    worker = OpenCodeWorker(config_for(tmp_path, binary), 0)
    starting = asyncio.create_task(worker.start())
    await until(lambda: state_of(worker) is WorkerState.RESTARTING)
    assert len(pids(tmp_path)) == 1
    await worker.stop()
    assert state_of(worker) is WorkerState.STOPPED
    assert not supervisors()
    with pytest.raises(BackendUnavailable):
        await starting
    assert len(pids(tmp_path)) == 1


async def test_stop_during_start_leaves_no_process(tmp_path: Path) -> None:
    binary = script(tmp_path, "exec sleep 600\n")
    worker = OpenCodeWorker(config_for(tmp_path, binary, startup_timeout_s=60.0), 0)
    starting = asyncio.create_task(worker.start())
    await until(lambda: bool(pids(tmp_path)) and running(pids(tmp_path)[0]))
    assert state_of(worker) is WorkerState.STARTING
    await worker.stop()
    assert not running(pids(tmp_path)[0]) and not our_children(tmp_path)
    assert state_of(worker) is WorkerState.STOPPED and not supervisors()
    with pytest.raises(BackendUnavailable):
        await starting


async def test_stopped_is_terminal(tmp_path: Path, quick_backoff: None) -> None:
    worker = OpenCodeWorker(config_for(tmp_path, script(tmp_path, "exit 1\n")), 0)
    with pytest.raises(BackendUnavailable):
        await worker.start()
    with pytest.raises(RuntimeError):
        worker._enter(WorkerState.READY)  # FAILED is left only for STOPPED
    await worker.stop()
    for state in WorkerState:
        worker._enter(state)
        assert state_of(worker) is WorkerState.STOPPED
    worker.turn_done(others_accepting=True)
    await worker.stop()
    assert state_of(worker) is WorkerState.STOPPED


async def test_terminate_ends_the_whole_group_even_if_sigterm_is_ignored(tmp_path: Path) -> None:
    # SIGTERM ignored, by the script and (inherited) by the child it leaves in its group.
    binary = script(
        tmp_path, 'trap \'\' TERM\nsleep 600 &\necho $! >> "$(dirname "$0")/pids"\nwait\n'
    )
    process = OpenCodeProcess(
        binary=str(binary), workspace=tmp_path, user_config=None, isolated=True, state_dir=tmp_path
    )
    await process.spawn()
    await until(lambda: len(pids(tmp_path)) == 2)
    assert all(running(pid) for pid in pids(tmp_path))
    started = time.monotonic()
    await process.terminate(grace_s=0.3)
    assert time.monotonic() - started >= 0.3
    assert process.exited() and process.returncode == -9
    # The child left in the group was killed too (its new parent reaps it when it will).
    await until(lambda: not any(running(pid) for pid in pids(tmp_path)), timeout=5)


async def test_the_log_tail_is_the_last_run_without_colours_or_password(tmp_path: Path) -> None:
    binary = script(
        tmp_path,
        'n=$(wc -l < "$(dirname "$0")/pids")\n'
        'echo "run $n"\n'
        "printf '\\033[1mbold\\033[0m %s\\n' \"$OPENCODE_SERVER_PASSWORD\" >&2\n",
    )
    process = OpenCodeProcess(
        binary=str(binary), workspace=tmp_path, user_config=None, isolated=True, state_dir=tmp_path
    )
    for _ in range(2):
        await process.spawn()
        assert await process.wait() == 0
    assert process.log_tail() == ["run 2", "bold **********"]
    assert process.log_tail(lines=1) == ["bold **********"]
    assert process.password in process.log_file.read_text()  # only the tail hides it


async def test_a_pool_whose_workers_all_gave_up_is_failed(
    tmp_path: Path, quick_backoff: None
) -> None:
    binary = script(tmp_path, "echo 'no luck' >&2\nexit 2\n")
    backend = OpenCodeBackend(config_for(tmp_path, binary, opencode_workers=2))
    await backend._start()
    assert [w.state for w in backend.workers] == [WorkerState.FAILED] * 2
    assert backend.state == "failed" and not backend.serving
    health = backend.health()
    assert health["ready"] is False
    assert health["error"].startswith("worker 0: opencode serve exited with status 2")
    assert "; worker 1: opencode serve exited with status 2" in health["error"]
    assert [w["log_tail"] for w in health["workers"]] == [["no luck"]] * 2
    with pytest.raises(BackendUnavailable, match="the OpenCode backend has failed: worker 0"):
        backend.ensure_ready()
    # A worker whose peers all gave up is on its own: it may recycle like a lone worker.
    assert backend.others_accepting(backend.workers[0])
    await backend.stop()
    assert backend.state == "stopped"
    assert len(pids(tmp_path)) == 2 * MAX_CRASHES and not our_children(tmp_path)


async def test_a_binary_that_cannot_be_run_is_given_up_on(
    tmp_path: Path, quick_backoff: None
) -> None:
    binary = tmp_path / "opencode"
    binary.write_text("#!/nonexistent/interpreter\n")
    binary.chmod(0o755)
    worker = OpenCodeWorker(config_for(tmp_path, binary), 0)
    with pytest.raises(BackendUnavailable, match="could not be run"):
        await worker.start()
    assert state_of(worker) is WorkerState.FAILED and worker.crashes == MAX_CRASHES
    assert runs(tmp_path / "state") == MAX_CRASHES
    await worker.stop()
