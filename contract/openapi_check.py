"""Checks gateway responses and stream chunks against openapi/openapi.yaml with openapi-core.

Every check returns a list of problems (empty when the message conforms) instead of raising,
so a caller can collect what one exchange got wrong and report it all at once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

import httpx
import yaml
from jsonschema.exceptions import best_match
from openapi_core import Config, OpenAPI
from openapi_core.datatypes import RequestParameters
from openapi_core.exceptions import OpenAPIError
from openapi_core.templating.paths.exceptions import PathError
from openapi_core.validation.schemas import (
    oas30_read_schema_validators_factory,
    oas30_write_schema_validators_factory,
)
from openapi_core.validation.schemas.exceptions import InvalidSchemaValue
from openapi_core.validation.schemas.validators import SchemaValidator
from werkzeug.datastructures import Headers, ImmutableMultiDict

SPEC_PATH = Path(__file__).resolve().parent.parent / "openapi" / "openapi.yaml"

# openapi-core knows neither `format: path` nor event streams: accept the first, and read
# a stream body as text (its events are checked one by one, see `OurSpec.event`).
_CONFIG = Config(
    extra_format_validators={"path": lambda value: isinstance(value, str)},
    extra_format_unmarshallers={"path": str},
    extra_media_type_deserializers={
        "text/event-stream": lambda body, charset="utf-8": body.decode(charset)
    },
    # A response field the spec does not document is a contract gap too.
    additional_properties_default_policy="forbid",
)


@dataclass(frozen=True)
class _Request:
    """An httpx request as openapi-core's Request protocol wants it."""

    host_url: str
    path: str
    method: str
    body: bytes | None
    content_type: str
    parameters: RequestParameters = field(default_factory=RequestParameters)


@dataclass(frozen=True)
class _Response:
    """An httpx response (or only its head, for a stream) for openapi-core."""

    status_code: int
    content_type: str
    headers: Headers
    data: bytes


def _error_text(error: Any) -> str:
    """A schema error, where it is, and for a failed oneOf / anyOf the likeliest reason."""
    text = f"at {'/'.join(map(str, error.absolute_path)) or '(root)'}: {error.message[:300]}"
    if error.context:
        branches: dict[Any, list[Any]] = {}
        for sub in error.context:
            branches.setdefault(sub.relative_schema_path[0], []).append(sub)
        # The branch the value is closest to: the fewest problems, then the deepest.
        closest = min(branches.values(), key=lambda errs: (len(errs), -len(errs[0].path)))
        reason = best_match(closest)
        text += f" (likeliest: at {'/'.join(map(str, reason.absolute_path)) or '(root)'}: "
        text += f"{reason.message[:300]})"
    return text


def describe(exc: BaseException) -> str:
    """The schema errors behind `exc`, each with where in the value it is (else `exc` itself)."""
    errors: list[str] = []
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, InvalidSchemaValue):
            errors += [_error_text(e) for e in cause.schema_errors]
        cause = cause.__cause__
    return f"{type(exc).__name__}: {'; '.join(errors)}" if errors else str(exc)


