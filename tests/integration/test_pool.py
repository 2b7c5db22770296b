"""A pool of OpenCode processes: least-loaded routing, conversation affinity, recycling."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.support import fake_upstream as fu
from tests.support.gateway import API_KEY, GatewayServer, gateway_config

pytestmark = pytest.mark.opencode

AUTH = {"Authorization": f"Bearer {API_KEY}"}


@pytest.fixture(scope="module")
def pool_gateway(
    fake_upstream: fu.FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayServer]:
    config = gateway_config(
        tmp_path_factory.mktemp("pool"),
        fake_upstream.base_url,
        opencode_workers=2,
        recycle_after_turns=8,
    )
    server = GatewayServer(config).start()
    yield server
    server.stop()


def workers(gateway: GatewayServer) -> list[dict[str, Any]]:
    health = httpx.get(f"{gateway.url}/health").json()
    result: list[dict[str, Any]] = health["backend"]["workers"]
    return result


def chat(gateway: GatewayServer, opening: str, follow_up: str | None = None) -> httpx.Response:
    messages = [{"role": "user", "content": opening}]
    if follow_up:
        messages += [{"role": "assistant", "content": "ok"}, {"role": "user", "content": follow_up}]
    return httpx.post(
        f"{gateway.base_url}/chat/completions",
        headers=AUTH,
        timeout=60,
        json={"model": "fake/fake-model", "messages": messages},
    )


def served(gateway: GatewayServer) -> list[int]:
    return [w["turns_served"] + w["recycles"] * 1000 for w in workers(gateway)]


def test_two_processes_both_serve(
    pool_gateway: GatewayServer, fake_upstream: fu.FakeUpstream, marker: str
) -> None:
    state = workers(pool_gateway)
    assert [w["state"] for w in state] == ["ready", "ready"]
    assert len({w["pid"] for w in state}) == 2
    fake_upstream.script(marker, fu.text("ok", delay_s=0.3))
    before = served(pool_gateway)
    with ThreadPoolExecutor(6) as pool:
        statuses = [
            r.status_code
            for r in pool.map(lambda i: chat(pool_gateway, f"{marker} conversation {i}"), range(6))
        ]
    assert statuses == [200] * 6
    after = served(pool_gateway)
    assert all(a > b for a, b in zip(after, before, strict=True)), (before, after)


def test_a_conversation_stays_on_its_process(
    pool_gateway: GatewayServer, fake_upstream: fu.FakeUpstream, marker: str
) -> None:
    fake_upstream.script(marker, fu.text("ok"))
    for attempt in range(3):
        before = served(pool_gateway)
        changed = []
        for turn in range(3):
            assert (
                chat(
                    pool_gateway, f"{marker} same opening {attempt}", follow_up=f"turn {turn}"
                ).status_code
                == 200
            )
            after = served(pool_gateway)
            changed.append(tuple(a != b for a, b in zip(after, before, strict=True)))
            before = after
        if all(w["draining"] is False for w in workers(pool_gateway)):
            assert len(set(changed)) == 1, f"one conversation moved between processes: {changed}"
            return
    pytest.fail("a worker was recycling during every attempt")


def test_processes_are_recycled_without_losing_requests(
    pool_gateway: GatewayServer, fake_upstream: fu.FakeUpstream, marker: str
) -> None:
    fake_upstream.script(marker, fu.text("ok", delay_s=0.05))
    pids_before = {w["pid"] for w in workers(pool_gateway)}
    recycles_before = sum(w["recycles"] for w in workers(pool_gateway))
    with ThreadPoolExecutor(4) as pool:
        statuses = [
            r.status_code
            for r in pool.map(lambda i: chat(pool_gateway, f"{marker} {i}"), range(40))
        ]
    assert statuses == [200] * 40, statuses
    # Recycling ends with every worker ready and none draining.
    fake_upstream.wait_for(
        lambda: all(not w["draining"] and w["state"] == "ready" for w in workers(pool_gateway)),
        timeout=60,
    )
    state = workers(pool_gateway)
    assert sum(w["recycles"] for w in state) > recycles_before
    assert {w["pid"] for w in state} != pids_before
