"""What /v1/models says of each model, and model aliases (--model-alias)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.support import fake_upstream as fu
from tests.support.gateway import API_KEY, GatewayServer, attached_to

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
