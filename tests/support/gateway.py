"""Real servers for the tests: the gateway in a real uvicorn on a free port, in a thread.

The gateway is built by the same `create_app` the CLI uses; only the config differs.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import socket
import tempfile
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from opencode_openai.app import create_app
from opencode_openai.backend import OpenCodeBackend
from opencode_openai.core.settings import GatewayConfig, Secret

API_KEY = "sk-test-gateway-key"
SECOND_KEY = "sk-test-second-key"
CORS_ORIGIN = "https://app.example.test"

#: Models the fake upstream serves, as OpenCode provider `fake` declares them.
FAKE_PROVIDER = "fake"


def opencode_config(base_url: str) -> dict[str, Any]:
    """OpenCode config for the tests: one provider, `fake`, pointing at the fake upstream."""
    return {
        "model": "fake/fake-model",
        # OpenCode also offers its own hosted models without a key; the tests want only ours.
        "enabled_providers": [FAKE_PROVIDER, "dead"],
        "provider": {
            FAKE_PROVIDER: {
                "npm": "@ai-sdk/openai-compatible",
                "name": "Fake upstream",
                "options": {"baseURL": base_url, "apiKey": "sk-fake-upstream"},
                "models": {
                    "fake-model": {
                        "name": "Fake model",
                        "limit": {"context": 100000, "output": 4096},
                    },
                    "fake-vision-model": {
                        "name": "Fake vision model",
                        "attachment": True,
                        "modalities": {"input": ["text", "image"], "output": ["text"]},
                        "limit": {"context": 100000, "output": 4096},
                    },
                    "fake-reasoning-model": {
                        "name": "Fake reasoning model",
                        "reasoning": True,
                        "limit": {"context": 100000, "output": 4096},
                    },
                },
            },
            # A provider nobody listens for: "unreachable upstream".
            "dead": {
                "npm": "@ai-sdk/openai-compatible",
                "name": "Unreachable upstream",
                "options": {"baseURL": "http://127.0.0.1:9/v1", "apiKey": "sk-none"},
                "models": {
                    "dead-model": {"name": "Dead model", "limit": {"context": 1000, "output": 100}}
                },
            },
        },
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class GatewayServer:
    """One gateway in a background thread; `backend` is set once OpenCode is ready."""

    config: GatewayConfig
    backend: OpenCodeBackend | None = None
    _server: uvicorn.Server | None = None
    _thread: threading.Thread | None = None
    _ready: threading.Event = field(default_factory=threading.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.config.port}"

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def start(self, timeout: float = 120.0) -> GatewayServer:
        def on_ready(backend: OpenCodeBackend) -> None:
            self.backend = backend
            self._ready.set()

        app = create_app(self.config, on_ready=on_ready)
        self._server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.config.port, log_level="warning")
        )
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._ready.wait(0.2):
            if time.monotonic() > deadline or not self._thread.is_alive():
                self.stop()
                raise RuntimeError(f"gateway did not become ready: {self.health()}")
        return self

    def health(self) -> Any:
        try:
            return httpx.get(f"{self.url}/health", timeout=2).json()
        except httpx.HTTPError as exc:
            return repr(exc)

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(30)


#: This run's gateway state: a state dir per gateway under it (each running gateway holds its
#: own, app/state_lock.py). Per run, because the generated OpenCode config names this run's fake
#: upstream; removed when the run ends (conftest.py).
STATE_DIR = Path(tempfile.gettempdir()) / f"opencode-openai-test-state-{os.getpid()}"
_state_dirs = itertools.count()


def fresh_state_dir() -> Path:
    """A state dir for one more gateway of this run.

    An isolated OpenCode home installs OpenCode's plugin SDK on its first start (~64 MB,
    ~12 s): a copy of the first gateway's is put in each new one, so they start in seconds and
    still share nothing.
    """
    directory = STATE_DIR / f"gateway-{next(_state_dirs)}"
    installed = STATE_DIR / "gateway-0" / "opencode-home" / "config"
    if installed.is_dir() and not directory.exists():
        shutil.copytree(installed, directory / "opencode-home" / "config", symlinks=True)
    return directory


def gateway_config(tmp: Path, upstream_base_url: str, **overrides: Any) -> GatewayConfig:
    config_file = tmp / "opencode-extra.json"
    config_file.write_text(json.dumps(opencode_config(upstream_base_url)))
    config = GatewayConfig(
        host="127.0.0.1",
        port=free_port(),
        api_keys=(Secret(API_KEY),),
        isolated=True,
        opencode_config=config_file,
        state_dir=fresh_state_dir(),
        timeout_s=30.0,
        # Recycled only where a test asks for it (test_pool, test_supervision): over a whole
        # run OpenCode outgrows the default RSS bound, and an unplanned recycle would make
        # whatever test runs then wait for it.
        recycle_rss_mb=0,
    )
    return replace(config, **overrides)


def attached_to(gateway: GatewayServer, **overrides: Any) -> GatewayServer:
    """Another gateway, attached to `gateway`'s embedded OpenCode (ready in about a second)."""
    assert gateway.backend is not None and gateway.backend.workers[0].process is not None
    process = gateway.backend.workers[0].process
    settings: dict[str, Any] = {
        "port": free_port(),
        "opencode_url": process.url,
        "opencode_password": Secret(process.password),
        "state_dir": fresh_state_dir(),
    }
    return GatewayServer(replace(gateway.config, **{**settings, **overrides})).start()
