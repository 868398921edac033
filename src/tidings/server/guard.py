"""Checks every request passes before the application sees it, as pure ASGI middleware (cheap:
one pass over the headers, no framework machinery):

- a NUL character in the path or query: 400 (PostgreSQL refuses them; they can match nothing);
- a body sent to ``/api/`` that isn't declared as JSON: 415;
- a body over the limit: 413 before it is read when Content-Length says so, and as soon as a
  chunked body crosses it (``/hooks/`` bodies are limited per receiver, in ``hooks.py``).
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..security.redact import redact_value


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` once a body crosses the limit. An HTTPException, because FastAPI
    turns any other error raised while it reads the body into a 400."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the body limit is {limit} bytes")


class ClientGone(Exception):
    """The client went away before its whole body arrived."""


async def read_body(receive: Receive, limit: int) -> bytes:
    """The whole request body for the pure-ASGI endpoints; :class:`BodyTooLarge` as soon as it
    crosses ``limit`` (before the rest is read), :class:`ClientGone` on a disconnect."""
    chunks = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise BodyTooLarge(limit)
            chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


_BODY_METHODS = {"POST", "PUT", "PATCH"}


def is_json(content_type: bytes) -> bool:
    ctype = content_type.split(b";")[0].strip().lower()
    return ctype == b"application/json" or (ctype.startswith(b"application/") and ctype.endswith(b"+json"))


def refusal(scope: Scope, limit: int) -> tuple[int, str, str] | None:
    """What a request is refused for before anything reads it: (status, error, detail), or None.
    ``/hooks/`` bodies are limited per receiver, not by ``limit``."""
    query: bytes = scope.get("query_string", b"")
    if "\x00" in scope["path"] or b"\x00" in query or b"%00" in query:
        return 400, "bad request", "NUL characters are not allowed in the URL"
    content_type = b""
    hook = scope["path"].startswith("/hooks/")
    for name, value in scope["headers"]:
        if name == b"content-length" and not hook:
            try:
                too_big = int(value) > limit
            except ValueError:
                return 400, "bad request", "invalid Content-Length"
            if too_big:
                return 413, "payload too large", f"the body limit is {limit} bytes"
        elif name == b"content-type":
            content_type = value
    if scope["method"] in _BODY_METHODS and scope["path"].startswith("/api/") and not _bodiless(scope) and not is_json(content_type):
        return 415, "unsupported media type", "send the body as Content-Type: application/json"
    return None


class RequestGuard:
    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refused = refusal(scope, self.limit)
        if refused is not None:
            await _reply(send, *refused)
            return
        if scope["path"].startswith("/hooks/"):  # each receiver has its own body limit
            await self.app(scope, receive, send)
            return
        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise BodyTooLarge(self.limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await _reply(send, 413, "payload too large", f"the body limit is {self.limit} bytes")


def _bodiless(scope: Scope) -> bool:
    """Action routes (``/retry``, ``/test``, ``/enable``...) take no body."""
    return not scope["path"].rstrip("/").endswith(("/messages", "/preview"))


def error_body(error: str, detail: Any) -> bytes:
    """An error answer of the pure-ASGI endpoints; known secrets in ``detail`` are masked."""
    return orjson.dumps({"error": error, "detail": redact_value(detail)})


async def _reply(send: Send, status: int, error: str, detail: str) -> None:
    body = error_body(error, detail)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), (b"connection", b"close")],
        }
    )
    await send({"type": "http.response.body", "body": body})
