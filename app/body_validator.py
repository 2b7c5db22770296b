"""OpenAIBodyValidator: Connexion's JSON body validation, with OpenAI-shaped 400s.

Connexion 3.3's own validator answers a non-UTF-8 body with 500, accepts NaN, echoes the whole
offending value (a 5 MB message included) and only names the field inside its prose. This one
parses strictly, names the field in `param` (`messages[0].role`), keeps messages short, and
compiles each operation's schema once instead of on every request.

The spec says what the gateway refuses, so that a request the spec accepts is one the gateway
serves. Three extensions carry the words of those refusals:
- `x-unsupported`: a value the gateway cannot honour (400, `code: unsupported_parameter`);
- `x-invalid`: a malformed value, said plainly (400);
- `discriminator` on a `oneOf`: the branch the instance names (by `role`, by `type`) is the
  one whose error is reported (without the property, the branch that does not require it);
  a name no branch has is unsupported (`{value}` in the `x-unsupported` text stands for it).
The nearest schema with such an extension, walking from the field that failed towards the
body, decides the error and its `param`. `format: json-object` is the text of a JSON object
(empty counts as `{}`): the arguments of a replayed tool call.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Iterator, Sequence
from typing import Any

from connexion.json_schema import Draft4RequestValidator
from connexion.validators import VALIDATOR_MAP, JSONRequestBodyValidator
from jsonschema import Draft4Validator, FormatChecker, ValidationError

from opencode_openai.core.errors import GatewayError, InvalidRequest, UnsupportedParameter

__all__ = ["OpenAIBodyValidator", "check_body", "validator_map"]

_MAX_MESSAGE = 200
_compiled: dict[int, tuple[Any, Any]] = {}

FORMATS = FormatChecker()
for _name, _check in Draft4Validator.FORMAT_CHECKER.checkers.items():
    FORMATS.checkers[_name] = _check


@FORMATS.checks("json-object", raises=ValueError)
def _is_json_object(text: object) -> bool:
    return not isinstance(text, str) or not text or isinstance(json.loads(text), dict)


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def _param(path: Sequence[Any]) -> str | None:
    param = ""
    for step in path:
        param += f"[{step}]" if isinstance(step, int) else (f".{step}" if param else str(step))
    return param or None


def _short(text: str) -> str:
    return text if len(text) <= _MAX_MESSAGE else text[:_MAX_MESSAGE] + "…"


def _schemas_along(schema: Any, error: ValidationError) -> Iterator[tuple[dict[str, Any], int]]:
    """Each schema on the way from the body's schema to the failing keyword, with how much of
    the instance path it stands for."""
    node, depth = schema, 0
    tokens = list(error.absolute_schema_path)[:-1]  # the last one is the failing keyword
    i = 0
    while isinstance(node, dict):
        yield node, depth
        if i >= len(tokens):
            return
        token = tokens[i]
        if token in ("properties", "patternProperties"):
            node, depth, i = node[token][tokens[i + 1]], depth + 1, i + 2
        elif token in ("oneOf", "anyOf", "allOf"):
            node, i = node[token][tokens[i + 1]], i + 2
        elif token in ("items", "additionalProperties"):
            node, depth, i = node[token], depth + 1, i + 1
        elif token == "not":
            node, i = node[token], i + 1
        else:
            return


def _branch_error(error: ValidationError) -> ValidationError | GatewayError:
    """For a failed `oneOf` / `anyOf`: the error of the branch the instance meant.

    With a discriminator, that is the branch the instance names; without one, the branch
    whose type the instance has, failing deepest.
    """
    schema = error.schema if isinstance(error.schema, dict) else {}
    prop = (schema.get("discriminator") or {}).get("propertyName")
    context = list(error.context or ())
    if prop and isinstance(error.instance, dict):
        # A branch that does not require the property is the one meant without it (OpenAI's
        # Responses input: a message item may leave out its `type`).
        default = next(
            (i for i, b in enumerate(schema["oneOf"]) if prop not in b.get("required", ())), None
        )
        if prop not in error.instance and default is None:
            return InvalidRequest(
                f"Invalid '{_param([*error.absolute_path])}': `{prop}` is required",
                param=_param([*error.absolute_path, prop]),
            )
        value = error.instance.get(prop)
        for index, branch in enumerate(schema["oneOf"]):
            enum = ((branch.get("properties") or {}).get(prop) or {}).get("enum", ())
            if (value in enum) if prop in error.instance else index == default:
                context = [e for e in context if e.relative_schema_path[0] == index]
                break
        else:
            reason = str(schema.get("x-unsupported") or "`{value}` is not supported")
            param = _param([*error.absolute_path, prop]) or prop
            return UnsupportedParameter(param, _short(reason.replace("{value}", str(value)[:40])))
    here = list(error.absolute_path)
    meant = [e for e in context if not (e.validator == "type" and list(e.absolute_path) == here)]
    return max(meant or context, key=lambda e: len(e.absolute_path)) if context else error


def body_error(schema: Any, error: ValidationError) -> GatewayError:
    """The 400 a client gets for `error`, found validating a body against `schema`."""
    while error.context:
        branch = _branch_error(error)
        if isinstance(branch, GatewayError):
            return branch
        if branch is error:
            break
        error = branch
    path = list(error.absolute_path)
    # A discriminated oneOf's own words are for the name no branch has (handled above).
    named = [
        (node, depth)
        for node, depth in _schemas_along(schema, error)
        if ("x-unsupported" in node or "x-invalid" in node) and "discriminator" not in node
    ]
    if named:
        node, depth = named[-1]
        param = _param(path[:depth])
        if "x-unsupported" in node:
            field = param or "body"
            return UnsupportedParameter(field, _short(f"`{field}`: {node['x-unsupported']}"))
        return InvalidRequest(_short(str(node["x-invalid"])), param=param)
    param = _param(path)
    message = _short(error.message)
    return InvalidRequest(f"Invalid '{param}': {message}" if param else message, param=param)


def _compiled_validator(schema: Any) -> Any:
    key = id(schema)
    cached = _compiled.get(key)
    if cached is None or cached[0] is not schema:
        cached = _compiled[key] = (schema, Draft4RequestValidator(schema, format_checker=FORMATS))
    return cached[1]


def check_body(schema: Any, body: Any) -> None:
    """Raise the 400 for the first thing wrong with `body` against the (resolved) `schema`."""
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    error = next(iter(_compiled_validator(schema).iter_errors(body)), None)
    if error is not None:
        raise body_error(schema, error)


class OpenAIBodyValidator(JSONRequestBodyValidator):  # type: ignore[misc]  # untyped base
    async def _parse(self, stream: AsyncGenerator[bytes, None], scope: Any) -> Any:
        raw = b"".join([message async for message in stream])
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidRequest("The request body is not valid UTF-8.") from exc
        try:
            return json.loads(text, parse_constant=_reject_constant)
        except (ValueError, RecursionError) as exc:
            raise InvalidRequest(
                "We could not parse the JSON body of your request. Send valid JSON."
            ) from exc

    def _validate(self, body: Any) -> dict[str, Any] | None:
        check_body(self._schema, body)
        return None


def validator_map() -> dict[str, Any]:
    body = dict(VALIDATOR_MAP["body"])
    body["*/*json"] = OpenAIBodyValidator
    return {**VALIDATOR_MAP, "body": type(VALIDATOR_MAP["body"])(body)}
