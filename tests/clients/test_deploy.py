"""The deployment files in deploy/, tested for real where this machine can run them.

- nginx (Debian's package, installed by scripts/install) with TLS, from
  deploy/nginx/opencode-openai.conf with only its ports and certificate paths changed: a stream
  must arrive through it chunk by chunk, not buffered.
- deploy/systemd/opencode-openai.service passes `systemd-analyze verify`.
- deploy/Dockerfile follows the install steps (read here, as text). It is built and run for
  real with podman by tests/deploy/test_image.py (`scripts/test-image`, not in the default run).
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.clients._support import MODEL, ROOT
from tests.support import fake_upstream as fu
from tests.support.gateway import API_KEY, GatewayServer, free_port
from tests.support.nginx import Nginx, need, self_signed_certificate, substitute

DEPLOY = ROOT / "deploy"
NGINX_SITE = DEPLOY / "nginx" / "opencode-openai.conf"
UNIT = DEPLOY / "systemd" / "opencode-openai.service"
DOCKERFILE = DEPLOY / "Dockerfile"


def nginx_site(gateway_port: int, port: int, cert: Path, key: Path) -> str:
    """deploy/nginx/opencode-openai.conf with only its ports and certificate paths changed."""
    site = NGINX_SITE.read_text()
    site = substitute(site, r"^(\s*server) 127\.0\.0\.1:4040;", rf"\1 127.0.0.1:{gateway_port};")
    site = substitute(site, r"^(\s*listen) 443 ssl;", rf"\1 127.0.0.1:{port} ssl;")
    site = substitute(site, r"^(\s*ssl_certificate)\s+\S+;", rf"\1 {cert};")
    return substitute(site, r"^(\s*ssl_certificate_key)\s+\S+;", rf"\1 {key};")


@pytest.fixture(scope="module")
def nginx(gateway: GatewayServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nginx]:
    workdir = tmp_path_factory.mktemp("nginx")
    cert, key = self_signed_certificate(workdir)
    port = free_port()
    site = nginx_site(gateway.config.port, port, cert, key)
    server = Nginx(site, workdir, port=port, cert=cert, worker_connections=64).start()
    yield server
    server.stop()


@pytest.mark.opencode
def test_stream_through_nginx_tls_arrives_chunk_by_chunk(
    nginx: Nginx, fake_upstream: fu.FakeUpstream, marker: str
) -> None:
    pieces = ["one ", "two ", "three ", "four"]
    fake_upstream.script(marker, fu.text(pieces, chunk_delay_s=0.3))
    with httpx.Client(verify=str(nginx.cert), timeout=30) as http_client:
        sdk = openai.OpenAI(
            base_url=f"{nginx.url}/v1", api_key=API_KEY, max_retries=0, http_client=http_client
        )
        started = time.monotonic()
        arrivals: list[tuple[float, str]] = [
            (time.monotonic() - started, chunk.choices[0].delta.content)
            for chunk in sdk.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": marker}], stream=True
            )
            if chunk.choices and chunk.choices[0].delta.content
        ]
    assert "".join(text for _, text in arrivals) == "one two three four"
    # Upstream sends a piece every 0.3 s: unbuffered, they arrive spread over ~0.9 s (on a busy
    # machine the first two may arrive together); a proxy that held the stream would deliver
    # them all at once at the end (seen: within 0.3 ms).
    spread = arrivals[-1][0] - arrivals[0][0]
    assert len({round(t, 2) for t, _ in arrivals}) >= 3 and spread > 0.45, arrivals


@pytest.mark.opencode
def test_non_stream_and_errors_through_nginx(
    nginx: Nginx, fake_upstream: fu.FakeUpstream, marker: str
) -> None:
    fake_upstream.script(marker, fu.text("through TLS"))
    with httpx.Client(base_url=nginx.url, verify=str(nginx.cert), timeout=30) as http:
        reply = http.post(
            "/v1/chat/completions",
            headers={"Authorization": f"Bearer {API_KEY}"},
            json={"model": MODEL, "messages": [{"role": "user", "content": marker}]},
        )
        assert reply.status_code == 200, reply.text
        assert reply.json()["choices"][0]["message"]["content"] == "through TLS"
        denied = http.get("/v1/models", headers={"Authorization": "Bearer sk-wrong"})
        assert denied.status_code == 401 and denied.json()["error"]["code"]
        assert http.get("/health").json()["status"] == "ok"
        # SDKs send model ids escaped (`fake%2Ffake-model`): nginx must pass the URI on as is,
        # which `proxy_pass` without a URI part does.
        model = http.get(
            "/v1/models/fake%2Ffake-model", headers={"Authorization": f"Bearer {API_KEY}"}
        )
        assert model.status_code == 200 and model.json()["id"] == "fake/fake-model"


def test_systemd_unit_verifies(tmp_path: Path) -> None:
    analyze = need("systemd-analyze")
    # The unit names the install location /opt/opencode-openai; point it at this checkout, whose
    # scripts/install made the same .venv/bin/opencode-openai, so the ExecStart check is real.
    unit = tmp_path / UNIT.name
    text = UNIT.read_text()
    assert "ExecStart=/opt/opencode-openai/.venv/bin/opencode-openai server-openai" in text
    unit.write_text(text.replace("/opt/opencode-openai", str(ROOT)))
    result = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    # verify only warns about unknown keys and bad values: any line about the unit is a fault.
    assert [line for line in result.stderr.splitlines() if UNIT.name in line] == [], result.stderr


def test_systemd_analyze_catches_a_broken_unit(tmp_path: Path) -> None:
    """The check above can fail: a typo in a key and a missing binary are both reported."""
    analyze = need("systemd-analyze")
    unit = tmp_path / UNIT.name
    unit.write_text(
        UNIT.read_text().replace("RestartSec=", "RestartSecs=").replace(".venv/bin", ".venv/nobin")
    )
    result = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0 and "RestartSecs" in result.stderr, result.stderr


def test_dockerfile_follows_the_install_steps() -> None:
    """The steps as text, without an engine (tests/deploy/test_image.py builds the image)."""
    text = DOCKERFILE.read_text()
    instructions = [line for line in text.splitlines() if line and not line.startswith((" ", "#"))]
    # Docker Hub's Node.js 20 image unless --build-arg BASE names another bookworm image.
    assert instructions[:2] == ["ARG BASE=node:20-bookworm-slim", "FROM ${BASE}"]
    assert re.search(r"^RUN .*scripts/install", text, re.MULTILINE)
    assert "COPY . ." in text
    [entrypoint] = [line for line in instructions if line.startswith("ENTRYPOINT")]
    assert (
        '".venv/bin/opencode-openai", "server-openai", "--host", "0.0.0.0"'
        in entrypoint.replace("/opt/opencode-openai/", "")
    )
    # The key comes from the environment at run time, never from the image.
    assert "OPENAI_PROXY_API_KEY=" not in text.replace("-e OPENAI_PROXY_API_KEY=", "")
    assert "USER opencode-openai" in text
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().split()
    assert {".venv", "node_modules", ".git"} <= set(ignore)
