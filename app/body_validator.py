"""OpenAIBodyValidator: Connexion's JSON body validation, with OpenAI-shaped 400s.

Connexion 3.3's own validator answers a non-UTF-8 body with 500, accepts NaN, echoes the whole
offending value (a 5 MB message included) and only names the field inside its prose. This one
parses strictly, names the field in `param` (`messages[0].role`), keeps messages short, and
compiles each operation's schema once instead of on every request.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from typing import Any

from connexion.datastructures import MediaTypeDict
from connexion.json_schema import Draft4RequestValidator
from connexion.validators import VALIDATOR_MAP, JSONRequestBodyValidator
from jsonschema import Draft4Validator

from opencode_openai.core.errors import InvalidRequest

__all__ = ["OpenAIBodyValidator", "validator_map"]

_MAX_MESSAGE = 200
_compiled: dict[int, tuple[Any, Draft4RequestValidator]] = {}


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def _param(path: Any) -> str | None:
    param = ""
    for step in path:
        param += f"[{step}]" if isinstance(step, int) else (f".{step}" if param else str(step))
    return param or None


class OpenAIBodyValidator(JSONRequestBodyValidator):
    @property
    def _validator(self) -> Draft4RequestValidator:
        key = id(self._schema)
        cached = _compiled.get(key)
        if cached is None or cached[0] is not self._schema:
            validator = Draft4RequestValidator(
                self._schema, format_checker=Draft4Validator.FORMAT_CHECKER
            )
            cached = _compiled[key] = (self._schema, validator)
        return cached[1]

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
        if not isinstance(body, dict):
            raise InvalidRequest("The request body must be a JSON object.")
        error = next(iter(self._validator.iter_errors(body)), None)
        if error is None:
            return None
        param = _param(error.absolute_path)
        message = error.message
        if len(message) > _MAX_MESSAGE:
            message = message[:_MAX_MESSAGE] + "…"
        raise InvalidRequest(f"Invalid '{param}': {message}" if param else message, param=param)


def validator_map() -> dict[str, Any]:
    body = MediaTypeDict(dict(VALIDATOR_MAP["body"]))
    body["*/*json"] = OpenAIBodyValidator
    return {**VALIDATOR_MAP, "body": body}
