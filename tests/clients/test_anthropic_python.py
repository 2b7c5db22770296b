"""The anthropic Python SDK against a gateway at capacity: its real 529 `overloaded_error`.

(The SDK's create, stream, tool round trip, thinking blocks and count_tokens are driven in
tests/integration/test_messages.py, every response held to the SDK's own types.)
"""

from __future__ import annotations

import anthropic
import httpx2
import pytest

from tests.clients._support import MODEL, occupied
from tests.support import fake_upstream as fu
from tests.support.gateway import API_KEY, GatewayServer

pytestmark = pytest.mark.opencode


def test_a_gateway_at_capacity_is_overloaded_529(
    busy_gateway: GatewayServer, fake_upstream: fu.FakeUpstream, marker: str
) -> None:
    with (
        occupied(busy_gateway, fake_upstream, marker),
        anthropic.Anthropic(
            base_url=busy_gateway.url,
            api_key=API_KEY,
            max_retries=0,
            http_client=httpx2.Client(timeout=30),
        ) as client,
        pytest.raises(anthropic.APIStatusError) as caught,
    ):
        client.messages.create(
            model=MODEL, max_tokens=10, messages=[{"role": "user", "content": marker}]
        )
    error = caught.value
    assert error.status_code == 529
    assert isinstance(error, anthropic.InternalServerError)  # the SDK's class for 5xx: retried
    assert error.body["error"]["type"] == "overloaded_error"  # type: ignore[index]
    assert error.response.headers["retry-after"] == "1"
    assert error.request_id
