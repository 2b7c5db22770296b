"""SIGHUP through the real command: the config file is read again, new requests get the new
keys, a stream in flight finishes under the old ones, and a file that does not validate is
refused (the log says why) while the old settings stay."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from opencode_openai.core.keys import hash_key
from tests.support import fake_upstream as fu
from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway import GatewayServer, free_port, fresh_state_dir

pytestmark = pytest.mark.opencode

ROOT = Path(__file__).resolve().parents[2]
ALICE, BOB = "sk-oo-alice-reload", "sk-oo-bob-reload"
MODEL = "fake/fake-model"


def keys_file(*named: tuple[str, str], port: int, extra: str = "") -> str:
    tables = "".join(
        f'\n[[keys]]\nname = "{name}"\nkey = "{hash_key(key)}"\nmodels = ["{MODEL}"]\n'
        for name, key in named
    )
    return f"port = {port}\n{extra}{tables}"


@dataclass
class Running:
    proc: subprocess.Popen[str]
    config: Path
    log: Path
    url: str

    def status(self, key: str) -> int:
        headers = {"Authorization": f"Bearer {key}"}
        return httpx.get(f"{self.url}/v1/models", headers=headers, timeout=10).status_code

    def reload(self, text: str) -> None:
        self.config.write_text(text)
        self.proc.send_signal(signal.SIGHUP)


@pytest.fixture
def running(gateway: GatewayServer, tmp_path: Path) -> Iterator[Running]:
    """The real command, attached to the session gateway's OpenCode, with a config file."""
    assert gateway.backend is not None and gateway.backend.workers[0].process is not None
    process = gateway.backend.workers[0].process
    port = free_port()
    config, log = tmp_path / "gateway.toml", tmp_path / "gateway.log"
    config.write_text(keys_file(("alice", ALICE), port=port))
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "PYTHONPATH": str(ROOT),  # this checkout's code
        "OPENCODE_SERVER_PASSWORD": process.password,
    }
    with log.open("w") as stderr:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "opencode_openai.cli.main",
                "server-openai",
                "--config",
                str(config),
                "--opencode-url",
                process.url,
                "--state-dir",
                str(fresh_state_dir()),
            ],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if "ready:" in line:
                break
        else:
            pytest.fail(f"the gateway did not start: {log.read_text()}")
        yield Running(proc, config, log, f"http://127.0.0.1:{port}")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        if proc.stdout is not None:
            proc.stdout.close()


def test_sighup_swaps_keys_for_new_requests_only(
    running: Running, fake_upstream: FakeUpstream, marker: str
) -> None:
    assert (running.status(ALICE), running.status(BOB)) == (200, 401)
    fake_upstream.script(marker, fu.text(["before ", "during ", "after"], chunk_delay_s=0.5))
    body = {"model": MODEL, "stream": True, "messages": [{"role": "user", "content": marker}]}
    with httpx.stream(
        "POST",
        f"{running.url}/v1/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {ALICE}"},
        timeout=30,
    ) as stream:
        lines = stream.iter_lines()
        next(line for line in lines if "before" in line)  # the stream has begun
        port = int(running.url.rsplit(":", 1)[1])
        running.reload(keys_file(("bob", BOB), port=port))
        FakeUpstream.wait_for(lambda: running.status(BOB) == 200, timeout=10)
        assert running.status(ALICE) == 401
        rest = [line[6:] for line in lines if line.startswith("data: ")]
    assert rest[-1] == "[DONE]"
    text = "".join(
        json.loads(d)["choices"][0]["delta"].get("content") or ""
        for d in rest[:-1]
        if json.loads(d).get("choices")
    )
    assert text == "during after"  # alice's stream, begun before the reload, ran to its end


def test_a_file_that_does_not_validate_is_refused_and_the_old_settings_stay(
    running: Running,
) -> None:
    port = int(running.url.rsplit(":", 1)[1])
    running.reload(keys_file(("bob", BOB), port=port, extra="prot = 1\n"))
    FakeUpstream.wait_for(lambda: "reload refused" in running.log.read_text(), timeout=10)
    assert f"{running.config}:2: prot: unknown setting" in running.log.read_text()
    assert (running.status(ALICE), running.status(BOB)) == (200, 401)
    # A setting that needs a restart is named, and the keys still change.
    running.reload(keys_file(("bob", BOB), port=port + 1))
    FakeUpstream.wait_for(lambda: running.status(BOB) == 200, timeout=10)
    assert "port changed; it takes effect after a restart" in running.log.read_text()
    assert running.status(ALICE) == 401


def aliases_file(port: int, **aliases: str) -> str:
    """Alice's key with every model, and `aliases`: a reload may rename the models."""
    table = "".join(f'{name} = "{target}"\n' for name, target in aliases.items())
    return (
        f"port = {port}\n\n[aliases]\n{table}\n"
        f'[[keys]]\nname = "alice"\nkey = "{hash_key(ALICE)}"\n'
    )


def test_sighup_renames_models_and_refuses_an_alias_to_no_model(
    running: Running, fake_upstream: FakeUpstream, marker: str
) -> None:
    port = int(running.url.rsplit(":", 1)[1])
    headers = {"Authorization": f"Bearer {ALICE}"}

    def listed() -> list[str]:
        models = httpx.get(f"{running.url}/v1/models", headers=headers, timeout=10).json()
        return [model["id"] for model in models["data"]]

    running.reload(aliases_file(port, quick=MODEL))
    FakeUpstream.wait_for(lambda: "quick" in listed(), timeout=10)
    fake_upstream.script(marker, fu.text("renamed"))
    answer = httpx.post(
        f"{running.url}/v1/chat/completions",
        json={"model": "quick", "messages": [{"role": "user", "content": marker}]},
        headers=headers,
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["choices"][0]["message"]["content"] == "renamed"
    assert answer.headers["x-opencode-model"] == MODEL

    # An alias to a model OpenCode does not offer: the whole reload is refused.
    running.reload(aliases_file(port, quick=MODEL, ghost="nowhere/no-model"))
    FakeUpstream.wait_for(lambda: "reload refused" in running.log.read_text(), timeout=10)
    assert "names a model OpenCode does not offer: ghost=nowhere/no-model" in (
        running.log.read_text()
    )
    names = listed()
    assert "quick" in names and "ghost" not in names
