"""OpenCodeWorker: one OpenCode server (started, or attached to) and what the gateway keeps of it.

Its workspace instances (the main one, and one per client tool set, least recently used first
out), its model catalog, its backpressure limiter and its state. In embedded mode the worker is
the one owner of its OpenCode process: a single supervising task per worker spawns it, warms it
up, serves, and when the process exits backs off and spawns it again, or gives up after a crash
loop. Recycling is a request to that same task: a worker that has served `recycle_after_turns`
turns, or whose process grew past `recycle_rss_mb`, is drained (no new turns) and restarted once
its running turns are done (OpenCode does not give memory back).

States (`WorkerState`), and who moves a worker between them:

    STARTING   --warm-up done------------------------------> READY       (supervisor)
    STARTING   --exit or failed warm-up-------------------> RESTARTING  (supervisor)
    READY      --process exited---------------------------> RESTARTING  (supervisor)
    READY      --recycle asked (turn_done), turns drained--> RECYCLING   (supervisor)
    RECYCLING  --warm-up done------------------------------> READY       (supervisor)
    RECYCLING  --exit or failed warm-up-------------------> RESTARTING  (supervisor)
    RESTARTING --back-off, respawn, warm-up done-----------> READY       (supervisor)
    any of those --MAX_CRASHES crashes in CRASH_WINDOW_S---> FAILED      (supervisor)
    any state  --stop()-----------------------------------> STOPPED     (gateway shutdown)

FAILED is left only for STOPPED; STOPPED is terminal: nothing moves a worker out of it. In
attach mode there is no process and no supervisor: STARTING, then READY or FAILED.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import logging
import signal
import time
from collections import OrderedDict, deque
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any, TypeVar

import aiohttp

from opencode_openai.backend._tasks import BackgroundTasks
from opencode_openai.backend.catalog import catalog_from_opencode, unknown_aliases_complaint
from opencode_openai.backend.client import connection_pool
from opencode_openai.backend.instance import WorkspaceInstance
from opencode_openai.backend.limiter import TurnLimiter
from opencode_openai.backend.plugin_contract import AGENT, AGENT_READY_DESCRIPTION
from opencode_openai.backend.process import OpenCodeProcess, find_opencode
from opencode_openai.backend.workspace import prepare_workspace, toolset_key
from opencode_openai.core.errors import BackendUnavailable, GatewayError, Misconfigured
from opencode_openai.core.models import ModelCatalog
from opencode_openai.core.plan import ClientTool
from opencode_openai.core.settings import GatewayConfig

__all__ = [
    "BACKOFF_FIRST_S",
    "BACKOFF_MAX_S",
    "CRASH_WINDOW_S",
    "MAX_CRASHES",
    "OpenCodeWorker",
    "WorkerState",
    "backoff_s",
]

log = logging.getLogger("opencode_openai.backend")

T = TypeVar("T")

#: Sessions created during warm-up, so the first requests skip the create.
WARM_SESSIONS = 2
#: Tool-set instances kept loaded in OpenCode; the least recently used idle one goes first.
MAX_TOOLSETS = 32
#: The crash loop bound: this many crashes (an exit, or a run that did not warm up) within
#: CRASH_WINDOW_S and the worker gives up (FAILED) instead of spawning OpenCode again.
MAX_CRASHES = 5
CRASH_WINDOW_S = 300.0
#: Back-off before a respawn: BACKOFF_FIRST_S after the first crash in the window, doubling
#: with each further one, at most BACKOFF_MAX_S (0.5, 1, 2, 4 s, then the fifth gives up).
BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 8.0
#: Lines of OpenCode's log kept (and shown in /health) when a worker gives up.
LOG_TAIL_LINES = 20
#: While draining: how often the load is looked at again besides each finished turn (a queued
#: turn that gave up waiting for a slot is not announced).
DRAIN_RECHECK_S = 0.25


class WorkerState(enum.StrEnum):
    STARTING = "starting"
    READY = "ready"
    RESTARTING = "restarting"
    RECYCLING = "recycling"
    FAILED = "failed"
    STOPPED = "stopped"


_S = WorkerState
_NEXT: dict[WorkerState, frozenset[WorkerState]] = {
    _S.STARTING: frozenset({_S.READY, _S.RESTARTING, _S.FAILED, _S.STOPPED}),
    _S.READY: frozenset({_S.RESTARTING, _S.RECYCLING, _S.FAILED, _S.STOPPED}),
    _S.RECYCLING: frozenset({_S.READY, _S.RESTARTING, _S.FAILED, _S.STOPPED}),
    _S.RESTARTING: frozenset({_S.READY, _S.RESTARTING, _S.FAILED, _S.STOPPED}),
    _S.FAILED: frozenset({_S.STOPPED}),
    _S.STOPPED: frozenset(),
}


class _Exited(Exception):
    """The OpenCode process exited while the worker waited for something else."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def _rss_mb(pid: int | None) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        pass
    return 0.0


