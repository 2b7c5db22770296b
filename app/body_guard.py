"""BodyGuard: the request body checks that must happen before Connexion sees the body.

Connexion 3.3 answers a missing or upper-case Content-Type with 500, a chunked body with
"RequestBody required", and has no size limit. For the operations that take a body, this
middleware reads the whole body once, enforces the limit (413) and the media type (415), then
replays it with a normalised `Content-Type: application/json` and a Content-Length; parsing is
the body validator's job. It sits after routing and security, so an unknown route is still a
404, a wrong method a 405 and a missing key a 401. Requests without a body lose any
Content-Type they sent, which Connexion would otherwise try to parse.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from opencode_openai.app.errors import error_answer
from opencode_openai.core.errors import (
    GatewayError,
    InvalidRequest,
    PayloadTooLarge,
    UnsupportedMediaType,
)

__all__ = ["BodyGuard", "send_error"]

_JSON_TYPES = ("application/json",)


async def send_error(scope: Scope, send: Send, exc: BaseException) -> None:
    status, payload, headers = error_answer(scope["path"], exc)
    raw_headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
    ]
    raw_headers += [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": payload})


def _media_type(scope: Scope) -> str | None:
    value: bytes
    for name, value in scope["headers"]:
        if name == b"content-type":
            return value.decode("latin-1").split(";")[0].strip().lower()
    return None


_NO_BODY = (b"content-type", b"content-length", b"transfer-encoding")


class BodyGuard:
    def __init__(self, app: ASGIApp, max_body_bytes: int, body_paths: frozenset[str]) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.body_paths = body_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["method"] in ("GET", "HEAD", "DELETE", "OPTIONS"):
            headers = [(k, v) for k, v in scope["headers"] if k not in _NO_BODY]
            await self.app({**scope, "headers": headers}, receive, send)
            return
        if scope["method"] != "POST" or scope["path"].rstrip("/") not in self.body_paths:
            await self.app(scope, receive, send)
            return
        try:
            body = await self._read(scope, receive)
        except GatewayError as exc:
            await send_error(scope, send, exc)
            return
        headers = [(k, v) for k, v in scope["headers"] if k not in _NO_BODY]
        headers += [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app({**scope, "headers": headers}, replay, send)

    async def _read(self, scope: Scope, receive: Receive) -> bytes:
        media_type = _media_type(scope)
        # A missing Content-Type is read as JSON: curl users forget it, and the meaning is clear.
        if (
            media_type is not None
            and media_type not in _JSON_TYPES
            and not media_type.endswith("+json")
        ):
            raise UnsupportedMediaType(
                f"Content-Type `{media_type}` is not supported; send `application/json`"
            )
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > self.max_body_bytes:
                raise self._too_large()
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise InvalidRequest("the client disconnected while sending the body")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise self._too_large()
            chunks.append(chunk)
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        if not body.strip():
            raise InvalidRequest("The request body is empty; send a JSON object.")
        return body

    def _too_large(self) -> PayloadTooLarge:
        return PayloadTooLarge(f"the request body is larger than {self.max_body_bytes} bytes")
