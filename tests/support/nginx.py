"""nginx for the tests and the bench (Debian's nginx-light, installed by scripts/install).

It runs unprivileged, in the foreground, with everything it writes (pid, logs, temp files) in a
directory of its own, from a site file of deploy/nginx/ whose ports, certificate paths and log
paths the caller has changed with `substitute`. `need()` finds a program: a skip where it is
missing, but a failure in CI.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

__all__ = ["Nginx", "need", "self_signed_certificate", "substitute"]


def need(program: str, *fallbacks: str) -> str:
    """The path of `program`; a skip where it is missing, but a failure in CI."""
    found = shutil.which(program) or next((p for p in fallbacks if os.access(p, os.X_OK)), None)
    if found:
        return found
    reason = (
        f"{program} is not installed (scripts/install installs it as root where apt-get exists)"
    )
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI must run this test")
    pytest.skip(reason)


def substitute(text: str, pattern: str, replacement: str, *, count: int = 1) -> str:
    """Replace the lines that match `pattern` (`count` of them: the caller fails if the site
    file no longer has them)."""
    new, found = re.subn(pattern, replacement, text, flags=re.MULTILINE)
    assert found == count, f"{pattern!r} matched {found} lines, not {count}"
    return new


def self_signed_certificate(workdir: Path) -> tuple[Path, Path]:
    """A certificate for localhost and 127.0.0.1, and its key."""
    cert, key = workdir / "cert.pem", workdir / "key.pem"
    subprocess.run(
        [need("openssl"), "req", "-x509", "-newkey", "ec",
         "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(key),
         "-out", str(cert), "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


class Nginx:
    """nginx serving `site` (the text of a site file, included in its `http` block) over TLS
    on `port`, with `cert` the certificate clients verify."""

    def __init__(
        self, site: str, workdir: Path, *, port: int, cert: Path, worker_connections: int = 1024
    ) -> None:
        self.port = port
        self.workdir = workdir
        self.cert = cert
        self.site = workdir / "site.conf"
        self.site.write_text(site)
        self.conf = workdir / "nginx.conf"
        self.pid_file = workdir / "nginx.pid"
        self.error_log = workdir / "error.log"
        temp = workdir / "temp"
        temp.mkdir(exist_ok=True)
        self.conf.write_text(
            f"daemon off;\nworker_processes 1;\npid {self.pid_file};\n"
            f"error_log {self.error_log} notice;\n"
            f"events {{ worker_connections {worker_connections}; }}\n"
            f"http {{\n  access_log {workdir}/access.log;\n"
            + "".join(f"  {kind}_temp_path {temp}/{kind};\n"
                      for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
            + f"  include {self.site};\n}}\n"
        )  # fmt: skip
        self.binary = need("nginx", "/usr/sbin/nginx")
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def command(self) -> list[str]:
        """nginx for this instance (`-s reload` after it signals this master)."""
        return [self.binary, "-c", str(self.conf), "-p", str(self.workdir)]

    def check(self) -> None:
        result = subprocess.run([*self.command, "-t"], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr

    def start(self, timeout: float = 10.0) -> Nginx:
        self.check()
        self.process = subprocess.Popen(self.command, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while True:
            try:
                # Any answer will do (a 502 while no gateway is up): nginx is listening.
                httpx.get(f"{self.url}/health", verify=str(self.cert), timeout=1)
                return self
            except httpx.HTTPError as exc:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    log = self.error_log.read_text() if self.error_log.exists() else ""
                    self.stop()
                    raise RuntimeError(f"nginx did not start: {log}") from exc
                time.sleep(0.05)

    def workers(self) -> set[int]:
        """The pids of the master's worker processes that take new connections."""
        assert self.process is not None
        found = set()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == self.process.pid and cmdline.startswith(b"nginx: worker process\0"):
                found.add(int(entry.name))
        return found

    def reload(self, timeout: float = 10.0) -> None:
        """Read the site again (SIGHUP); returns once new workers have replaced the old ones,
        which finish their requests in the background."""
        self.check()
        before = self.workers()
        assert self.process is not None
        self.process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + timeout
        while (now := self.workers()) & before or not now:
            if time.monotonic() > deadline:
                raise RuntimeError(f"nginx did not reload: {self.error_log.read_text()[-2000:]}")
            time.sleep(0.02)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()  # nginx: fast shutdown, workers included
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
