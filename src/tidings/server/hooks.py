"""``POST /hooks/{integration}``: inbound webhooks.

A plain Starlette endpoint (no FastAPI parameter machinery on the hot path): it checks the
content type and the receiver's body limit, reads the exact bytes, and hands them to the hub,
which verifies, stores and answers. Processing happens later, from the stored row.
"""

from __future__ import annotations

import time

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from ..hub import Hub
from ..inbound import Answer, refusal
from ..integrations.receiver import InboundRequest


class _TooLarge(Exception):
    pass


async def hook(request: Request) -> Response:
    hub: Hub = request.app.state.hub
    name = request.path_params["integration"]
    receiver = hub.receivers.get(name)
    if receiver is None:
        return _send(refusal(404, "not found", f"no integration {name!r} receives webhooks"))
    limit = receiver.effective_max_body
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype not in receiver.content_types:
        hub.count_inbound(name, "unsupported_media_type")
        expected = " or ".join(receiver.content_types)
        return _send(refusal(415, "unsupported media type", f"send {expected}"))
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            return _send(refusal(400, "bad request", "invalid Content-Length"))
        if int(declared) > limit:
            hub.count_inbound(name, "too_large")
            return _send(refusal(413, "payload too large", f"this integration accepts at most {limit} bytes"))
    try:
        body = await _read(request, limit)
    except _TooLarge:
        hub.count_inbound(name, "too_large")
        return _send(refusal(413, "payload too large", f"this integration accepts at most {limit} bytes"))
    except ClientDisconnect:
        return Response(status_code=400)
    inbound = InboundRequest(
        integration=name,
        headers={k.lower(): v for k, v in request.headers.items()},
        body=body,
        query=dict(request.query_params),
        received_at=time.time(),
    )
    return _send(await hub.receive(name, inbound))


async def _read(request: Request, limit: int) -> bytes:
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _send(answer: Answer) -> Response:
    return Response(answer.body, status_code=answer.status, media_type=answer.content_type)
