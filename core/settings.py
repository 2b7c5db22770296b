"""GatewayConfig: every setting in one frozen object, built once from flags and env."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["GatewayConfig", "Secret", "default_state_dir", "is_loopback"]


class Secret:
    """A string that never shows itself in a repr, a log line or a traceback."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def default_state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "opencode-openai"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class GatewayConfig:
    host: str = "127.0.0.1"
    port: int = 4040
    #: Accepted bearer keys; empty with `auth` on means nobody gets in.
    api_keys: tuple[Secret, ...] = ()
    #: False only with --no-auth, which is refused beyond loopback.
    auth: bool = True
    #: OPENAI_PROXY_TIMEOUT: the longest a request may take, first byte to last.
    timeout_s: float = 60.0
    #: Requests whose body is larger get 413 (images travel inline, so keep it generous).
    max_body_bytes: int = 32 * 1024 * 1024
    #: Attach mode: an OpenCode server already running; None starts an embedded one.
    opencode_url: str | None = None
    opencode_password: Secret | None = None
    opencode_bin: str | None = None
    #: Extra OpenCode config merged into the generated layer (embedded mode).
    opencode_config: Path | None = None
    #: A throwaway OpenCode home: no user config, auth or provider keys from the environment.
    isolated: bool = False
    #: Where the gateway keeps its OpenCode workspace (agent + plugin) between runs.
    state_dir: Path = field(default_factory=default_state_dir)
    #: How long OpenCode may take to start and warm up before start-up fails.
    startup_timeout_s: float = 120.0
    #: Turns running at once per OpenCode process, and turns waiting beyond those (then 429).
    max_concurrent_turns: int = 64
    max_queued_turns: int = 256
    #: Browser origins allowed by CORS; none by default (CORS off).
    cors_origins: tuple[str, ...] = ()
    #: On SIGTERM, how long running requests may take to finish before they are aborted.
    shutdown_grace_s: float = 10.0
    #: Embedded OpenCode processes (one per core scales throughput); attach mode has one.
    opencode_workers: int = 1
    #: Recycle (drain, then restart) an OpenCode process after this many turns, or once it grows
    #: past this RSS; 0 turns it off. OpenCode keeps memory it once used.
    recycle_after_turns: int = 5000
    recycle_rss_mb: int = 1536

    @property
    def mode(self) -> str:
        return "attach" if self.opencode_url else "embedded"
