"""``POST /hooks/{integration}``: inbound webhooks.

Pure ASGI, taken by the app before FastAPI's middleware and router (see ``app.py``): measured
with 32 concurrent senders, the framework's layers cost more than verifying and storing a
delivery. It checks the content type and the receiver's body limit, reads the exact bytes, and
hands them to the hub, which verifies, stores and answers. Processing happens later, from the
stored row.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qsl

import structlog
from starlette.types import Receive, Scope, Send

from ..hub import Hub
from ..inbound import Answer, refusal
from ..integrations.receiver import InboundRequest
from .guard import BodyTooLarge, ClientGone, read_body

log = structlog.get_logger("tidings.server")

PREFIX = "/hooks/"

_Respond = Callable[[Answer], Awaitable[None]]


def takes(scope: Scope) -> str | None:
    """The integration name when ``scope`` is a request for this endpoint (a POST to
    ``/hooks/{name}``, nothing odd in the URL); None leaves it to the framework (and its 404s,
    405s, redirects and guards)."""
    if scope["type"] != "http" or scope["method"] != "POST" or scope.get("root_path"):
        return None
    path: str = scope["path"]
    if not path.startswith(PREFIX):
        return None
    name = path[len(PREFIX):]
    if not name or "/" in name or "\x00" in name:
        return None
    query: bytes = scope.get("query_string", b"")
    if b"\x00" in query or b"%00" in query:
        return None
    return name


async def serve(hub: Hub, name: str, scope: Scope, receive: Receive, send: Send) -> None:
    """Answer one request that :func:`takes` accepted."""
    started = False

    async def respond(answer: Answer) -> None:
        nonlocal started
        started = True
        await _send(send, answer)

    try:
        await _hook(hub, name, scope, receive, respond)
    except Exception:
        log.exception("server.unhandled", path=scope["path"])
        if not started:
            await _send(send, refusal(500, "internal error", "see the server log"))


async def _hook(hub: Hub, name: str, scope: Scope, receive: Receive, respond: _Respond) -> None:
    receiver = hub.receivers.get(name)
    if receiver is None:
        await respond(refusal(404, "not found", f"no integration {name!r} receives webhooks"))
        return
    # ASGI servers give header names in lower case; the last of repeated headers wins.
    headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
    limit = receiver.effective_max_body
    ctype = headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype not in receiver.content_types:
        hub.count_inbound(name, "unsupported_media_type")
        expected = " or ".join(receiver.content_types)
        await respond(refusal(415, "unsupported media type", f"send {expected}"))
        return
    declared = headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            await respond(refusal(400, "bad request", "invalid Content-Length"))
            return
        if int(declared) > limit:
            hub.count_inbound(name, "too_large")
            await respond(refusal(413, "payload too large", f"this integration accepts at most {limit} bytes"))
            return
    try:
        body = await read_body(receive, limit)
    except BodyTooLarge:
        hub.count_inbound(name, "too_large")
        await respond(refusal(413, "payload too large", f"this integration accepts at most {limit} bytes"))
        return
    except ClientGone:
        await respond(Answer(400, b"", "text/plain"))
        return
    query: bytes = scope.get("query_string", b"")
    inbound = InboundRequest(
        integration=name,
        headers=headers,
        body=body,
        query=dict(parse_qsl(query.decode("latin-1"), keep_blank_values=True)) if query else {},
        received_at=time.time(),
        client=(scope.get("client") or ("",))[0],
    )
    await respond(await hub.receive(name, inbound))


async def _send(send: Send, answer: Answer) -> None:
    ctype = answer.content_type
    if ctype.startswith("text/") and "charset=" not in ctype.lower():
        ctype += "; charset=utf-8"
    await send(
        {
            "type": "http.response.start",
            "status": answer.status,
            "headers": [(b"content-length", str(len(answer.body)).encode()), (b"content-type", ctype.encode("latin-1"))],
        }
    )
    await send({"type": "http.response.body", "body": answer.body})
