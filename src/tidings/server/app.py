"""The FastAPI application: ``create_app(hub)``. The hub starts and stops with the app."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator

from fastapi import FastAPI
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from sqlalchemy import text
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from .. import __version__, ui
from ..hub import Hub
from . import (
    accounts_api,
    ack_links,
    audit_api,
    calendars_api,
    config_api,
    connections_api,
    docs,
    errors,
    hooks,
    incidents_api,
    integrations_api,
    messages,
    oauth_api,
    openapi,
    recipients_api,
    routes_api,
    schemas,
    secrets_api,
    signin,
    sync_api,
    tasks_api,
    unsubscribe,
)
from .api import router as api_router
from .auth import TokenCache
from .guard import RequestGuard
from .schemas import errors as errors_for

DESCRIPTION = """Notifications out, verified webhooks in, durable in between.

Every `/api` route needs an API token (`tidings token create`), sent as `Authorization: Bearer <token>`
(**Authorize** in Swagger UI). Webhooks (`/hooks/{integration}`) are verified by each platform's own signature
instead. Every error answer is JSON `{"error": ..., "detail": ...}`: `error` in a few words, `detail` for a person
(one line per problem, with its path, for invalid input)."""


class _App(FastAPI):
    """FastAPI, except for the two hot paths, which need none of the framework:
    ``POST /hooks/{name}`` goes straight to :mod:`.hooks` (a server receiving webhooks) and
    ``POST /api/v1/messages`` to :mod:`.messages` (a server taking messages)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if messages.takes(scope):
            scope["app"] = self
            if await messages.serve(self, scope, receive, send):
                return
        name = hooks.takes(scope)
        if name is None:
            await super().__call__(scope, receive, send)
            return
        scope["app"] = self
        await hooks.serve(self.state.hub, name, scope, receive, send)


class _HookRoute:
    """The same endpoint for requests :func:`hooks.takes` leaves to the router (an ASGI app, not
    a function: Starlette would wrap a function as a request handler)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await hooks.serve(scope["app"].state.hub, scope["path_params"]["integration"], scope, receive, send)


def create_app(hub: Hub) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        owned = not hub.started
        if owned:
            await hub.start()
        try:
            yield
        finally:
            if owned:
                await hub.stop()

    app = _App(
        title="tidings",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.hub = hub
    app.state.tokens = TokenCache()
    app.state.started_at = time.time()
    errors.install(app)
    docs.install(app)
    openapi.install(app)
    app.include_router(api_router)
    accounts_api.install(app)
    app.include_router(signin.router)
    app.include_router(audit_api.router)
    app.include_router(secrets_api.router)
    config_api.install(app)
    app.include_router(integrations_api.kinds_router)  # before /integrations/{name}
    app.include_router(integrations_api.router)
    app.include_router(routes_api.router)
    oauth_api.install(app)
    tasks_api.install(app)
    recipients_api.install(app)
    unsubscribe.install(app)
    app.include_router(sync_api.router)
    app.include_router(incidents_api.router)
    app.include_router(calendars_api.router)
    app.include_router(connections_api.router)
    app.include_router(calendars_api.feed_router)
    ack_links.install(app)
    ui.install(app)
    app.router.routes.append(Route("/hooks/{integration}", _HookRoute(), methods=["POST"], include_in_schema=False))

    @app.get("/healthz", tags=["ops"], response_model=schemas.Health, summary="Alive",
             description="The process is alive (a liveness probe).", responses=errors_for(400))
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"], response_model=schemas.Ready, summary="Ready",
             description="The database answers and its schema is current (a readiness probe).",
             responses=errors_for(400, 503))
    async def readyz() -> JSONResponse:
        store = hub.store
        if store is None or not hub.started:
            return errors.error(503, "not ready", "the hub is starting")
        try:
            async with store.read() as conn:
                await conn.execute(text("SELECT 1"))
            current = await store.is_current()
        except Exception as exc:
            return errors.error(503, "not ready", f"database unreachable: {type(exc).__name__}")
        if not current:
            return errors.error(503, "not ready", "database schema is not current: run `tidings db upgrade`")
        return JSONResponse({"status": "ready"})

    @app.get("/metrics", tags=["ops"], response_class=PlainTextResponse, summary="Metrics",
             description="Prometheus metrics, in its text format.",
             responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}, **errors_for(400)})
    async def metrics() -> Response:
        m = hub.metrics
        depth, oldest = await hub.queue_gauges()
        m.queue_depth.clear()
        for name in hub.notifiers:
            m.queue_depth.labels(name).set(depth.get(name, 0))
        m.oldest_pending.set(oldest)
        return Response(m.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    app.add_middleware(RequestGuard, limit=hub.config.server.body_limit)
    return app
