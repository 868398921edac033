"""The bare ASGI app the benchmarks compare tidings' server against: it reads the body and
answers 200 (401 on ``/private``, for the middleware bench's counting path). Served by uvicorn
with ``--app-dir bench``: ``_bare:bare``, or ``--factory _bare:with_alerting`` wrapped in
AlertingMiddleware."""

from __future__ import annotations

from typing import Any

HEADERS = [(b"content-type", b"application/json")]
BODY = b'{"ok": true}'


async def bare(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    status = 401 if scope["path"] == "/private" else 200
    await send({"type": "http.response.start", "status": status, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})


def with_alerting() -> Any:
    """``bare`` in AlertingMiddleware (default thresholds, a dispatcher with no channel: an alert
    costs its accounting and nothing else)."""
    from tidings.compat import AlertDispatcher, AlertingMiddleware

    return AlertingMiddleware(bare, dispatcher=AlertDispatcher(env={}))
