"""OpenCodeProcess: the `opencode serve` that the gateway starts, watches and stops.

It runs on a free loopback port with a generated password, in the gateway's workspace as its
working directory, with a generated config layer (OPENCODE_CONFIG). `isolated` also gives it a
home of its own under the state dir, so neither the user's config and auth nor provider keys in
the environment reach it. Its output goes to `<state dir>/opencode.log`. If it dies it is restarted; on stop it gets SIGTERM, then SIGKILL, and on Linux it is also
told to die with the gateway (PR_SET_PDEATHSIG) so a killed gateway leaves no orphan.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, BinaryIO

from opencode_openai.core.errors import BackendUnavailable

__all__ = ["OpenCodeNotFound", "OpenCodeProcess", "find_opencode", "generated_config"]

log = logging.getLogger("opencode_openai.opencode")

#: The pinned npm install made by scripts/install (package.json at the repository root).
PROJECT_ROOT = Path(__file__).resolve().parent.parent
PINNED_BIN = PROJECT_ROOT / "node_modules" / ".bin" / "opencode"


class OpenCodeNotFound(BackendUnavailable):
    def __init__(self) -> None:
        super().__init__(
            "The `opencode` binary was not found: run scripts/install (it installs the pinned "
            "opencode-ai npm package), or pass --opencode-bin / set OPENCODE_BIN."
        )


def find_opencode(explicit: str | None) -> str:
    """--opencode-bin / OPENCODE_BIN, then the project's pinned npm install, then PATH."""
    for candidate in (explicit, os.environ.get("OPENCODE_BIN")):
        if candidate:
            found = shutil.which(candidate)
            if not found:
                raise OpenCodeNotFound()
            return found
    if PINNED_BIN.exists():
        return str(PINNED_BIN)
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
    """One supervised `opencode serve`. `url` and `password` are valid once `start` returned."""

    def __init__(
        self,
        *,
        binary: str,
        workspace: Path,
        user_config: Path | None,
        isolated: bool,
        state_dir: Path,
        name: str = "opencode",
        on_exit: Callable[[], None] | None = None,
        on_restart: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.binary = binary
        self.workspace = workspace
        self.user_config = user_config
        self.isolated = isolated
        self.password = secrets.token_urlsafe(24)
        self.port = 0
        self.restarts = 0
        # Kept between runs: OpenCode installs its plugin SDK into a new home's config dir on
        # first start (~95 MB, ~12 s); an isolated home under the state dir pays that once.
        self.state_dir = state_dir
        self.name = name
        self.log_file = state_dir / f"{name}.log"
        self._on_exit = on_exit
        self._on_restart = on_restart
        self._proc: asyncio.subprocess.Process | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._stopping = False
        self._log: BinaryIO | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

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

    async def _spawn(self) -> None:
        config_file = self.state_dir / f"{self.name}.config.json"
        config_file.write_text(json.dumps(generated_config(self.user_config), indent=2))
        # Keep the port across restarts: the gateway's clients and event streams point at it.
        if not self.port:
            self.port = _free_port()
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
            # A file, not a pipe: asyncio's wait() also waits for pipes to close, and anything
            # OpenCode spawned could hold them open after it died.
            stdout=self._log,
            stderr=self._log,
            preexec_fn=_die_with_parent,
            close_fds=True,  # never the gateway's listening socket: it must close on shutdown
        )
        self._watcher = asyncio.create_task(self._watch(self._proc))
        log.info("started opencode serve (pid %s) on %s", self._proc.pid, self.url)

    async def _watch(self, proc: asyncio.subprocess.Process) -> None:
        """When the process dies unexpectedly, say so at once, then start a new one."""
        code = await proc.wait()
        if self._stopping or proc is not self._proc:
            return
        log.error("opencode serve exited with %s; restarting it (its log: %s)", code, self.log_file)
        if self._on_exit is not None:
            self._on_exit()
        await asyncio.sleep(min(0.2 * (self.restarts + 1), 2.0))
        self.restarts += 1
        if self._stopping:
            return
        await self._spawn()
        if self._on_restart is not None:
            await self._on_restart()

    async def start(self) -> None:
        self._stopping = False
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_file, "ab", buffering=0)  # noqa: SIM115 - closed in stop()
        await self._spawn()

    def exited(self) -> bool:
        return self._proc is None or self._proc.returncode is not None

    async def _terminate(self, grace_s: float) -> None:
        self._stopping = True
        proc = self._proc
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), grace_s)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher

    async def restart(self, grace_s: float = 5.0) -> None:
        """Stop and start again on the same port (recycling): not counted as a crash."""
        await self._terminate(grace_s)
        self._stopping = False
        await self._spawn()

    async def stop(self, grace_s: float = 5.0) -> None:
        await self._terminate(grace_s)
        if self._log is not None:
            self._log.close()
            self._log = None
