"""OpenCodeProcess: a handle on the `opencode serve` that the gateway runs: spawn, wait, terminate.

It runs on a free loopback port with a generated password, in the gateway's workspace as its
working directory, with a generated config layer (OPENCODE_CONFIG). `isolated` also gives it a
home of its own under the state dir, so neither the user's config and auth nor provider keys in
the environment reach it. Its output goes to `<state dir>/<name>.log` (`opencode.log`,
`opencode-1.log`, ...), each run after a line that marks its start. It runs in a process group
of its own: on terminate the group gets SIGTERM, then SIGKILL, so nothing it started (local MCP
servers, say) is left behind; on Linux it is also told to die with the gateway
(PR_SET_PDEATHSIG), so a killed gateway leaves no orphan.

The handle has no policy: it never restarts anything by itself. OpenCodeWorker (worker.py)
supervises it: when to spawn again, when to give up.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import datetime as dt
import json
import logging
import os
import re
import secrets
import shutil
import signal
import socket
import sys
import sysconfig
from pathlib import Path
from typing import Any

from opencode_openai.core.errors import BackendUnavailable

__all__ = ["OpenCodeNotFound", "OpenCodeProcess", "find_opencode", "generated_config"]

log = logging.getLogger("opencode_openai.opencode")

#: The line written to the log before each run; `log_tail` reads from the last one.
RUN_MARK = "--- opencode-openai: starting opencode serve"
#: Escape sequences (colours) in OpenCode's output, left out of the log tail.
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


#: The pinned npm install made by scripts/install (package.json at the repository root).
class OpenCodeNotFound(BackendUnavailable):
    def __init__(self, explicit: str | None = None) -> None:
        where = (
            f"`{explicit}` (--opencode-bin) was not found"
            if explicit
            else "The `opencode` binary was not found in this Python environment nor on PATH"
        )
        super().__init__(
            f"{where}: run scripts/install (it links the pinned opencode-ai into the "
            "environment), or pass --opencode-bin / set OPENCODE_OPENAI_OPENCODE_BIN."
        )


def find_opencode(explicit: str | None) -> str:
    """--opencode-bin, else `opencode` in this Python environment's scripts directory (where
    scripts/install links the pinned one, beside this package's own command), else on PATH.

    The same rule whether the package runs from a checkout or from an installed wheel: nothing
    here depends on where this module lies.
    """
    if explicit:
        found = shutil.which(explicit)
        if not found:
            raise OpenCodeNotFound(explicit)
        return found
    beside = Path(sysconfig.get_path("scripts")) / "opencode"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("opencode")
    if not found:
        raise OpenCodeNotFound()
    return found


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def generated_config(user_config: Path | None) -> dict[str, Any]:
    """The config layer of the embedded server, with the user's extra config merged in."""
    safe: dict[str, Any] = {
        "autoupdate": False,
        "share": "disabled",
        "compaction": {"auto": False, "prune": False},
        "snapshot": False,  # see workspace.py
    }
    config: dict[str, Any] = {"$schema": "https://opencode.ai/config.json", **safe}
    if user_config is not None:
        config = _deep_merge(config, json.loads(user_config.read_text()))
    return _deep_merge(config, safe)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:
    if sys.platform.startswith("linux"):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class OpenCodeProcess:
    """One `opencode serve`, spawned again on the same port and password as often as asked.

    `url` and `password` are fixed when the handle is made (the gateway's connection pool and
    event streams point at them across runs); `pid` is the current run's. `restarts` counts the
    runs spawned with `after_crash=True`.
    """

    def __init__(
        self,
        *,
        binary: str,
        workspace: Path,
        user_config: Path | None,
        isolated: bool,
        state_dir: Path,
        name: str = "opencode",
    ) -> None:
        self.binary = binary
        self.workspace = workspace
        self.user_config = user_config
        self.isolated = isolated
        self.password = secrets.token_urlsafe(24)
        self.port = _free_port()
        self.restarts = 0
        # Kept between runs: OpenCode installs its plugin SDK into a new home's config dir on
        # first start (~95 MB, ~12 s); an isolated home under the state dir pays that once.
        self.state_dir = state_dir
        self.name = name
        self.log_file = state_dir / f"{name}.log"
        self._proc: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        """The running process's id; None before the first spawn and once it exited."""
        return self._proc.pid if self._proc is not None and self._proc.returncode is None else None

    @property
    def returncode(self) -> int | None:
        """How the last run ended (negative: killed by that signal); None while it runs."""
        return self._proc.returncode if self._proc is not None else None

    def exited(self) -> bool:
        return self._proc is None or self._proc.returncode is not None

    def _environment(self, config_file: Path) -> dict[str, str]:
        if self.isolated:
            home = self.state_dir / "opencode-home"
            keep = ("PATH", "LANG", "LC_ALL", "TZ", "SSL_CERT_FILE", "NODE_EXTRA_CA_CERTS")
            env = {k: os.environ[k] for k in keep if k in os.environ}
            env.update(
                HOME=str(home),
                XDG_CONFIG_HOME=str(home / "config"),
                XDG_DATA_HOME=str(home / "data"),
                XDG_CACHE_HOME=str(home / "cache"),
                XDG_STATE_HOME=str(home / "state"),
            )
        else:
            env = dict(os.environ)
        env.update(
            OPENCODE_CONFIG=str(config_file),
            OPENCODE_SERVER_PASSWORD=self.password,
            OPENCODE_DB=":memory:",
            OPENCODE_DISABLE_AUTOUPDATE="1",
            OPENCODE_DISABLE_MODELS_FETCH="1",
            PWD=str(self.workspace),
        )
        env.pop("OPENCODE_SERVER_USERNAME", None)
        return env

    def _prepare_run(self) -> tuple[Path, int]:
        """Write the config layer, mark the run in the log; the log's descriptor for the child."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        config_file = self.state_dir / f"{self.name}.config.json"
        config_file.write_text(json.dumps(generated_config(self.user_config), indent=2))
        fd = os.open(self.log_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        os.write(fd, f"{RUN_MARK} on port {self.port} at {now} ---\n".encode())
        return config_file, fd

    async def spawn(self, *, after_crash: bool = False) -> None:
        """Start a run (the previous one must have exited); returns once the process exists."""
        if not self.exited():
            raise RuntimeError(f"{self.name}: spawn while pid {self.pid} still runs")
        config_file, log_fd = self._prepare_run()
        try:
            # Cancelled while this runs, asyncio kills and reaps the new process itself.
            self._proc = await asyncio.create_subprocess_exec(
                self.binary,
                "serve",
                "--port",
                str(self.port),
                "--hostname",
                "127.0.0.1",
                cwd=self.workspace,
                env=self._environment(config_file),
                stdin=asyncio.subprocess.DEVNULL,
                # A file, not a pipe: asyncio's wait() also waits for pipes to close, and
                # anything OpenCode spawned could hold them open after it died.
                stdout=log_fd,
                stderr=log_fd,
                preexec_fn=_die_with_parent,
                start_new_session=True,  # its own process group, ended as one in terminate()
                close_fds=True,  # never the gateway's listening socket: it must close on shutdown
            )
        finally:
            os.close(log_fd)  # the child has its own copy
        if after_crash:
            self.restarts += 1
        log.info("started opencode serve (pid %s) on %s", self._proc.pid, self.url)

    async def wait(self) -> int:
        """Until the current run exits; its exit status."""
        if self._proc is None:
            raise RuntimeError(f"{self.name}: wait before spawn")
        return await self._proc.wait()

    def _signal_group(self, sig: signal.Signals) -> None:
        proc = self._proc
        # Only while the leader is not reaped: until then no other group can take its id. Not
        # through Popen.send_signal either: it polls first, and a poll that reaps the process
        # leaves asyncio's child watcher without its exit status.
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)

    async def terminate(self, grace_s: float = 5.0) -> None:
        """SIGTERM to its process group, SIGKILL after `grace_s`; returns once it is reaped."""
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return
        self._signal_group(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), grace_s)
        except TimeoutError:
            log.warning("opencode serve (pid %s) ignored SIGTERM; killing it", proc.pid)
            self._signal_group(signal.SIGKILL)
            await proc.wait()

    def log_tail(self, lines: int = 20, *, max_bytes: int = 16384) -> list[str]:
        """The last lines the latest run wrote to its log (colours stripped, password hidden)."""
        try:
            with open(self.log_file, "rb") as file:
                size = file.seek(0, os.SEEK_END)
                file.seek(max(0, size - max_bytes))
                text = file.read().decode(errors="replace")
        except OSError:
            return []
        if RUN_MARK in text:
            _, _, run = text.rpartition(RUN_MARK)
            text = run.partition("\n")[2]  # after the mark's own line
        elif size > max_bytes:
            text = text.split("\n", 1)[-1]  # the first line read may be cut
        kept = [_ANSI.sub("", line).rstrip()[:500] for line in text.splitlines()]
        return [self.redact(line) for line in kept if line][-lines:]

    def redact(self, text: str) -> str:
        """`text` without the server password (for logs, errors and /health)."""
        return text.replace(self.password, "**********")
