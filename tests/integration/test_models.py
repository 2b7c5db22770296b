"""What /v1/models says of each model, and model aliases (--model-alias)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import fake_upstream as fu
from tests.support.gateway import (
    API_KEY,
    GatewayServer,
    attached_to,
    free_port,
    fresh_state_dir,
    opencode_config,
)

pytestmark = pytest.mark.opencode

AUTH = {"Authorization": f"Bearer {API_KEY}"}
ALIAS = "claude-sonnet-4-5"


@pytest.fixture(scope="module")
def aliased(gateway: GatewayServer) -> Iterator[GatewayServer]:
    server = attached_to(
        gateway, model_aliases=((ALIAS, "fake/fake-model"), ("vision", "fake/fake-vision-model"))
    )
    yield server
    server.stop()


def test_models_say_what_each_can_do(http: httpx.Client) -> None:
    models = {m["id"]: m for m in http.get("/v1/models").json()["data"]}
    text, vision = models["fake/fake-model"], models["fake/fake-vision-model"]
    # From the test provider's OpenCode config (tests/support/gateway.py).
    assert (text["context_length"], text["max_model_len"], text["max_output_tokens"]) == (
        100000,
        100000,
        4096,
    )
    assert text["input_modalities"] == ["text"] and vision["input_modalities"] == ["text", "image"]
    assert text["capabilities"] == {
        "tools": True,
        "vision": False,
        "reasoning": False,
        "structured_output": True,
    }
    assert (
        vision["capabilities"]["vision"]
        and models["fake/fake-reasoning-model"]["capabilities"]["reasoning"]
    )
    assert models["opencode/default"]["alias_for"] == "fake/fake-model"
    assert http.get("/v1/models/fake/fake-vision-model").json() == vision


def test_aliases_are_listed_after_opencode_default(aliased: GatewayServer) -> None:
    ids = [m["id"] for m in httpx.get(f"{aliased.base_url}/models", headers=AUTH).json()["data"]]
    assert ids[-3:] == ["opencode/default", ALIAS, "vision"]
    model = httpx.get(f"{aliased.base_url}/models/{ALIAS}", headers=AUTH).json()
    assert (model["alias_for"], model["owned_by"]) == ("fake/fake-model", "opencode-openai")


def test_a_request_for_an_alias_runs_its_model(
    aliased: GatewayServer, fake_upstream: fu.FakeUpstream, marker: str
) -> None:
    fake_upstream.script(marker, fu.text("from the aliased model"))
    reply = httpx.post(
        f"{aliased.base_url}/chat/completions",
        json={"model": ALIAS, "messages": [{"role": "user", "content": marker}]},
        headers=AUTH,
        timeout=30,
    )
    assert reply.status_code == 200, reply.text
    assert reply.json()["choices"][0]["message"]["content"] == "from the aliased model"
    # As OpenAI names the snapshot that ran; the header says it whatever was asked for.
    assert reply.json()["model"] == "fake/fake-model"
    assert reply.headers["x-opencode-model"] == "fake/fake-model"
    [received] = fake_upstream.chat_requests(marker)
    assert received.body["model"] == "fake-model"


def test_an_alias_to_a_model_opencode_lacks_is_refused_at_start_up(
    fake_upstream: fu.FakeUpstream, tmp_path: Path
) -> None:
    config = tmp_path / "opencode.json"
    config.write_text(json.dumps(opencode_config(fake_upstream.base_url)))
    result = subprocess.run(
        [sys.executable, "-m", "opencode_openai.cli.main", "server-openai",
         "--port", str(free_port()), "--isolated", "--opencode-config", str(config),
         "--state-dir", str(fresh_state_dir()), "--model-alias", "gpt-4o=fake/no-such-model"],
        capture_output=True, text=True, timeout=120, check=False,
        env={k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_PRO", "OPENCODE"))},
    )  # fmt: skip
    assert result.returncode == 2, result.stderr[-2000:]
    [said] = [line for line in result.stderr.splitlines() if line.startswith("opencode-openai: ")]
    assert "gpt-4o=fake/no-such-model" in said and "--model-alias" in said
    assert "ready" not in result.stdout