def _exit_text(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"was killed by {signal.Signals(-code).name}"
    return f"exited with status {code}"


def _message(exc: BaseException) -> str:
    if isinstance(exc, GatewayError):
        return exc.message
    return str(exc) or type(exc).__name__


def backoff_s(crashes: int) -> float:
    """The wait before respawning after the `crashes`-th crash within the window."""
    return float(min(BACKOFF_FIRST_S * 2 ** max(0, crashes - 1), BACKOFF_MAX_S))


class OpenCodeWorker:
    def __init__(self, config: GatewayConfig, index: int) -> None:
        self.config = config
        self.index = index
        self.state = WorkerState.STARTING
        #: Why the worker is not ready (the last crash, or why it gave up); None when ready.
        self.error: str | None = None
        #: Given up on for what it was told to do (Misconfigured), not after crashes.
        self.misconfigured = False
        #: The end of OpenCode's log when the worker gave up (FAILED), else empty.
        self.log_tail: list[str] = []
        self.catalog = ModelCatalog()
        self.process: OpenCodeProcess | None = None
        self.main: WorkspaceInstance | None = None
        self.limiter = TurnLimiter(config.max_concurrent_turns, config.max_queued_turns)
        self.turns_served = 0
        self.recycles = 0
        self.draining = False
        self._crashes: deque[float] = deque()
        self._supervisor: asyncio.Task[None] | None = None
        self._recycle_asked = asyncio.Event()
        self._turn_ended = asyncio.Event()
        #: Set on READY, FAILED and STOPPED: what `start` waits for.
        self._settled = asyncio.Event()
        self._background = BackgroundTasks()
        self._toolsets: OrderedDict[str, WorkspaceInstance] = OrderedDict()
        self._toolset_lock = asyncio.Lock()
        #: One HTTP connection pool to the process, shared by its instances (and kept across
        #: restarts: the process keeps its port and password).
        self._pool: aiohttp.ClientSession | None = None
        self._workspace = config.state_dir / "workspace"

    # -- states ------------------------------------------------------------------------------

    def _enter(self, state: WorkerState) -> None:
        if state is self.state:
            return
        if self.state is WorkerState.STOPPED:
            return  # terminal: a late caller changes nothing
        if state not in _NEXT[self.state]:
            raise RuntimeError(f"OpenCode worker {self.index}: {self.state} -> {state}")
        log.debug("OpenCode worker %d: %s -> %s", self.index, self.state, state)
        self.state = state
        if state in (WorkerState.READY, WorkerState.FAILED, WorkerState.STOPPED):
            self._settled.set()

    def _redact(self, text: str) -> str:
        return self.process.redact(text) if self.process is not None else text

    @property
    def crashes(self) -> int:
        """Crashes within the last CRASH_WINDOW_S."""
        horizon = time.monotonic() - CRASH_WINDOW_S
        while self._crashes and self._crashes[0] < horizon:
            self._crashes.popleft()
        return len(self._crashes)

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Start (embedded) or reach (attach) OpenCode; returns once ready, raises if it failed.

        In embedded mode this hands the process to its supervisor, which keeps it running
        after `start` returned (or keeps trying, within the crash-loop bound, if it raised).
        """
        config = self.config
        try:
            workspace = self._workspace = prepare_workspace(self._workspace)
            if config.opencode_url:
                password = config.opencode_password.reveal() if config.opencode_password else None
                self._pool = connection_pool(config.opencode_url, password)
                self.main = self._main_instance()
                await self._warm_up()
                self._enter(WorkerState.READY)
                return
            binary = find_opencode(config.opencode_bin)
        except Exception as exc:
            self.misconfigured = isinstance(exc, Misconfigured)
            self._give_up(_message(exc))
            raise
        self.process = OpenCodeProcess(
            binary=binary,
            workspace=workspace,
            user_config=config.opencode_config,
            isolated=config.isolated,
            state_dir=config.state_dir,
            name="opencode" if self.index == 0 else f"opencode-{self.index}",
        )
        self._pool = connection_pool(self.process.url, self.process.password)
        self.main = self._main_instance()
        self._supervisor = asyncio.create_task(
            self._supervise(), name=f"opencode-supervisor-{self.index}"
        )
        await self._settled.wait()
        if self.state is not WorkerState.READY:
            raise BackendUnavailable(self.error or f"OpenCode worker {self.index} is {self.state}")

    async def stop(self) -> None:
        """STOPPED for good: cancel every task the worker owns, then end its OpenCode process."""
        self._enter(WorkerState.STOPPED)
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
        await self._background.cancel()
        if self.process is None:
            for instance in self._instances():
                await instance.aclose()  # attach: give the server its sessions back
            self._toolsets.clear()
        else:
            await self._drop_instances()
        if self.process is not None:
            await self.process.terminate()
        if self._pool is not None:
            await self._pool.close()

    def _main_instance(self) -> WorkspaceInstance:
        # As many idle sessions as turns may run at once: under load, a session released by
        # one turn is taken by the next instead of being deleted and created again.
        assert self._pool is not None
        return WorkspaceInstance(
            self._pool,
            self._workspace,
            max_idle_sessions=self.config.max_concurrent_turns,
        )

    def _give_up(self, error: str) -> None:
        self.error = self._redact(error)
        if self.process is not None:
            self.log_tail = self.process.log_tail(LOG_TAIL_LINES)
            log.error(
                "OpenCode worker %d: %s. Last lines of %s:\n%s",
                self.index,
                self.error,
                self.process.log_file,
                "\n".join(f"  | {line}" for line in self.log_tail) or "  (nothing)",
            )
        else:
            log.error("OpenCode worker %d failed to start: %s", self.index, self.error)
        self._enter(WorkerState.FAILED)

    # -- supervision (embedded mode) ---------------------------------------------------------

    async def _supervise(self) -> None:
        """The one task that runs this worker's OpenCode process, from first spawn to give-up."""
        try:
            await self._supervise_runs()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug here must not leave the worker looking alive
            log.exception("OpenCode worker %d: supervisor failed", self.index)
            if self.process is not None:
                await self.process.terminate()
            self._give_up(f"the supervisor failed: {_message(exc)}")

    async def _supervise_runs(self) -> None:
        process = self.process
        assert process is not None
        after_crash = False
        while True:
            try:
                await process.spawn(after_crash=after_crash)
            except OSError as exc:  # e.g. its interpreter is missing: a crash like any other
                failure: str | None = f"{process.binary} could not be run: {exc}"
            else:
                try:
                    failure = await self._run_once(process)
                except Misconfigured as exc:  # another try would fail the same way
                    self.misconfigured = True
                    self._give_up(exc.message)
                    await self._drop_instances()
                    return
            if failure is None:  # recycled: spawn again at once, not a crash
                after_crash = False
                continue
            self._forget_sessions()
            self._crashes.append(time.monotonic())
            crashes = self.crashes
            if crashes >= MAX_CRASHES:
                self._give_up(
                    f"{failure}; gave up after {crashes} crashes within {CRASH_WINDOW_S:g} s"
                )
                await self._drop_instances()  # no event stream left retrying a dead port
                return
            delay = backoff_s(crashes)
            self.error = self._redact(failure)
            self._enter(WorkerState.RESTARTING)
            log.error(
                "OpenCode worker %d: %s; restarting it in %.1f s (crash %d of %d within %g s; "
                "its log: %s)",
                self.index,
                self.error,
                delay,
                crashes,
                MAX_CRASHES,
                CRASH_WINDOW_S,
                process.log_file,
            )
            await asyncio.sleep(delay)
            after_crash = True

    async def _run_once(self, process: OpenCodeProcess) -> str | None:
        """One run of the process: warm up, serve. None when it ended for a recycle, else why
        it counts as a crash. The process has exited when this returns."""
        try:
            await self._until_exit(process, self._warm_up())
        except _Exited as exc:
            return f"opencode serve {_exit_text(exc.code)} while starting"
        except Misconfigured:
            await process.terminate()
            raise
        except Exception as exc:
            await process.terminate()
            return f"opencode serve did not warm up: {_message(exc)}"
        self.turns_served = 0
        self.draining = False
        self.error = None
        self._recycle_asked.clear()
        self._enter(WorkerState.READY)
        log.info("OpenCode worker %d ready: %d models", self.index, len(self.catalog.models))
        try:
            await self._until_exit(process, self._recycle_asked.wait())
            log.info("recycling OpenCode worker %d after %d turns", self.index, self.turns_served)
            await self._until_exit(process, self._drained())
        except _Exited as exc:
            return f"opencode serve {_exit_text(exc.code)}"
        self._enter(WorkerState.RECYCLING)
        await self._drop_instances()
        self.main = self._main_instance()
        await process.terminate()
        self.recycles += 1
        return None

    async def _until_exit(self, process: OpenCodeProcess, work: Coroutine[Any, Any, T]) -> T:
        """`work`'s result, unless the process exits first: then `_Exited` (work cancelled)."""
        task = asyncio.ensure_future(work)
        exit_ = asyncio.ensure_future(process.wait())
        try:
            await asyncio.wait((task, exit_), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pending in (task, exit_):
                pending.cancel()
            await asyncio.gather(task, exit_, return_exceptions=True)
        if exit_.done() and not exit_.cancelled():
            raise _Exited(exit_.result())
        return task.result()

    async def _drained(self) -> None:
        while self.load:
            self._turn_ended.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._turn_ended.wait(), DRAIN_RECHECK_S)

    def _forget_sessions(self) -> None:
        """The process is gone, and with it every session it had: drop them without a call."""
        for instance in self._instances():
            instance.sessions.forget()

    async def _drop_instances(self) -> None:
        """Let go of every instance before the process ends: its sessions live only in its
        in-memory database, so they are forgotten, not deleted; the event streams stop."""
        self._forget_sessions()
        for instance in self._instances():
            await instance.events.aclose()
        self._toolsets.clear()

    async def _warm_up(self) -> None:
        """Wait for OpenCode's health, load the workspace, read the catalog, check the agent."""
        assert self.main is not None
        deadline = time.monotonic() + self.config.startup_timeout_s
        while True:
            try:
                await self.main.client.health()
                break
            except GatewayError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)
        # Warm-up: the first calls for a directory load its instance, config and plugin (slow,
        # seconds); the first session is cold too. Do both before saying we are ready.
        await self.main.open(
            timeout_s=max(1.0, deadline - time.monotonic()), warm_sessions=WARM_SESSIONS
        )
        providers, opencode_config = await asyncio.gather(
            self.main.client.providers(), self.main.client.config()
        )
        self.catalog = catalog_from_opencode(providers, opencode_config, self.config.model_aliases)
        unknown = self.catalog.unknown_aliases()
        if unknown:
            raise Misconfigured(unknown_aliases_complaint(unknown))
        await self._check_agent(self.main)

    @staticmethod
    async def _check_agent(instance: WorkspaceInstance) -> None:
        """OpenCode must run the instance's agent and plugin: without them nothing is safe.

        OpenCode 1.18.33 runs an instance without a plugin that failed to load (and with it
        the one-call guard): the plugin marks the agent's description once it runs, or writes
        there why it cannot.
        """
        agents = {agent.get("name"): agent for agent in await instance.client.agents()}
        agent = agents.get(AGENT)
        if agent is None:
            raise Misconfigured(
                f"OpenCode did not load the gateway's agent from {instance.directory}: it must "
                "see the same filesystem as the gateway (see docs/backends.md, attach mode)"
            )
        if agent.get("description") != AGENT_READY_DESCRIPTION:
            why = agent.get("description") or "its plugin did not load"
            raise Misconfigured(f"OpenCode's workspace {instance.directory} is not usable: {why}")

    def _instances(self) -> list[WorkspaceInstance]:
        return ([self.main] if self.main else []) + list(self._toolsets.values())

    # -- turns -------------------------------------------------------------------------------

    @property
    def accepting(self) -> bool:
        return self.state is WorkerState.READY and not self.draining

    @property
    def load(self) -> int:
        return self.limiter.active + self.limiter.waiting

    async def instance_for(self, tools: tuple[ClientTool, ...]) -> WorkspaceInstance:
        """The main workspace, or the (possibly new) workspace of this client tool set."""
        assert self.main is not None
        if not tools:
            return self.main
        key = toolset_key(tools)
        async with self._toolset_lock:
            instance = self._toolsets.get(key)
            if instance is None:
                directory = prepare_workspace(self.config.state_dir / "toolsets" / key, tools)
                assert self._pool is not None
                instance = WorkspaceInstance(self._pool, directory)
                try:
                    await instance.open(timeout_s=self.config.startup_timeout_s)
                    await self._check_agent(instance)
                except BaseException:  # cancelled by the request's deadline, or refused
                    await asyncio.shield(instance.aclose())
                    raise
                self._toolsets[key] = instance
                self._evict()
            self._toolsets.move_to_end(key)
        return instance

    def _evict(self) -> None:
        idle = [key for key, instance in self._toolsets.items() if not instance.busy]
        for key in idle[: max(0, len(self._toolsets) - MAX_TOOLSETS)]:
            instance = self._toolsets.pop(key)
            self._background.spawn(instance.aclose(dispose=True))

    def turn_done(self, others_accepting: bool) -> None:
        """Count a finished turn; ask for a recycle when the process is due for one.

        With other workers, one drains only while the others take new turns (never all at
        once); a lone worker drains anyway and new turns wait for it.
        """
        self.turns_served += 1
        # After this call the turn's limiter slot is released in the same step: look then.
        asyncio.get_running_loop().call_soon(self._turn_ended.set)
        if self.process is None or self.draining or not others_accepting:
            return
        if self.state is not WorkerState.READY:
            return
        config = self.config
        due = bool(config.recycle_after_turns and self.turns_served >= config.recycle_after_turns)
        if not due and config.recycle_rss_mb and self.turns_served % 50 == 0:
            due = _rss_mb(self.process.pid) > config.recycle_rss_mb
        if due:
            self.draining = True
            self._recycle_asked.set()

    def use_aliases(self, aliases: Sequence[tuple[str, str]]) -> None:
        """Name the catalog by new aliases (a reload); a restart of OpenCode reads them too."""
        self.config = dataclasses.replace(self.config, model_aliases=tuple(aliases))
        self.catalog = self.catalog.with_aliases(aliases)

    def health(self) -> dict[str, Any]:
        instances = self._instances()
        pid = self.process.pid if self.process else None
        return {
            "index": self.index,
            "state": self.state.value,
            "draining": self.draining,
            "pid": pid,
            "rss_mb": round(_rss_mb(pid), 1) if self.process else None,
            "restarts": self.process.restarts if self.process else 0,
            "recycles": self.recycles,
            "crashes": self.crashes,
            "turns_served": self.turns_served,
            "error": self.error,
            "log_tail": self.log_tail if self.state is WorkerState.FAILED else None,
            "sessions": {
                "idle": sum(i.sessions.idle for i in instances),
                "in_use": sum(i.sessions.in_use for i in instances),
            },
            "turns": {"running": self.limiter.active, "queued": self.limiter.waiting},
        }
