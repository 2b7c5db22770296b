"""Usage per key through a real `opencode serve`: /metrics by key name and model, and the usage
log, one JSON line per API request, with no prompt and no key in it."""

from __future__ import annotations

import json
from collections.abc import Iterator

import anthropic
import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from opencode_openai.cli.main import main
from opencode_openai.core.keys import ApiKey, hash_key
from opencode_openai.core.settings import Secret
from tests.support import fake_upstream as fu
from tests.support.gateway import API_KEY, GatewayServer, attached_to

pytestmark = pytest.mark.opencode

ALICE = "sk-oo-alice-usage-key"
MODEL = "fake/fake-model"


@pytest.fixture(scope="module")
def logged(
    gateway: GatewayServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayServer]:
    log = tmp_path_factory.mktemp("usage") / "usage.jsonl"
    server = attached_to(
        gateway,
        api_keys=(Secret(API_KEY),),
        keys=(ApiKey("alice", hash_key(ALICE), models=(MODEL,)),),
        usage_log=log,
    )
    yield server
    server.stop()


def test_each_api_request_is_a_usage_line_and_a_count_by_key(
    logged: GatewayServer,
    fake_upstream: fu.FakeUpstream,
    marker: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fake_upstream.script(marker, fu.text("counted", usage=fu.Usage(11, 7)))
    ids: list[str] = []
    with openai.OpenAI(base_url=logged.base_url, api_key=ALICE, max_retries=0) as client:
        reply = client.chat.completions.with_raw_response.create(
            model=MODEL, messages=[{"role": "user", "content": marker}]
        )
        ids.append(reply.headers["x-request-id"])
        with client.chat.completions.with_streaming_response.create(
            model=MODEL, messages=[{"role": "user", "content": marker}], stream=True
        ) as stream:
            list(stream.iter_lines())
            ids.append(stream.headers["x-request-id"])
        with pytest.raises(openai.NotFoundError) as hidden:
            client.chat.completions.create(
                model="fake/fake-vision-model", messages=[{"role": "user", "content": marker}]
            )
        ids.append(hidden.value.response.headers["x-request-id"])
    with anthropic.Anthropic(base_url=logged.url, api_key=ALICE, max_retries=0) as claude:
        message = claude.messages.with_raw_response.create(
            model=MODEL, max_tokens=16, messages=[{"role": "user", "content": marker}]
        )
        ids.append(message.headers["x-request-id"])
    refused = httpx.get(f"{logged.base_url}/models", headers={"Authorization": "Bearer wrong"})
    ids.append(refused.headers["x-request-id"])
    httpx.get(f"{logged.url}/health")  # not an API request: no line

    assert logged.config.usage_log is not None
    text = logged.config.usage_log.read_text()
    assert marker not in text and ALICE not in text and API_KEY not in text
    entries = {entry["request_id"]: entry for entry in map(json.loads, text.splitlines())}
    assert all(entry["route"] != "/health" for entry in entries.values())
    chat, streamed, not_found, messages, unauthorised = (entries[i] for i in ids)
    for turn in (chat, streamed, messages):
        assert (turn["key"], turn["model"], turn["status"]) == ("alice", MODEL, 200)
        assert (turn["prompt_tokens"], turn["completion_tokens"]) == (11, 7)
        assert turn["ttft_ms"] > 0 and turn["duration_ms"] >= turn["ttft_ms"]
    assert chat["route"] == "/v1/chat/completions" and messages["route"] == "/v1/messages"
    assert (not_found["key"], not_found["model"], not_found["status"]) == ("alice", None, 404)
    assert (unauthorised["key"], unauthorised["status"]) == (None, 401)

    metrics = httpx.get(f"{logged.url}/metrics", headers={"Authorization": f"Bearer {API_KEY}"})
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(metrics.text)
        for s in family.samples
    }
    alice = (("key", "alice"), ("model", MODEL))
    assert samples[("opencode_openai_key_requests_total", (*alice, ("status", "200")))] == 3
    assert (
        samples[
            (
                "opencode_openai_key_requests_total",
                (("key", "alice"), ("model", "none"), ("status", "404")),
            )
        ]
        == 1
    )
    assert samples[("opencode_openai_tokens_total", (alice[0], ("kind", "prompt"), alice[1]))] == 33
    assert (
        samples[("opencode_openai_tokens_total", (alice[0], ("kind", "completion"), alice[1]))]
        == 21
    )

    assert main(["usage", "--since", "1h", "--log", str(logged.config.usage_log)]) == 0
    rows = {tuple(r.split()[:2]): r.split()[2:] for r in capsys.readouterr().out.splitlines()[2:]}
    assert rows[("alice", MODEL)][:4] == ["3", "0", "33", "21"]
    assert rows[("alice", "-")][:2] == ["1", "1"]
