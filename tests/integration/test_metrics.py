"""GET /metrics: Prometheus text, behind the key, moved by real traffic."""

from __future__ import annotations

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support import fake_upstream as fu
from tests.support.gateway import API_KEY, GatewayServer

pytestmark = pytest.mark.opencode

AUTH = {"Authorization": f"Bearer {API_KEY}"}


def scrape(gateway: GatewayServer) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = httpx.get(f"{gateway.url}/metrics", headers=AUTH)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def test_metrics_need_the_key(gateway: GatewayServer) -> None:
    response = httpx.get(f"{gateway.url}/metrics")
    assert response.status_code == 401
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}


def test_metrics_follow_traffic(
    gateway: GatewayServer, client: openai.OpenAI, fake_upstream: fu.FakeUpstream, marker: str
) -> None:
    before = scrape(gateway)
    fake_upstream.script(
        marker, fu.text("counted", usage=fu.Usage(prompt_tokens=11, completion_tokens=7))
    )
    client.chat.completions.create(
        model="fake/fake-model", messages=[{"role": "user", "content": marker}]
    )
    list(
        client.chat.completions.create(
            model="fake/fake-model", messages=[{"role": "user", "content": marker}], stream=True
        )
    )
    fake_upstream.script(f"{marker}-fail", fu.invalid_api_key())
    with pytest.raises(openai.APIStatusError):
        client.chat.completions.create(
            model="fake/fake-model", messages=[{"role": "user", "content": f"{marker}-fail"}]
        )
    after = scrape(gateway)

    def delta(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert delta("opencode_openai_requests_total", route="/v1/chat/completions", status="200") == 2
    assert delta("opencode_openai_requests_total", route="/v1/chat/completions", status="502") == 1
    by_key = {"key": "api-key-1", "model": "fake/fake-model"}
    assert delta("opencode_openai_tokens_total", kind="prompt", **by_key) == 22
    assert delta("opencode_openai_tokens_total", kind="completion", **by_key) == 14
    assert delta("opencode_openai_key_requests_total", status="200", **by_key) == 2
    assert delta("opencode_openai_key_requests_total", status="502", **by_key) == 1
    assert delta("opencode_openai_time_to_first_token_seconds_count") == 2
    assert delta("opencode_openai_turn_errors_total", type="upstream_error", **by_key) == 1
    assert (
        delta("opencode_openai_request_duration_seconds_count", route="/v1/chat/completions") == 3
    )
    assert after[("opencode_openai_turns_running", ())] == 0
    assert after[("opencode_openai_opencode_processes", ())] == 1
    assert ("opencode_openai_requests_in_flight", ()) in after
