"""Bad input and auth: always an OpenAI-shaped error with the right status, never 500 or 422."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.support.gateway import API_KEY, GatewayServer

pytestmark = pytest.mark.opencode

AUTH = {"Authorization": f"Bearer {API_KEY}"}
GOOD = b'{"model": "fake/fake-model", "messages": [{"role": "user", "content": "hi"}]}'


def assert_openai_error(response: httpx.Response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str) and error["message"]
    if code is not None:
        assert error["code"] == code
    return error


def post(
    gateway: GatewayServer, content: bytes | Iterator[bytes], headers: dict[str, str]
) -> httpx.Response:
    return httpx.post(
        f"{gateway.base_url}/chat/completions", content=content, headers=headers, timeout=30
    )


def test_missing_key_is_401(gateway: GatewayServer) -> None:
    response = post(gateway, GOOD, {"Content-Type": "application/json"})
    assert_openai_error(response, 401, "invalid_api_key")


def test_wrong_key_is_401_and_not_echoed(gateway: GatewayServer) -> None:
    response = post(
        gateway,
        GOOD,
        {"Content-Type": "application/json", "Authorization": "Bearer sk-wrong-key-123"},
    )
    error = assert_openai_error(response, 401, "invalid_api_key")
    assert "sk-wrong-key-123" not in response.text and API_KEY not in error["message"]


def test_models_need_a_key_but_health_does_not(gateway: GatewayServer) -> None:
    assert_openai_error(httpx.get(f"{gateway.base_url}/models"), 401)
    health = httpx.get(f"{gateway.url}/health")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert API_KEY not in health.text


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b'{"model": "fake/fake-model", "messages": [', "JSON"),
        (b"\xff\xfe\x00not utf-8", "UTF-8"),
        (b"", "empty"),
        (b"[1, 2]", "object"),
        (b'{"messages": [{"role": "user", "content": "hi"}]}', "model"),
        (b'{"model": "fake/fake-model", "messages": []}', ""),
        (b'{"model": "fake/fake-model", "messages": "hi"}', ""),
        (
            b'{"model": "fake/fake-model", "temperature": 7,'
            b' "messages": [{"role": "user", "content": "x"}]}',
            "",
        ),
        (b'{"model": "fake/fake-model", "messages": [{"role": "robot", "content": "x"}]}', ""),
        (b'{"model": "fake/fake-model", "messages": [{"role": "user", "content": 5}]}', ""),
        (b"[" * 100000 + b"]" * 100000, ""),
    ],
    ids=[
        "malformed",
        "non-utf8",
        "empty",
        "array",
        "no-model",
        "no-messages",
        "messages-string",
        "temperature-range",
        "bad-role",
        "content-number",
        "deep-json",
    ],
)
def test_bad_bodies_are_400(gateway: GatewayServer, body: bytes, fragment: str) -> None:
    response = post(gateway, body, {**AUTH, "Content-Type": "application/json"})
    error = assert_openai_error(response, 400)
    assert error["type"] == "invalid_request_error"
    assert fragment in error["message"]


def test_missing_content_type_is_read_as_json(gateway: GatewayServer) -> None:
    response = httpx.post(
        f"{gateway.base_url}/chat/completions",
        content=b'{"model": "nope/none", "messages": [{"role": "user", "content": "hi"}]}',
        headers=AUTH,
    )
    assert "content-type" not in response.request.headers
    assert_openai_error(response, 404, "model_not_found")


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"],
)
def test_wrong_content_type_is_415(gateway: GatewayServer, content_type: str) -> None:
    response = post(gateway, GOOD, {**AUTH, "Content-Type": content_type})
    assert_openai_error(response, 415, "unsupported_media_type")


def test_chunked_body_is_accepted(gateway: GatewayServer) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"model": "nope/none", '
        yield b'"messages": [{"role": "user", "content": "hi"}]}'

    response = post(gateway, chunks(), {**AUTH, "Content-Type": "application/json"})
    assert response.request.headers.get("transfer-encoding") == "chunked"
    assert_openai_error(response, 404, "model_not_found")


def test_oversize_body_is_413(tight_gateway: GatewayServer) -> None:
    big = (
        b'{"model": "fake/fake-model", "messages": [{"role": "user", "content": "'
        + b"x" * 100_000
        + b'"}]}'
    )
    assert_openai_error(post(tight_gateway, big, {**AUTH, "Content-Type": "application/json"}), 413)


def test_oversize_chunked_body_is_413(tight_gateway: GatewayServer) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"model": "fake/fake-model", "messages": [{"role": "user", "content": "'
        for _ in range(100):
            yield b"x" * 1024
        yield b'"}]}'

    assert_openai_error(
        post(tight_gateway, chunks(), {**AUTH, "Content-Type": "application/json"}), 413
    )


def test_unknown_route_is_404(gateway: GatewayServer) -> None:
    assert_openai_error(httpx.get(f"{gateway.base_url}/nothing-here", headers=AUTH), 404)


def test_unknown_model_retrieve_is_404(gateway: GatewayServer) -> None:
    response = httpx.get(f"{gateway.base_url}/models/nope/none", headers=AUTH)
    assert_openai_error(response, 404, "model_not_found")


def test_wrong_method_is_an_openai_error(gateway: GatewayServer) -> None:
    response = httpx.get(f"{gateway.base_url}/chat/completions", headers=AUTH)
    assert response.status_code == 405
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("n", 3),
        ("logprobs", True),
        ("top_logprobs", 2),
        ("logit_bias", {"50256": -100}),
        ("modalities", ["text", "audio"]),
        ("audio", {"voice": "alloy", "format": "mp3"}),
    ],
)
def test_fields_that_cannot_be_honoured_are_400_naming_the_field(
    gateway: GatewayServer, field: str, value: object
) -> None:
    body = {
        "model": "fake/fake-model",
        "messages": [{"role": "user", "content": "hi"}],
        field: value,
    }
    response = httpx.post(f"{gateway.base_url}/chat/completions", json=body, headers=AUTH)
    error = assert_openai_error(response, 400)
    assert error["param"] == field


def test_unknown_fields_are_accepted(gateway: GatewayServer) -> None:
    body = {
        "model": "nope/none",
        "messages": [{"role": "user", "content": "hi", "x_extra": 1}],
        "some_vendor_field": {"a": 1},
    }
    response = httpx.post(f"{gateway.base_url}/chat/completions", json=body, headers=AUTH)
    assert_openai_error(response, 404, "model_not_found")


def test_openapi_json_is_served(gateway: GatewayServer) -> None:
    spec = httpx.get(f"{gateway.url}/openapi.json").json()
    assert spec["openapi"] == "3.0.3"
    assert "/v1/chat/completions" in spec["paths"]


def test_schema_errors_name_the_field_and_stay_short(gateway: GatewayServer) -> None:
    body = {
        "model": "fake/fake-model",
        "messages": [{"role": "user", "content": "hi"}, {"role": "robot", "content": "x" * 50_000}],
    }
    response = httpx.post(f"{gateway.base_url}/chat/completions", json=body, headers=AUTH)
    error = assert_openai_error(response, 400)
    assert error["param"] == "messages[1].role"
    assert len(response.content) < 1000


@pytest.mark.parametrize("constant", [b"NaN", b"Infinity", b"-Infinity"])
def test_non_finite_numbers_are_400(gateway: GatewayServer, constant: bytes) -> None:
    body = (
        b'{"model": "fake/fake-model", "temperature": '
        + constant
        + b', "messages": [{"role": "user", "content": "x"}]}'
    )
    assert_openai_error(post(gateway, body, {**AUTH, "Content-Type": "application/json"}), 400)


def test_upper_case_content_type_is_json(gateway: GatewayServer) -> None:
    body = b'{"model": "nope/none", "messages": [{"role": "user", "content": "hi"}]}'
    response = post(gateway, body, {**AUTH, "Content-Type": "APPLICATION/JSON; charset=UTF-8"})
    assert_openai_error(response, 404, "model_not_found")
