"""A real redis-server for the tests (Debian's package, installed by scripts/install).

Each server is this run's own: a free loopback port, no persistence, its files in a temporary
directory. Where redis-server is missing, the tests that need it skip, and fail in CI.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.gateway import free_port

__all__ = ["RedisServer", "redis_server_binary"]


def redis_server_binary() -> str:
    """The path of redis-server; a skip where it is missing, but a failure in CI."""
    found = shutil.which("redis-server") or (
        "/usr/bin/redis-server" if os.access("/usr/bin/redis-server", os.X_OK) else None
    )
    if found:
        return found
    reason = "redis-server is not installed (scripts/install installs it as root with apt-get)"
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI must run this test")
    pytest.skip(reason)


@dataclass
class RedisServer:
    """One redis-server process on 127.0.0.1; `url` is what `--store` takes."""

    port: int = field(default_factory=free_port)
    _process: subprocess.Popen[bytes] | None = None
    _dir: Path | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 20.0) -> RedisServer:
        self._dir = Path(tempfile.mkdtemp(prefix="opencode-openai-redis-"))
        self._process = subprocess.Popen(
            [
                redis_server_binary(),
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self._dir),
                "--logfile",
                str(self._dir / "redis.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while not self.ping():
            if self._process.poll() is not None or time.monotonic() > deadline:
                log = (self._dir / "redis.log").read_text(errors="replace")[-2000:]
                self.stop()
                raise RuntimeError(f"redis-server did not start: {log}")
            time.sleep(0.05)
        return self

    def ping(self) -> bool:
        """True when the server answers PING (a raw RESP exchange: no client needed)."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
