"""The access log (``tidings serve --access-log``): one structured line per request, through
tidings' logging (stderr, secrets masked), written when the response is complete.

Not uvicorn's own access log: that one goes through the standard library's logging at the
level ``serve`` gives uvicorn (warning, so it printed nothing), writes to stdout, and shows the
query string, where senders put tokens (``/hooks/jira?token=...``). Here the query is left out, and so is a calendar feed's token in its path.
"""

from __future__ import annotations

import time
from typing import Any

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..calendars.feeds import mask_path

log = structlog.get_logger("tidings.access")


class AccessLog:
    """ASGI middleware: ``http.request`` with method, path, status, milliseconds, bytes sent and
    the client's address, for every HTTP request (not lifespan or websocket events)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        seen: dict[str, Any] = {"status": None, "bytes": 0}

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                seen["status"] = message["status"]
            elif message["type"] == "http.response.body":
                seen["bytes"] += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            client = scope.get("client")
            log.info(
                "http.request",
                method=scope.get("method"),
                path=mask_path(scope.get("root_path", "") + scope.get("path", "")),
                status=seen["status"] or 500,  # no answer started: the server answers 500
                ms=round((time.perf_counter() - started) * 1000, 2),
                bytes=seen["bytes"],
                client=client[0] if client else None,
            )


def with_access_log(app: ASGIApp, enabled: bool) -> ASGIApp:
    """``app`` wrapped in :class:`AccessLog` when ``enabled`` (``serve --access-log``)."""
    return AccessLog(app) if enabled else app


__all__ = ["AccessLog", "with_access_log"]
