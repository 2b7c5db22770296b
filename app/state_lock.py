"""StateDirLock: one running gateway per state dir.

The state dir holds what a gateway generates for its OpenCode (its config layer with the
providers, the workspaces, the isolated home, the logs). Two gateways sharing one would
overwrite each other's OpenCode config, and a request to one could reach the other's
providers. So a gateway holds an exclusive lock on `<state dir>/gateway.lock` while it runs
(released by the kernel when the process ends, however it ends); a second gateway pointed at
the same dir is refused, with the holder's pid and command line. Refusing, rather than making
a directory per instance, keeps what a user configured in one place and makes a second
gateway an explicit choice (`--state-dir`).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from opencode_openai.core.settings import SettingsError

__all__ = ["StateDirInUse", "check_state_dir", "hold_state_dir"]

LOCK_FILE = "gateway.lock"


class StateDirInUse(SettingsError):
    """Another live gateway holds the state dir."""

    def __init__(self, state_dir: Path, holder: str) -> None:
        super().__init__(
            f"the state dir {state_dir} is in use by another gateway ({holder}); give this one "
            "its own with --state-dir / OPENCODE_OPENAI_STATE_DIR"
        )


def _holder(lock: Path) -> str:
    with contextlib.suppress(OSError):
        pid, _, command = lock.read_text().partition("\n")
        if pid.strip():
            return f"pid {pid.strip()}: {command.strip()}" if command.strip() else f"pid {pid}"
    return "pid unknown"


@contextlib.contextmanager
def hold_state_dir(state_dir: Path) -> Iterator[None]:
    """Hold the state dir for the duration of the block (StateDirInUse if another holds it)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    lock = state_dir / LOCK_FILE
    fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StateDirInUse(state_dir, _holder(lock)) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n{' '.join(sys.argv)}\n".encode())
        yield
    finally:
        os.close(fd)  # releases the lock


def check_state_dir(state_dir: Path) -> None:
    """Refuse at once (StateDirInUse) when another gateway holds the state dir."""
    lock = state_dir / LOCK_FILE
    if not lock.exists():
        return
    fd = os.open(lock, os.O_RDONLY | os.O_CLOEXEC)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StateDirInUse(state_dir, _holder(lock)) from None
    finally:
        os.close(fd)
