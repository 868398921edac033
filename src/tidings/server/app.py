"""The FastAPI application: ``create_app(hub)``. The hub starts and stops with the app."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator

from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response
from sqlalchemy import text

from .. import __version__
from ..hub import Hub
from . import errors
from .api import router as api_router
from .auth import TokenCache
from .guard import RequestGuard
from .hooks import hook


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

    app = FastAPI(
        title="tidings",
        version=__version__,
        description="Notifications out, verified webhooks in, durable in between.",
        lifespan=lifespan,
    )
    app.state.hub = hub
    app.state.tokens = TokenCache()
    app.state.started_at = time.time()
    errors.install(app)
    app.include_router(api_router)
    app.add_route("/hooks/{integration}", hook, methods=["POST"], include_in_schema=False)

    @app.get("/healthz", tags=["ops"])
    async def healthz() -> dict[str, str]:
        """The process is alive."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"])
    async def readyz() -> JSONResponse:
        """The database answers and its schema is current."""
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

    @app.get("/metrics", tags=["ops"])
    async def metrics() -> Response:
        """Prometheus text format."""
        m = hub.metrics
        depth, oldest = await hub.queue_gauges()
        m.queue_depth.clear()
        for name in hub.notifiers:
            m.queue_depth.labels(name).set(depth.get(name, 0))
        m.oldest_pending.set(oldest)
        return Response(m.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    app.add_middleware(RequestGuard, limit=hub.config.server.body_limit)
    return app
