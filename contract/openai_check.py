"""Checks gateway responses and stream chunks against OpenAI's own schemas (contract/openai/).

Our spec could drift from OpenAI's without any test noticing; this holds what the gateway
actually sends to the schemas OpenAI publishes, which is what OpenAI clients are built on.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import httpx
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from .anthropic_check import is_anthropic_request

SCHEMAS_PATH = Path(__file__).resolve().parent / "openai" / "schemas.json"
_URI = "urn:openai-openapi"


def _response_schema(request: httpx.Request, status: int) -> str | None:
    """Which OpenAI schema a JSON response of the gateway's OpenAI API must satisfy."""
    method, path = request.method, request.url.path
    if not path.startswith("/v1/") or is_anthropic_request(request):
        return None  # Anthropic's API is the anthropic SDK's business (anthropic_check.py)
    if status >= 400:
        return "ErrorResponse"
    if (method, path) == ("POST", "/v1/chat/completions"):
        return "CreateChatCompletionResponse"
    if (method, path) == ("GET", "/v1/models"):
        return "ListModelsResponse"
    if method == "GET" and path.startswith("/v1/models/"):
        return "Model"
    if (method, path) == ("POST", "/v1/responses"):
        return "Response"
    if method == "GET" and path.startswith("/v1/responses/"):
        return "ResponseItemList" if path.endswith("/input_items") else "Response"
    if method == "DELETE" and path.startswith("/v1/responses/"):
        return DELETED  # OpenAI's document gives this answer no schema
    return None


#: The answer to DELETE /v1/responses/{id}: OpenAI's document has only an example of it,
#: `{"id": ..., "object": "response", "deleted": true}`, which is checked by hand.
DELETED = "(deleted response)"


def _deleted_problems(value: Any) -> list[str]:
    if (
        isinstance(value, dict)
        and isinstance(value.get("id"), str)
        and value.get("object") == "response"
        and value.get("deleted") is True
    ):
        return []
    return [f"not OpenAI's deleted response {{id, object: response, deleted: true}}: {value}"]


def is_responses_route(path: str) -> bool:
    return path == "/v1/responses" or path.startswith("/v1/responses/")


class OpenAISchemas:
    """The vendored OpenAI schemas, as JSON Schema 2020-12 validators."""

    def __init__(self, document: dict[str, Any]) -> None:
        resource = Resource.from_contents(document, default_specification=DRAFT202012)
        self._registry: Registry[Any] = Registry().with_resource(_URI, resource)
        self._validators: dict[str, Draft202012Validator] = {}
        schemas = document["components"]["schemas"]
        #: Each Responses stream event's schema, by its `type` (ResponseStreamEvent is an
        #: anyOf of them: validating against it gives one unreadable error).
        self.event_schemas: dict[str, str] = {}
        for branch in schemas["ResponseStreamEvent"]["anyOf"]:
            name = branch["$ref"].rsplit("/", 1)[1]
            for kind in schemas[name]["properties"]["type"].get("enum", ()):
                self.event_schemas[kind] = name

    def validator(self, name: str) -> Draft202012Validator:
        if name not in self._validators:
            schema = {"$ref": f"{_URI}#/components/schemas/{name}"}
            self._validators[name] = Draft202012Validator(schema, registry=self._registry)
        return self._validators[name]

    def validate(self, name: str, value: Any) -> list[str]:
        """Problems of `value` as an instance of OpenAI's `name` schema."""
        errors = sorted(
            self.validator(name).iter_errors(value), key=lambda e: list(e.absolute_path)
        )
        return [
            f"not a valid OpenAI {name}: at {'/'.join(map(str, e.absolute_path)) or '(root)'}: "
            f"{e.message[:300]}"
            for e in errors
        ]

    def response(self, request: httpx.Request, response: httpx.Response, body: bytes) -> list[str]:
        name = _response_schema(request, response.status_code)
        if name is None or response.headers.get("content-type", "").startswith("text/event-stream"):
            return []
        try:
            value = json.loads(body)
        except ValueError:
            return [f"status {response.status_code}: body is not JSON: {body[:200]!r}"]
        problems = _deleted_problems(value) if name == DELETED else self.validate(name, value)
        return [f"status {response.status_code}: {p}" for p in problems]

    def event(self, payload: Any) -> list[str]:
        is_error = isinstance(payload, dict) and "error" in payload
        return self.validate(
            "ErrorResponse" if is_error else "CreateChatCompletionStreamResponse", payload
        )

    def response_event(self, payload: Any) -> list[str]:
        """A Responses stream event, against the schema of its `type`."""
        kind = payload.get("type") if isinstance(payload, dict) else None
        name = self.event_schemas.get(str(kind))
        if name is None:
            return [f"not an OpenAI Responses stream event type: {kind!r}"]
        return self.validate(name, payload)

    def message_event(self, payload: Any) -> list[str]:
        return []  # Anthropic's stream events are not OpenAI's


@cache
def openai_schemas() -> OpenAISchemas:
    return OpenAISchemas(json.loads(SCHEMAS_PATH.read_text()))