class OurSpec:
    """openapi/openapi.yaml, parsed once: checks whole responses and single stream events."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.api = OpenAPI.from_dict(spec, config=_CONFIG)
        self._schemas: dict[str, SchemaValidator] = {}
        union = spec["components"]["schemas"].get("ResponseStreamEvent", {})
        mapping = (union.get("discriminator") or {}).get("mapping", {})
        #: The spec's Responses stream events: `type` -> schema name (its discriminator).
        self._events = {kind: ref.rsplit("/", 1)[1] for kind, ref in mapping.items()}
        # Paths whose last parameter is `format: path` (a model id with `/` in it): openapi-core
        # only matches them with the `/` percent-encoded.
        self._slash_prefixes = tuple(
            path.rsplit("{", 1)[0]
            for path, item in spec["paths"].items()
            for operation in item.values()
            if isinstance(operation, dict)  # not a path item's own `parameters`
            for parameter in operation.get("parameters", [])
            if parameter.get("in") == "path" and parameter["schema"].get("format") == "path"
        )

    def schema(self, name: str) -> SchemaValidator:
        if name not in self._schemas:
            self._schemas[name] = oas30_read_schema_validators_factory.create(
                self.api.spec,
                self.api.spec / "components" / "schemas" / name,
                forbid_unspecified_additional_properties=True,
            )
        return self._schemas[name]

    def validate(self, name: str, value: Any) -> list[str]:
        """Problems of `value` as an instance of `components.schemas[name]`."""
        try:
            self.schema(name).validate(value)
        except OpenAPIError as exc:
            return [f"not a valid {name}: {describe(exc)}"]
        return []

    def request_body(self, path: str, method: str, body: Any) -> list[str]:
        """Problems of `body` as an operation's JSON request body (unknown fields allowed)."""
        operation = self.api.spec / "paths" / path / method
        schema = operation / "requestBody" / "content" / "application/json" / "schema"
        try:
            oas30_write_schema_validators_factory.create(self.api.spec, schema).validate(body)
        except OpenAPIError as exc:
            return [describe(exc)]
        return []

    def response(self, request: httpx.Request, response: httpx.Response, body: bytes) -> list[str]:
        """Problems of a response: its status, media type and (for JSON) its body.

        A stream's body is a stand-in; its events go through `event`. Routes the spec does
        not have (the spec document itself, unknown URLs) only have to give errors in the
        shape of their prefix (Anthropic's under /v1/messages, else OpenAI's).
        """
        where = f"status {response.status_code}"
        try:
            self.api.validate_response(self._request(request), _as_response(response, body))
        except PathError:
            if response.status_code < 400:
                return []
            shape = (
                "AnthropicErrorResponse"
                if request.url.path.startswith("/v1/messages")
                else "ErrorResponse"
            )
            return [f"{where}: {p}" for p in self.validate(shape, _json(body))]
        except OpenAPIError as exc:
            return [f"{where}: {describe(exc)}"]
        return []

    def event(self, payload: Any) -> list[str]:
        """Problems of one `data:` JSON of a stream: a chunk, or an error event."""
        is_error = isinstance(payload, dict) and "error" in payload
        return self.validate(
            "ErrorResponse" if is_error else "CreateChatCompletionStreamResponse", payload
        )

    def message_event(self, payload: Any) -> list[str]:
        """Problems of one `data:` JSON of a Messages stream."""
        return self.validate("MessageStreamEvent", payload)

    def response_event(self, payload: Any) -> list[str]:
        """Problems of one event of a Responses stream: the event its `type` names."""
        kind = payload.get("type") if isinstance(payload, dict) else None
        if kind not in self._events:
            return [f"not a ResponseStreamEvent type of the spec: {kind!r}"]
        return self.validate(self._events[kind], payload)

    def _request(self, request: httpx.Request) -> _Request:
        path = request.url.path
        for prefix in self._slash_prefixes:
            if path.startswith(prefix) and len(path) > len(prefix):
                path = prefix + quote(path[len(prefix) :], safe="")
        return _Request(
            host_url=f"{request.url.scheme}://{request.url.netloc.decode()}",
            path=path,
            method=request.method.lower(),
            body=None,
            content_type=request.headers.get("content-type", ""),
            parameters=RequestParameters(
                query=ImmutableMultiDict(parse_qs(request.url.query.decode())),
                header=Headers(dict(request.headers)),
            ),
        )


def _as_response(response: httpx.Response, body: bytes) -> _Response:
    return _Response(
        status_code=response.status_code,
        content_type=response.headers.get("content-type", ""),
        headers=Headers(dict(response.headers)),
        data=body,
    )


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return body.decode(errors="replace")


@cache
def our_spec() -> OurSpec:
    """The one OurSpec of the session (building it takes about half a second)."""
    return OurSpec(yaml.safe_load(SPEC_PATH.read_text()))
