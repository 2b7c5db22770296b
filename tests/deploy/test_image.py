"""deploy/Dockerfile built and run for real: `scripts/build-image` builds it with podman on a
Debian bookworm base made by debootstrap, and the container answers /health and a chat through
its embedded OpenCode, whose only provider is the session's fake upstream on the host's loopback
(`--network=host`).

Marked `image`: cold, the base and the image take minutes to build. `scripts/test-image` (or
`pytest -m image`) runs it alone, `-m 'not image'` leaves it out. Where
podman, debootstrap or root is missing it skips saying so, and fails under CI=true; once they
are there, a failed build or run fails the test.
"""

from __future__ import annotations

import json
import os
import resource
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import fake_upstream as fu
from tests.support.gateway import free_port, opencode_config

pytestmark = pytest.mark.image

ROOT = Path(__file__).resolve().parents[2]
TAG = "localhost/opencode-openai:test"
KEY = "sk-test-image-key"
#: Where the test mounts its OpenCode config in the container.
CONFIG_IN_CONTAINER = "/etc/opencode-openai/opencode.json"


def unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI must run this test")
    pytest.skip(reason)


def podman() -> list[str]:
    """podman with the settings scripts/build-image uses (it says why): runc where installed,
    and this process's own hard limits for the container's open files and processes."""
    runtime = os.environ.get("PODMAN_RUNTIME", "runc" if shutil.which("runc") else "")
    return ["podman", *(["--runtime", runtime] if runtime else [])]


def limits() -> list[str]:
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    nproc = resource.getrlimit(resource.RLIMIT_NPROC)[1]
    nproc = 32768 if nproc == resource.RLIM_INFINITY else min(nproc, 32768)
    return ["--ulimit", f"nofile={nofile}:{nofile}", "--ulimit", f"nproc={nproc}:{nproc}"]


def tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.splitlines()[-lines:])


@pytest.fixture(scope="module")
def image() -> str:
    for tool in ("podman", "debootstrap"):
        if not shutil.which(tool):
            unavailable(f"{tool} is not installed (scripts/install installs it as root)")
    if os.geteuid() != 0:
        unavailable("scripts/build-image needs root (debootstrap, rootful podman)")
    result = subprocess.run(
        [str(ROOT / "scripts" / "build-image"), TAG],
        capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    assert result.returncode == 0, tail(result.stdout + result.stderr)
    # The timings, for the summary (-rA shows them).
    print("\n".join(line for line in result.stdout.splitlines() if "scripts/build-image" in line))
    return TAG


@dataclass
class Container:
    name: str
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def state(self) -> dict[str, Any]:
        inspect = subprocess.run(
            [*podman(), "container", "inspect", "--format", "{{json .State}}", self.name],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        state: dict[str, Any] = json.loads(inspect.stdout)
        return state

    def logs(self) -> str:
        logs = subprocess.run([*podman(), "logs", self.name], capture_output=True, text=True)
        return tail(logs.stdout + logs.stderr)


@pytest.fixture(scope="module")
def container(
    image: str, fake_upstream: fu.FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Container]:
    config = tmp_path_factory.mktemp("image") / "opencode.json"
    config.write_text(json.dumps(opencode_config(fake_upstream.base_url)))
    config.chmod(0o644)  # the container's user is not root
    # --network=host: the fake upstream listens on the host's loopback, and so does the
    # gateway, on a free port (4040 may be taken here) that OPENAI_PROXY_PORT names.
    running = Container(f"opencode-openai-test-{secrets.token_hex(4)}", free_port())
    try:
        run = subprocess.run(
            [*podman(), "run", "--detach", "--name", running.name, "--network=host", *limits(),
             "-v", f"{config}:{CONFIG_IN_CONTAINER}:ro",
             "-e", f"OPENAI_PROXY_API_KEY={KEY}",
             "-e", f"OPENAI_PROXY_PORT={running.port}",
             "-e", f"OPENCODE_OPENAI_OPENCODE_CONFIG={CONFIG_IN_CONTAINER}",
             "-e", "OPENCODE_OPENAI_ISOLATED=1",
             image],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert run.returncode == 0, run.stderr
        # Ready once OpenCode has started and warmed up (~20 s the first time: the isolated
        # OpenCode home installs its plugin SDK).
        deadline = time.monotonic() + 180
        while True:
            try:
                if httpx.get(f"{running.url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            state = running.state()
            assert state["Running"], f"the container exited ({state}):\n{running.logs()}"
            assert time.monotonic() < deadline, f"not healthy in 180 s:\n{running.logs()}"
            time.sleep(0.5)
        yield running
    finally:
        subprocess.run([*podman(), "rm", "--force", running.name], capture_output=True)


def test_image_answers_health_and_a_chat_through_its_opencode(
    container: Container, fake_upstream: fu.FakeUpstream, marker: str
) -> None:
    fake_upstream.script(marker, fu.text("hello from the fake, through the container"))
    with httpx.Client(base_url=container.url, timeout=60) as http:
        health = http.get("/health").json()
        assert health["status"] == "ok" and health["backend"]["mode"] == "embedded", health
        # It listens on 0.0.0.0, so it holds to the key it was given.
        assert http.get("/v1/models").status_code == 401
        reply = http.post(
            "/v1/chat/completions",
            headers={"Authorization": f"Bearer {KEY}"},
            json={"model": "fake/fake-model", "messages": [{"role": "user", "content": marker}]},
        )
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["choices"][0]["message"]["content"] == "hello from the fake, through the container"
    assert body["model"] == "fake/fake-model"
    # The reply came from the fake, by way of the container's OpenCode.
    assert len(fake_upstream.chat_requests(marker)) == 1


def test_image_healthcheck_passes_on_the_port_it_was_given(container: Container) -> None:
    """The image's HEALTHCHECK (kept by --format docker) is run once by podman, for real."""
    check = subprocess.run(
        [*podman(), "healthcheck", "run", container.name], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_image_metadata(image: str) -> None:
    inspect = subprocess.run(
        [*podman(), "image", "inspect", "--format", "{{json .Config}}", image],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    config = json.loads(inspect.stdout)
    assert config["User"] == "opencode-openai"
    assert "4040/tcp" in config["ExposedPorts"]
    assert config["Entrypoint"][:2] == ["/usr/bin/tini", "--"]
    assert config["Entrypoint"][-3:] == ["server-openai", "--host", "0.0.0.0"]
    assert "OPENAI_PROXY_PORT=4040" in config["Env"]
    assert not any(env.startswith("OPENAI_PROXY_API_KEY=") for env in config["Env"])


def test_image_refuses_to_start_without_a_key(image: str) -> None:
    """On 0.0.0.0 without OPENAI_PROXY_API_KEY or --api-key: exit code 2, saying why."""
    result = subprocess.run(
        [*podman(), "run", "--rm", "--network=host", *limits(), image, "--port", str(free_port())],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2, result.stdout + result.stderr
    assert "opencode-openai:" in result.stderr and "key" in result.stderr, result.stderr
