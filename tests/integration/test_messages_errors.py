"""Errors on the Messages routes: Anthropic's shape and statuses on every path, before the
handler (auth, routing, the body guard, validation) and in it, with a `request-id`."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from contract.anthropic_check import anthropic_types
from contract.openapi_check import our_spec
from tests.support.gateway import API_KEY, GatewayServer

pytestmark = pytest.mark.opencode

KEY = {"x-api-key": API_KEY, "anthropic-version": "2023-06-01"}


def body(**fields: Any) -> bytes:
    """A Messages body: the fake model, 5 tokens, one user message, and `fields`."""
    request = {"model": "fake/fake-model", "max_tokens": 5, **fields}
    request.setdefault("messages", [{"role": "user", "content": "hi"}])
    return json.dumps(request).encode()


GOOD = body()


def assert_anthropic_error(response: httpx.Response, status: int, kind: str) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["request-id"] == response.headers["x-request-id"]
    body = response.json()
    assert body["type"] == "error" and set(body) == {"type", "error"}
    assert body["error"]["type"] == kind and set(body["error"]) == {"type", "message"}
    from anthropic.types.shared import ErrorResponse

    assert anthropic_types().validate(ErrorResponse, response.content) == []
    assert our_spec().validate("AnthropicErrorResponse", body) == []
    message: str = body["error"]["message"]
    assert message
    return message


def post(
    gateway: GatewayServer,
    content: bytes,
    headers: dict[str, str],
    path: str = "/v1/messages",
) -> httpx.Response:
    return httpx.post(f"{gateway.url}{path}", content=content, headers=headers, timeout=30)


@pytest.mark.parametrize("path", ["/v1/messages", "/v1/messages/count_tokens"])
def test_missing_key_is_authentication_error(gateway: GatewayServer, path: str) -> None:
    message = assert_anthropic_error(
        post(gateway, GOOD, {"content-type": "application/json"}, path), 401, "authentication_error"
    )
    assert "x-api-key" in message and "Bearer" in message


@pytest.mark.parametrize(
    "headers",
    [{"x-api-key": "sk-wrong-key-123"}, {"Authorization": "Bearer sk-wrong-key-123"}],
    ids=["x-api-key", "bearer"],
)
def test_wrong_key_is_401_and_not_echoed(gateway: GatewayServer, headers: dict[str, str]) -> None:
    response = post(gateway, GOOD, {"content-type": "application/json", **headers})
    assert_anthropic_error(response, 401, "authentication_error")
    assert "sk-wrong-key-123" not in response.text


def test_models_take_the_x_api_key_too(gateway: GatewayServer) -> None:
    response = httpx.get(f"{gateway.url}/v1/models", headers=KEY)
    assert response.status_code == 200 and response.json()["has_more"] is False
    assert httpx.get(f"{gateway.url}/v1/models", headers={"x-api-key": "nope"}).status_code == 401


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"{not json", "JSON"),
        (b'{"model": "fake/fake-model", "messages": []}', "max_tokens"),
        (
            body(messages=[{"role": "robot", "content": "x"}]),
            "robot",
        ),
        (
            body(temperature=3),
            "temperature",
        ),
        (
            body(container="c1"),
            "container",
        ),
        (
            body(
                messages=[
                    {
                        "role": "user",
                        "content": [{"type": "image", "source": {"type": "file", "file_id": "f"}}],
                    }
                ]
            ),
            "file",
        ),
    ],
    ids=[
        "bad-json",
        "no-max-tokens",
        "unknown-role",
        "temperature-range",
        "container",
        "file-source",
    ],
)
def test_bad_bodies_are_invalid_request_errors(
    gateway: GatewayServer, body: bytes, fragment: str
) -> None:
    headers = {**KEY, "content-type": "application/json"}
    assert fragment in assert_anthropic_error(
        post(gateway, body, headers), 400, "invalid_request_error"
    )


def test_conversation_rules_are_400(gateway: GatewayServer) -> None:
    body = (
        b'{"model": "fake/fake-model", "max_tokens": 5, "messages": [{"role": "user", "content": '
        b'[{"type": "tool_result", "tool_use_id": "toolu_x", "content": "hi"}]}]}'
    )
    message = assert_anthropic_error(
        post(gateway, body, {**KEY, "content-type": "application/json"}),
        400,
        "invalid_request_error",
    )
    assert "toolu_x" in message


def test_image_for_a_text_model_is_400(gateway: GatewayServer) -> None:
    body = (
        b'{"model": "fake/fake-model", "max_tokens": 5, "messages": [{"role": "user", "content": '
        b'[{"type": "image", "source": {"type": "url", "url": "https://x.test/a.png"}}]}]}'
    )
    message = assert_anthropic_error(
        post(gateway, body, {**KEY, "content-type": "application/json"}),
        400,
        "invalid_request_error",
    )
    assert "image input" in message


def test_unknown_model_says_how_to_choose_or_alias(gateway: GatewayServer) -> None:
    unknown = body(model="claude-opus-5-5")
    for path in ("/v1/messages", "/v1/messages/count_tokens"):
        message = assert_anthropic_error(
            post(gateway, unknown, {**KEY, "content-type": "application/json"}, path),
            404,
            "not_found_error",
        )
        assert "claude-opus-5-5" in message and "--model-alias" in message


def test_unknown_route_under_messages_is_not_found_error(gateway: GatewayServer) -> None:
    response = httpx.get(f"{gateway.url}/v1/messages/batches", headers=KEY)
    assert_anthropic_error(response, 404, "not_found_error")


def test_wrong_method_is_invalid_request_error(gateway: GatewayServer) -> None:
    response = httpx.get(f"{gateway.url}/v1/messages", headers=KEY)
    assert_anthropic_error(response, 405, "invalid_request_error")


def test_wrong_content_type(gateway: GatewayServer) -> None:
    response = post(gateway, GOOD, {**KEY, "content-type": "text/plain"})
    assert_anthropic_error(response, 415, "invalid_request_error")


def test_oversize_body_is_request_too_large(tight_gateway: GatewayServer) -> None:
    big: dict[str, Any] = {
        "model": "fake/fake-model",
        "max_tokens": 5,
        "messages": [{"role": "user", "content": "x" * 100_000}],
    }
    import json

    response = post(
        tight_gateway, json.dumps(big).encode(), {**KEY, "content-type": "application/json"}
    )
    assert_anthropic_error(response, 413, "request_too_large")


def test_chat_routes_keep_openais_shape(gateway: GatewayServer) -> None:
    response = httpx.post(f"{gateway.url}/v1/chat/completions", content=b"{}", timeout=30)
    assert response.status_code == 401 and set(response.json()) == {"error"}
    assert "request-id" not in response.headers
