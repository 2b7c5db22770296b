"""The processes a bench run starts: fake upstream and gateway; and their meters.

The gateway runs as `opencode-openai server-openai` in its own process; its children are its
OpenCode processes, whose passwords and ports the bench reads from /proc, the way an operator
could. The baseline drives the first of them directly (see run.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import secrets
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.support.gateway import opencode_config  # noqa: E402

MB = 1024 * 1024


def _die_with_parent() -> None:
    if sys.platform.startswith("linux"):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_opencode_config(path: Path, upstream_base_url: str) -> Path:
    """The tests' OpenCode config: provider `fake` (the fake upstream) is the only one."""
    path.write_text(json.dumps(opencode_config(upstream_base_url), indent=2))
    return path


# -- meters -------------------------------------------------------------------------------


@dataclass
class Meter:
    """RSS and CPU time of a process (`scope` "self"), or of all below it ("below": a gateway's
    OpenCode processes, however many and however recycled).

    "below" CPU includes what members reaped from their own children (OpenCode runs git); for
    "self", a reaped child is another meter's business.
    """

    name: str
    pid: int
    scope: str = "self"
    _procs: dict[int, psutil.Process] = field(default_factory=dict)
    _cpu_seen: dict[int, float] = field(default_factory=dict)

    def _members(self) -> list[psutil.Process]:
        try:
            root = self._procs.get(self.pid) or psutil.Process(self.pid)
            self._procs[self.pid] = root
            if self.scope == "self":
                return [root]
            return [self._procs.setdefault(c.pid, c) for c in root.children(recursive=True)]
        except psutil.Error:
            return []

    def rss_mb(self) -> float:
        total = 0
        for proc in self._members():
            with contextlib.suppress(psutil.Error):
                total += proc.memory_info().rss
        return total / MB

    def cpu_s(self) -> float:
        """CPU seconds so far. A member that has exited (a recycled OpenCode) keeps counting
        with its last reading, so a window over a recycle is not negative; the Sampler reads
        every second, so at most a second of a dying process's CPU is missed."""
        for proc in self._members():
            with contextlib.suppress(psutil.Error):
                times = proc.cpu_times()
                total = times.user + times.system
                if self.scope == "below":
                    total += times.children_user + times.children_system
                self._cpu_seen[proc.pid] = total
        return sum(self._cpu_seen.values())


class Sampler:
    """Samples RSS of some meters every `interval` seconds in the background (for peaks/trends)."""

    def __init__(self, meters: list[Meter], interval: float = 0.5) -> None:
        self.meters = meters
        self.interval = interval
        self.samples: list[tuple[float, dict[str, float]]] = []
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Sampler:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._sample()

    def _sample(self) -> None:
        self.samples.append((time.monotonic(), {m.name: m.rss_mb() for m in self.meters}))
        for meter in self.meters:
            meter.cpu_s()  # keeps the last CPU reading of processes that may exit

    async def _run(self) -> None:
        while True:
            self._sample()
            await asyncio.sleep(self.interval)

    def peak(self, name: str) -> float:
        return max((s[name] for _, s in self.samples), default=0.0)

    def series(self, name: str) -> list[float]:
        return [s[name] for _, s in self.samples]


# -- fake upstream --------------------------------------------------------------------------


class Upstream:
    """`python -m bench.upstream ARGS` in a process of its own."""

    def __init__(self, args: list[str] | None = None) -> None:
        self.args = list(args or [])
        self.proc: asyncio.subprocess.Process | None = None
        self.base_url = ""

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.upstream",
            *self.args,
            cwd=ROOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), 30)
        if not line:
            raise RuntimeError("the fake upstream did not start")
        self.base_url = line.decode().strip()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def stop(self) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            await asyncio.wait_for(self.proc.wait(), 5)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()


# -- an OpenCode instance, as a target the bench drives directly ----------------------------


@dataclass
class OpenCodeTarget:
    """Where and how to reach one OpenCode instance: base URL, password, workspace directory."""

    url: str
    password: str
    directory: str

    @property
    def headers(self) -> dict[str, str]:
        import base64

        token = base64.b64encode(f"opencode:{self.password}".encode()).decode()
        return {"Authorization": f"Basic {token}"}

    @property
    def params(self) -> dict[str, str]:
        return {"directory": self.directory}


# -- the gateway ------------------------------------------------------------------------


class Gateway:
    """`opencode-openai server-openai` in a process of its own, with its embedded OpenCode."""

    def __init__(
        self, tmp: Path, config_file: Path, state_dir: Path, extra_args: list[str] | None = None
    ) -> None:
        self.extra_args = list(extra_args or [])
        self.tmp = tmp
        self.config_file = config_file
        self.state_dir = state_dir
        self.port = free_port()
        self.key = "sk-bench-" + secrets.token_urlsafe(16)
        self.proc: asyncio.subprocess.Process | None = None
        self.log_path = tmp / "gateway.log"
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def start(self, client: httpx.AsyncClient, timeout: float) -> None:
        binary = Path(sys.executable).with_name("opencode-openai")
        self._log = self.log_path.open("wb")
        self.proc = await asyncio.create_subprocess_exec(
            str(binary),
            "server-openai",
            "--port",
            str(self.port),
            "--key",
            self.key,
            "--isolated",
            "--opencode-config",
            str(self.config_file),
            "--state-dir",
            str(self.state_dir),
            "--log-level",
            "warning",
            *self.extra_args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=self._log,
            stderr=self._log,
            preexec_fn=_die_with_parent,  # a killed bench leaves no gateway behind
        )
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.returncode is not None:
                raise RuntimeError(
                    f"the gateway exited ({self.proc.returncode}); see {self.log_path}"
                )
            with contextlib.suppress(httpx.HTTPError, ValueError):
                response = await client.get(f"{self.url}/health", timeout=1.0)
                if response.status_code == 200 and response.json()["backend"]["ready"]:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"the gateway did not become ready; see {self.log_path}")
            await asyncio.sleep(0.25)

    async def health(self, client: httpx.AsyncClient) -> dict[str, Any]:
        result: dict[str, Any] = (await client.get(f"{self.url}/health", timeout=5.0)).json()
        return result

    def opencodes(self) -> list[tuple[int, OpenCodeTarget]]:
        """The gateway's OpenCode processes: pid, and how to reach the gateway's workspace."""
        found = []
        directory = str((self.state_dir / "workspace").resolve())
        for child in psutil.Process(self.pid).children():
            with contextlib.suppress(psutil.Error, KeyError, ValueError, IndexError):
                password = child.environ()["OPENCODE_SERVER_PASSWORD"]
                cmdline = child.cmdline()
                port = cmdline[cmdline.index("--port") + 1]
                found.append(
                    (child.pid, OpenCodeTarget(f"http://127.0.0.1:{port}", password, directory))
                )
        if not found:
            raise RuntimeError("found no OpenCode process under the gateway")
        return found

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 15)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                await self.proc.wait()
        if self._log is not None:
            self._log.close()


def environment() -> dict[str, Any]:
    """What the numbers were measured on."""
    import platform

    version = "?"
    with contextlib.suppress(Exception):
        package = ROOT / "node_modules" / "opencode-ai" / "package.json"
        version = json.loads(package.read_text())["version"]
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "memory_gb": round(psutil.virtual_memory().total / 1024**3, 1),
        "opencode_ai": version,
    }
