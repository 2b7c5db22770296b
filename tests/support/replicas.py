"""Gateway replicas as real processes, for the tests and the bench behind nginx.

Each replica is `python -m opencode_openai.cli.main server-openai` (this checkout's code) with
its embedded OpenCode, its own port and state dir, and the fake upstream as its only provider,
so it can be killed (SIGKILL) and stopped (SIGTERM) as an operator's would. Its output (the
access lines with each request's id) goes to `replica-N.log`, appended over restarts.

A replica may be restarted by another process (deploy/nginx/rolling-restart runs a command per
replica): `python -m tests.support.replicas restart SPEC PORT` stops the one on PORT (SIGTERM,
then waits for it to exit) and starts it again, detached. So every replica's pid is kept in a
pid file, and the launch of each is written to SPEC (JSON).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

__all__ = ["SITE", "Replica", "ReplicaSet", "process_gone", "replicas_site"]

ROOT = Path(__file__).resolve().parents[2]
SITE = ROOT / "deploy" / "nginx" / "replicas.conf"


def replicas_site(
    addresses: Sequence[str], *, port: int, cert: Path, key: Path, access_log: Path
) -> str:
    """deploy/nginx/replicas.conf with only its ports and paths changed: listening on
    127.0.0.1:`port`, its three `server` lines naming `addresses`."""
    from tests.support.nginx import substitute

    site = SITE.read_text()
    site = substitute(site, r"^(\s*listen) 443 ssl;", rf"\1 127.0.0.1:{port} ssl;")
    site = substitute(site, r"^(\s*ssl_certificate)\s+\S+;", rf"\1 {cert};")
    site = substitute(site, r"^(\s*ssl_certificate_key)\s+\S+;", rf"\1 {key};")
    site = substitute(site, r"^(\s*access_log) /var/log/nginx/\S+", rf"\1 {access_log}")
    assert len(addresses) == 3, "the site names three replicas"
    for n, address in enumerate(addresses, start=1):
        site = substitute(site, rf"^(\s*server) 127\.0\.0\.1:404{n} ", rf"\1 {address} ")
    return site


def process_gone(pid: int) -> bool:
    """True once `pid` has exited (a zombie counts: it holds no port, no lock, no file)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


