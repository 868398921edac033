"""``POST /api/v1/messages``: the API's hot path.

Pure ASGI, taken by the app before FastAPI's middleware and router like ``/hooks`` (see
``app.py``): measured with ``bench/throughput.py --via api``, the framework's layers cost more
than storing the message. It applies the same checks as the rest of the API (request guard,
bearer token, body limit, validation) and answers the same JSON; the FastAPI route of the same
path documents it in the OpenAPI schema and serves whatever :func:`takes` leaves to the router.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import orjson
import structlog
from starlette.types import Receive, Scope, Send

from ..accounts import Unauthenticated, allowed
from ..errors import IdempotencyConflict, MessageError, UnknownIntegration
from ..hub import Hub
from .auth import DEFAULT_PROJECT, authenticate, make_actor
from .guard import BodyTooLarge, ClientGone, error_body, read_body, refusal

if TYPE_CHECKING:
    from .api import MessageIn

log = structlog.get_logger("tidings.server")

PATH = "/api/v1/messages"
IDEMPOTENCY_KEY_MAX = 255
_JSON = (b"content-type", b"application/json")


class _Refused(Exception):
    def __init__(self, status: int, error: str, detail: Any, headers: list[tuple[bytes, bytes]] | None = None) -> None:
        self.status, self.error, self.detail, self.headers = status, error, detail, headers or []


class _Passed(Exception):
    """Left to the router (before the body was read): a request this path doesn't serve itself."""


def takes(scope: Scope) -> bool:
    """A POST to exactly this path; anything odd (a root path, a trailing slash) goes to the router."""
    return scope["type"] == "http" and scope["method"] == "POST" and scope["path"] == PATH and not scope.get("root_path")


def accepted(receipt: Any) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    """The answer to a stored (202) or replayed (200, ``Idempotency-Replay: true``) message."""
    answer = {"id": receipt.id, "deliveries": [{"id": d.id, "integration": d.integration, "status": d.status} for d in receipt.deliveries]}
    if receipt.send_at is not None:  # scheduled: routed at send_at
        answer.update(status=receipt.status, send_at=receipt.send_at)
    body = orjson.dumps(answer)
    if receipt.replay:
        return 200, body, [(b"idempotency-replay", b"true")]
    return 202, body, []


def parse(body: bytes) -> MessageIn:
    """The request body as :class:`~tidings.server.api.MessageIn` (the message, its explicit
    targets, its timing), or :class:`_Refused`."""
    from .api import MessageIn

    body = body.removeprefix(b"\xef\xbb\xbf")  # a UTF-8 byte order mark, as json.loads would skip it
    if not body.strip():
        raise _Refused(422, "invalid request", ["body: Field required"])
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise _Refused(400, "malformed JSON", str(exc)) from None
    if not isinstance(data, dict):
        raise _Refused(422, "invalid request", ["body: Input should be a valid dictionary or object to extract fields from"])
    try:
        payload = MessageIn(**data)
    except MessageError as exc:
        raise _Refused(422, "invalid request", exc.problems) from None
    return payload


async def serve(app: Any, scope: Scope, receive: Receive, send: Send) -> bool:
    """Answer one request that :func:`takes` accepted; False when it is left to the router
    (a session cookie, a token without ``message:send``), before anything was read or sent."""
    started = False

    async def respond(status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
        nonlocal started
        started = True
        await send({"type": "http.response.start", "status": status,
                    "headers": [_JSON, (b"content-length", str(len(body)).encode()), *headers]})
        await send({"type": "http.response.body", "body": body})

    try:
        await respond(*await _accept(app, scope, receive))
    except _Passed:
        return False
    except _Refused as no:
        await respond(no.status, error_body(no.error, no.detail), no.headers)
    except Exception:
        log.exception("server.unhandled", path=scope["path"])
        if not started:
            await respond(500, error_body("internal error", "see the server log"), [])
    return True


async def _accept(app: Any, scope: Scope, receive: Receive) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    hub: Hub = app.state.hub
    limit = hub.config.server.body_limit
    # The request guard's checks, then the router's, in their order for every other route.
    refused = refusal(scope, limit)
    if refused is not None:
        raise _Refused(*refused, [(b"connection", b"close")])
    headers: dict[bytes, bytes] = {}
    for name, value in scope["headers"]:  # lower-case names; the first of repeated headers counts, as in Starlette
        headers.setdefault(name, value)
    if b"authorization" not in headers and b"cookie" in headers:
        raise _Passed  # a signed-in browser: the router checks the session and its CSRF token
    try:
        principal = await authenticate(app.state, headers.get(b"authorization", b"").decode("latin-1"))
    except Unauthenticated as exc:
        raise _Refused(401, "unauthorized", str(exc), [(b"www-authenticate", b"Bearer")]) from None
    if not allowed(principal, "message:send", DEFAULT_PROJECT):
        raise _Passed  # the router's allow() answers 403 and audits it
    query: bytes = scope.get("query_string", b"")
    if query:  # this route takes no query parameters; the router refuses unknown ones alike (api.known_query)
        unknown = sorted({name for name, _ in parse_qsl(query.decode("latin-1"), keep_blank_values=True)})
        if unknown:
            raise _Refused(422, "invalid request", [f"query.{name}: Unknown query parameter" for name in unknown])
    key = headers.get(b"idempotency-key")
    idempotency_key = key.decode("latin-1") if key is not None else None
    if idempotency_key is not None and len(idempotency_key) > IDEMPOTENCY_KEY_MAX:
        raise _Refused(422, "invalid request", [f"header.idempotency-key: String should have at most {IDEMPOTENCY_KEY_MAX} characters"])
    if idempotency_key == "":
        raise _Refused(422, "invalid request", ["header.idempotency-key: String should have at least 1 character"])
    try:
        body = await read_body(receive, limit)
    except BodyTooLarge:  # the connection stays open: the client may still be sending; uvicorn drops the rest
        raise _Refused(413, "payload too large", f"the body limit is {limit} bytes") from None
    except ClientGone:
        raise _Refused(400, "bad request", "the client went away") from None
    payload = parse(body)
    timing: dict[str, Any] = {}
    if payload.send_at is not None or payload.delay is not None:
        client = scope.get("client")
        agent = headers.get(b"user-agent")
        rid = headers.get(b"x-request-id", b"").decode("latin-1")[:64] or uuid.uuid4().hex
        timing = {"send_at": payload.send_at, "delay": payload.delay,
                  "actor": make_actor(principal, client[0] if client else None, agent.decode("latin-1") if agent else None, rid)}
    try:
        receipt = await hub.notify(payload.message(), to=payload.to, idempotency_key=idempotency_key, **timing)
    except MessageError as exc:
        raise _Refused(422, "invalid message", exc.problems) from None
    except UnknownIntegration as exc:
        raise _Refused(422, "unknown integration", str(exc)) from None
    except IdempotencyConflict as exc:
        raise _Refused(422, "idempotency key reused", str(exc)) from None
    return accepted(receipt)
