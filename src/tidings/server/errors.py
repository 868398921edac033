"""Every error answer is JSON ``{"error": ..., "detail": ...}`` with the right status; bad input
never gets a 500."""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..accounts import AccessError, Unauthenticated
from ..calendars.feeds import mask_path
from ..delivery.queries import RetryRefused
from ..delivery.schedule import CancelRefused
from ..errors import IdempotencyConflict, MessageError, NotFound, UnknownIntegration
from ..inbound import ReplayRefused
from ..message import format_error
from ..security.redact import redact_value
from ..silences import SilenceError

log = structlog.get_logger("tidings.server")


def error(status: int, error: str, detail: Any = None, headers: dict[str, str] | None = None) -> JSONResponse:
    """The error answer; known secrets in ``detail`` (an input echoed back, a peer's words) are masked."""
    return JSONResponse({"error": error, "detail": redact_value(detail)}, status_code=status, headers=headers)


def precondition_failed(exc: Exception, name: str, current: Any, version: int) -> JSONResponse:
    """412 to a write based on a version that is no longer current (``If-Match``): ``name`` holds
    the current thing and ``ETag`` its version, so the client re-applies its change to it."""
    return JSONResponse({"error": "precondition failed", "detail": str(exc), name: current},
                        status_code=412, headers={"ETag": f'"{version}"'})


def install(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            detail = "; ".join(str(e.get("ctx", {}).get("error", e.get("msg"))) for e in errors)
            return error(400, "malformed JSON", detail)
        lines: list[str] = []
        for e in errors:
            # A message body fails inside Message.__init__: one MessageError carrying every problem.
            cause = e.get("ctx", {}).get("error")
            lines.extend(cause.problems if isinstance(cause, MessageError) else [format_error(e)])
        return error(422, "invalid request", lines)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        names = {400: "bad request", 401: "unauthorized", 403: "forbidden", 404: "not found",
                 405: "method not allowed", 409: "conflict", 413: "payload too large",
                 415: "unsupported media type", 422: "invalid request"}
        return error(exc.status_code, names.get(exc.status_code, "error"), exc.detail, getattr(exc, "headers", None))

    @app.exception_handler(AccessError)
    async def _access(_: Request, exc: AccessError) -> JSONResponse:
        if isinstance(exc, Unauthenticated):
            return error(401, "unauthorized", str(exc), {"WWW-Authenticate": "Bearer"})
        return error(403, "forbidden", str(exc))

    @app.exception_handler(MessageError)
    async def _message(_: Request, exc: MessageError) -> JSONResponse:
        return error(422, "invalid message", exc.problems)

    @app.exception_handler(UnknownIntegration)
    async def _unknown(_: Request, exc: UnknownIntegration) -> JSONResponse:
        return error(422, "unknown integration", str(exc))

    @app.exception_handler(IdempotencyConflict)
    async def _conflict(_: Request, exc: IdempotencyConflict) -> JSONResponse:
        return error(422, "idempotency key reused", str(exc))

    @app.exception_handler(SilenceError)
    async def _silence(_: Request, exc: SilenceError) -> JSONResponse:
        return error(422, "invalid silence", str(exc))

    @app.exception_handler(NotFound)
    async def _not_found(_: Request, exc: NotFound) -> JSONResponse:
        return error(404, "not found", str(exc))

    @app.exception_handler(ReplayRefused)
    async def _replay_refused(_: Request, exc: ReplayRefused) -> JSONResponse:
        return error(409, "conflict", str(exc))

    @app.exception_handler(RetryRefused)
    async def _refused(_: Request, exc: RetryRefused) -> JSONResponse:
        return error(409, "conflict", str(exc))

    @app.exception_handler(CancelRefused)
    async def _not_cancelled(_: Request, exc: CancelRefused) -> JSONResponse:
        return error(409, "conflict", str(exc))

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> JSONResponse:
        log.exception("server.unhandled", path=mask_path(request.url.path))
        return error(500, "internal error", "see the server log")