@dataclass
class Replica:
    """One gateway process; `argv`/`env` start it, `pid_file` names the one running."""

    index: int
    port: int
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    log: Path
    pid_file: Path
    _child: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def address(self) -> str:
        """As nginx names it (`server` lines, `$upstream_addr`)."""
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        with contextlib.suppress(OSError, ValueError):
            return int(self.pid_file.read_text())
        return None

    def spawn(self, *, detached: bool = False) -> None:
        """Start the process (not waiting for it to be ready)."""
        with self.log.open("ab") as out:
            proc = subprocess.Popen(
                self.argv,
                cwd=self.cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                start_new_session=detached,
            )
        self.pid_file.write_text(str(proc.pid))
        self._child = None if detached else proc

    def alive(self) -> bool:
        if self._child is not None and self._child.poll() is not None:
            self._child = None  # reaped
        if self._child is not None and self._child.pid == self.pid:
            return True
        pid = self.pid
        return pid is not None and not process_gone(pid)

    def wait_ready(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(httpx.HTTPError, ValueError):
                if httpx.get(f"{self.url}/health", timeout=2).json()["status"] == "ok":
                    return
            if not self.alive() or time.monotonic() > deadline:
                raise RuntimeError(f"replica {self.index} did not start: {self.log_tail()}")
            time.sleep(0.1)

    def signal(self, sig: signal.Signals) -> None:
        pid = self.pid
        if pid is not None and not process_gone(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    def wait_gone(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self.alive():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def kill(self) -> None:
        """SIGKILL: no drain, no goodbye (its OpenCode is told to die with it)."""
        self.signal(signal.SIGKILL)
        self.wait_gone(10)

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM and wait; SIGKILL if it outlives `timeout`."""
        self.signal(signal.SIGTERM)
        if not self.wait_gone(timeout):
            self.kill()

    def served(self, request_id: str) -> bool:
        """Whether this replica's access log has a line for `request_id` (it answered it)."""
        return f'"request_id": "{request_id}"' in self.log.read_text(errors="replace")

    def log_tail(self, chars: int = 3000) -> str:
        with contextlib.suppress(OSError):
            return self.log.read_text(errors="replace")[-chars:]
        return ""

    def as_spec(self) -> dict[str, Any]:
        return {
            "argv": self.argv,
            "env": self.env,
            "cwd": str(self.cwd),
            "log": str(self.log),
            "pid_file": str(self.pid_file),
        }


class ReplicaSet:
    """N replicas of one gateway configuration, each with its own port and state dir."""

    def __init__(
        self,
        workdir: Path,
        count: int,
        *,
        state_dir: Callable[[], Path],
        opencode_config: Path,
        api_key: str,
        extra_args: Sequence[str] = (),
        python: str = sys.executable,
    ) -> None:
        from tests.support.gateway import free_port

        self.workdir = workdir
        self.spec = workdir / "replicas.json"
        self._new_state_dir = state_dir
        self.replicas: list[Replica] = []
        for index in range(count):
            port = free_port()
            argv = [
                python, "-m", "opencode_openai.cli.main", "server-openai",
                "--port", str(port), "--key", api_key, "--isolated",
                "--opencode-config", str(opencode_config),
                "--log-level", "info", *extra_args,
            ]  # fmt: skip
            env = {
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "HOME": str(workdir),
                "PYTHONPATH": str(ROOT),  # this checkout's code
            }
            log, pid_file = workdir / f"replica-{index}.log", workdir / f"replica-{index}.pid"
            self.replicas.append(Replica(index, port, argv, env, workdir, log, pid_file))

    def __iter__(self) -> Any:
        return iter(self.replicas)

    def __getitem__(self, index: int) -> Replica:
        return self.replicas[index]

    def __len__(self) -> int:
        return len(self.replicas)

    def by_address(self, address: str) -> Replica:
        return next(r for r in self.replicas if r.address == address)

    def start(self, timeout: float = 180.0) -> ReplicaSet:
        """The first alone, then the others: an isolated OpenCode home's first start installs
        OpenCode's plugin SDK (~12 s), which the state dirs made after it copy
        (`fresh_state_dir`)."""
        try:
            for group in (self.replicas[:1], self.replicas[1:]):
                for replica in group:
                    replica.argv += ["--state-dir", str(self._new_state_dir())]
                    replica.spawn()
                for replica in group:
                    replica.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        self.spec.write_text(json.dumps({str(r.port): r.as_spec() for r in self.replicas}))
        return self

    def stop(self) -> None:
        for replica in self.replicas:
            replica.signal(signal.SIGTERM)
        for replica in self.replicas:
            if not replica.wait_gone(30):
                replica.kill()


def restart(spec_file: Path, port: int, timeout: float = 60.0) -> int:
    """Stop the replica on `port` (SIGTERM, wait) and start it again, detached."""
    spec = json.loads(spec_file.read_text())[str(port)]
    paths = Path(spec["cwd"]), Path(spec["log"]), Path(spec["pid_file"])
    replica = Replica(-1, port, spec["argv"], spec["env"], *paths)
    replica.signal(signal.SIGTERM)
    if not replica.wait_gone(timeout):
        print(f"replica on {port} did not stop in {timeout:g} s; killed", file=sys.stderr)
        replica.kill()
    replica.spawn(detached=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 3 or args[0] != "restart":
        print("usage: python -m tests.support.replicas restart SPEC PORT|ADDRESS", file=sys.stderr)
        return 2
    port = re.sub(r"^.*:", "", args[2])
    return restart(Path(args[1]), int(port))


if __name__ == "__main__":
    raise SystemExit(main())
