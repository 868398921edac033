"""``AlertingMiddleware``: pure ASGI, in Starlette, FastAPI and Django apps served by uvicorn on
127.0.0.1; counts 429/401/413 against thresholds in a sliding window, alerts once (through a
dispatcher or a hub) naming the top clients and paths, then keeps a cooldown per event type.
Window and cooldown tests drive the middleware with a hand-moved clock: no sleeping."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, HTTPException, Request
from helpers import eventually
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import PlainTextResponse, StreamingResponse
from starlette.routing import Route

from tidings.compat import AlertDispatcher, AlertingMiddleware
from tidings.compat.middleware import DEFAULT_THRESHOLDS, STATUS_EVENTS


class Recorder:
    """A dispatcher that keeps what it was asked to send."""

    def __init__(self) -> None:
        self.payloads: list[dict[str, Any]] = []

    def dispatch(self, payload: dict[str, Any]) -> None:
        self.payloads.append(payload)

    def types(self) -> list[str]:
        return [p["event_type"] for p in self.payloads]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


STATUS_OF_PATH = {"/limited": 429, "/login": 401, "/admin/login": 401, "/upload": 413}


async def plain_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A bare ASGI app: 429/401/413 on the paths above, 200 elsewhere."""
    assert scope["type"] == "http"
    status = STATUS_OF_PATH.get(scope["path"], 200)
    await send({"type": "http.response.start", "status": status, "headers": [(b"x-app", b"plain")]})
    await send({"type": "http.response.body", "body": b"answer %d" % status})


async def call(mw: AlertingMiddleware, path: str, *, client: str = "198.51.100.1", method: str = "GET",
               headers: list[tuple[bytes, bytes]] | None = None) -> int:
    """One request straight through the ASGI interface; the status the client got."""
    scope = {"type": "http", "method": method, "path": path, "client": (client, 50000), "headers": headers or []}
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await mw(scope, receive, send)
    assert sent[-1]["type"] == "http.response.body"
    return int(sent[0]["status"])


# -- defaults --------------------------------------------------------------------------------------
def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SECURITY_ALERT_TEAMS_WEBHOOK", "SECURITY_ALERT_EMAIL_HOST", "SECURITY_ALERT_EMAIL_RECIPIENTS"):
        monkeypatch.delenv(name, raising=False)
    assert DEFAULT_THRESHOLDS == {"rate_limit": 100, "auth_failures": 50, "large_payloads": 10}
    assert STATUS_EVENTS == {429: "rate_limit", 401: "auth_failures", 413: "large_payloads"}
    mw = AlertingMiddleware(plain_app)
    assert mw.thresholds == DEFAULT_THRESHOLDS
    assert mw.cooldown == mw.alert_cooldown == 300.0
    assert isinstance(mw.alert_dispatcher, AlertDispatcher)  # from the environment
    mw = AlertingMiddleware(plain_app, {"auth_failures": 5}, cooldown=30, dispatcher=Recorder())
    assert mw.thresholds == {"rate_limit": 100, "auth_failures": 5, "large_payloads": 10}
    assert mw.alert_cooldown == 30.0
    with pytest.raises(ValueError):
        AlertingMiddleware(plain_app, dispatcher=Recorder(), hub=object())


# -- counting, window, cooldown (ASGI straight, a hand-moved clock) --------------------------------
async def test_alerts_once_at_the_threshold_and_counts_only_its_status() -> None:
    rec, clock = Recorder(), Clock()
    mw = AlertingMiddleware(plain_app, {"rate_limit": 5}, dispatcher=rec, clock=clock)
    for _ in range(4):
        assert await call(mw, "/limited") == 429
    for path in ("/ok", "/login", "/upload", "/ok"):
        await call(mw, path)
    assert rec.payloads == []
    assert await call(mw, "/limited", method="POST") == 429
    [alert] = rec.payloads
    assert alert["event_type"] == "rate_limit"
    assert alert["count"] == 5
    assert (alert["path"], alert["method"], alert["client"]) == ("/limited", "POST", "198.51.100.1")
    assert mw.alerts_sent == 1


async def test_sliding_window() -> None:
    rec, clock = Recorder(), Clock()
    mw = AlertingMiddleware(plain_app, {"auth_failures": 3}, window_seconds=10, dispatcher=rec, clock=clock)
    for t in (0, 1, 11, 12):  # never three within 10 s: (0, 1, 11) and (1, 11, 12) span more
        clock.now = 1000 + t
        await call(mw, "/login")
    assert rec.payloads == []
    assert mw.counters["auth_failures"] == 2  # 11 and 12 are still in the window at t=12
    clock.now = 1013  # (11, 12, 13): three within 10 s
    await call(mw, "/login")
    assert rec.types() == ["auth_failures"]


async def test_cooldown_is_per_event_type() -> None:
    rec, clock = Recorder(), Clock()
    mw = AlertingMiddleware(plain_app, {"rate_limit": 2, "large_payloads": 2}, window_seconds=60, cooldown=300,
                            dispatcher=rec, clock=clock)
    for _ in range(2):
        await call(mw, "/limited")
    assert rec.types() == ["rate_limit"]
    for _ in range(10):  # quiet: rate_limit is cooling down
        clock.now += 1
        await call(mw, "/limited")
    assert rec.types() == ["rate_limit"]
    for _ in range(2):  # another type alerts meanwhile
        await call(mw, "/upload")
    assert rec.types() == ["rate_limit", "large_payloads"]
    clock.now += 300  # rate_limit's cooldown is over (but not large_payloads', which began 0 s ago... + 300)
    for _ in range(2):
        await call(mw, "/limited")
    assert rec.types() == ["rate_limit", "large_payloads", "rate_limit"]
    for _ in range(2):
        await call(mw, "/upload")
    assert rec.types() == ["rate_limit", "large_payloads", "rate_limit", "large_payloads"]
    for _ in range(4):
        await call(mw, "/upload")
    assert rec.types().count("large_payloads") == 2  # cooling down again


async def test_a_threshold_of_zero_turns_a_type_off() -> None:
    rec = Recorder()
    mw = AlertingMiddleware(plain_app, {"auth_failures": 0, "rate_limit": None, "large_payloads": 1}, dispatcher=rec)
    for _ in range(20):
        await call(mw, "/login")
        await call(mw, "/limited")
    assert rec.payloads == []
    await call(mw, "/upload")
    assert rec.types() == ["large_payloads"]


async def test_the_alert_names_the_top_clients_and_paths() -> None:
    teams: list[tuple[str, str]] = []
    dispatcher = AlertDispatcher(teams_webhook_url="https://example.com/hook",
                                 teams_sender=lambda url, message: teams.append((url, message)), env={})
    mw = AlertingMiddleware(plain_app, {"auth_failures": 10}, dispatcher=dispatcher, clock=Clock())
    hits = [("10.0.0.1", "/login")] * 5 + [("10.0.0.2", "/admin/login")] * 3 + [("10.0.0.3", "/login")] * 2
    for client, path in hits:
        await call(mw, path, client=client)
    assert await asyncio.to_thread(dispatcher.flush, 10)
    [(_, message)] = teams
    assert "Top clients: 10.0.0.1 (5), 10.0.0.2 (3), 10.0.0.3 (2)" in message
    assert "Top paths: /login (7), /admin/login (3)" in message
    assert "Event: auth_failures" in message and "Count: 10" in message


async def test_forwarded_for_is_used_only_when_trusted() -> None:
    rec = Recorder()
    forged = [(b"x-forwarded-for", b"6.6.6.6, 203.0.113.9")]  # the client wrote 6.6.6.6; our proxy added .9
    mw = AlertingMiddleware(plain_app, {"large_payloads": 1}, dispatcher=rec, trust_forwarded_for=True)
    await call(mw, "/upload", headers=forged)
    assert rec.payloads[-1]["top_clients"] == [{"client": "203.0.113.9", "count": 1}]
    rec2 = Recorder()
    mw = AlertingMiddleware(plain_app, {"large_payloads": 1}, dispatcher=rec2)
    await call(mw, "/upload", headers=forged)
    assert rec2.payloads[-1]["client"] == "198.51.100.1"


async def test_a_broken_dispatcher_never_breaks_a_response(logs: list[dict[str, Any]]) -> None:
    class Broken:
        def dispatch(self, payload: dict[str, Any]) -> None:
            raise RuntimeError("dispatcher is down")

    mw = AlertingMiddleware(plain_app, {"rate_limit": 1}, dispatcher=Broken())
    assert await call(mw, "/limited") == 429
    assert any(e["event"] == "alerting.dispatch_failed" and "dispatcher is down" in e["error"] for e in logs)
    assert any(e["event"] == "alerting.threshold_exceeded" for e in logs)


async def test_non_http_scopes_pass_through() -> None:
    seen: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(scope["type"])

    mw = AlertingMiddleware(app, dispatcher=Recorder())
    await mw({"type": "lifespan"}, None, None)
    await mw({"type": "websocket", "path": "/ws"}, None, None)
    assert seen == ["lifespan", "websocket"]


# -- in real frameworks, served by uvicorn ---------------------------------------------------------
async def test_starlette_app(serve_asgi: Callable[..., Any]) -> None:
    async def limited(request: Request) -> PlainTextResponse:
        return PlainTextResponse("slow down", status_code=429, headers={"Retry-After": "7"})

    async def ok(request: Request) -> PlainTextResponse:
        return PlainTextResponse("fine")

    async def stream(request: Request) -> StreamingResponse:
        async def chunks() -> Any:
            for i in range(3):
                yield f"chunk{i};"

        return StreamingResponse(chunks(), status_code=429)

    rec = Recorder()
    app = Starlette(
        routes=[Route("/limited", limited, methods=["GET", "POST"]), Route("/ok", ok), Route("/stream", stream)],
        middleware=[Middleware(AlertingMiddleware, alert_threshold={"rate_limit": 4}, dispatcher=rec)],
    )
    url = await serve_asgi(app)
    async with httpx.AsyncClient(base_url=url) as client:
        for _ in range(2):
            r = await client.get("/limited")
            assert (r.status_code, r.text, r.headers["retry-after"]) == (429, "slow down", "7")
        for _ in range(5):
            assert (await client.get("/ok")).text == "fine"
        assert (await client.get("/nope")).status_code == 404
        assert rec.payloads == []
        r = await client.get("/stream")
        assert (r.status_code, r.text) == (429, "chunk0;chunk1;chunk2;")
        await client.post("/limited")
    [alert] = rec.payloads
    assert alert["event_type"] == "rate_limit" and alert["count"] == 4
    assert (alert["path"], alert["method"], alert["client"]) == ("/limited", "POST", "127.0.0.1")
    assert alert["top_paths"] == [{"path": "/limited", "count": 3}, {"path": "/stream", "count": 1}]


async def test_fastapi_app(serve_asgi: Callable[..., Any]) -> None:
    rec = Recorder()
    app = FastAPI()
    app.add_middleware(AlertingMiddleware, alert_threshold={"auth_failures": 3, "large_payloads": 2}, dispatcher=rec)

    @app.get("/private")
    async def private() -> dict[str, str]:
        raise HTTPException(401, "who are you?")

    @app.post("/upload")
    async def upload(request: Request) -> dict[str, int]:
        body = await request.body()
        if len(body) > 100:
            raise HTTPException(413, "too large")
        return {"size": len(body)}

    url = await serve_asgi(app)
    async with httpx.AsyncClient(base_url=url) as client:
        for _ in range(2):
            r = await client.get("/private")
            assert r.status_code == 401 and r.json() == {"detail": "who are you?"}
        assert (await client.post("/upload", content=b"x" * 10)).json() == {"size": 10}
        assert (await client.post("/upload", content=b"x" * 1000)).status_code == 413
        assert rec.payloads == []
        await client.get("/private")
        assert rec.types() == ["auth_failures"]
        assert (await client.post("/upload", content=b"y" * 1000)).status_code == 413
        assert rec.types() == ["auth_failures", "large_payloads"]
        for _ in range(5):
            await client.get("/private")
        assert rec.types() == ["auth_failures", "large_payloads"]  # cooling down
    assert rec.payloads[1]["top_paths"] == [{"path": "/upload", "count": 2}]


_django_ready = False


def _django_app(rec: Recorder) -> Any:
    global _django_ready
    pytest.importorskip("django")
    from django.conf import settings

    if not settings.configured:
        settings.configure(DEBUG=False, ALLOWED_HOSTS=["*"], ROOT_URLCONF=__name__, SECRET_KEY="test-only",
                           MIDDLEWARE=[], INSTALLED_APPS=[], DATABASES={})
    if not _django_ready:
        import django

        django.setup()
        _django_ready = True
    from django.core.asgi import get_asgi_application

    return AlertingMiddleware(get_asgi_application(), {"auth_failures": 3}, dispatcher=rec)


def _django_view(request: Any) -> Any:
    from django.http import HttpResponse

    if request.path == "/private":
        return HttpResponse("no", status=401)
    return HttpResponse("yes")


def _urlpatterns() -> list[Any]:
    try:
        from django.urls import re_path
    except ImportError:
        return []
    return [re_path(r"^.*$", _django_view)]


urlpatterns = _urlpatterns()


async def test_django_asgi_app(serve_asgi: Callable[..., Any]) -> None:
    rec = Recorder()
    url = await serve_asgi(_django_app(rec), lifespan="off")
    async with httpx.AsyncClient(base_url=url) as client:
        assert (await client.get("/public")).text == "yes"
        for _ in range(3):
            r = await client.get("/private")
            assert (r.status_code, r.text) == (401, "no")
    assert rec.types() == ["auth_failures"]
    assert rec.payloads[0]["top_paths"] == [{"path": "/private", "count": 3}]


# -- through a hub ---------------------------------------------------------------------------------
async def test_alerts_through_a_hub_land_in_its_inbox(make_hub: Any, serve_asgi: Callable[..., Any]) -> None:
    hub = await make_hub()  # the default target: the built-in inbox
    app = AlertingMiddleware(plain_app, {"large_payloads": 3}, hub=hub, trust_forwarded_for=True)
    url = await serve_asgi(app, lifespan="off")
    async with httpx.AsyncClient(base_url=url) as client:
        for ip in ("192.0.2.1", "192.0.2.1", "192.0.2.2"):
            assert (await client.post("/upload", headers={"X-Forwarded-For": ip})).status_code == 413

    async def arrived() -> bool:
        return bool((await hub.inbox())["items"])

    await eventually(arrived)
    [item] = (await hub.inbox())["items"]
    message = item["message"]
    assert message["title"] == "Security alert: large payloads"
    assert message["priority"] == "high"
    assert message["labels"] == {"source": "middleware", "event_type": "large_payloads"}
    fields = dict(message["fields"])
    assert fields["Count"] == "3" and fields["Path"] == "/upload" and fields["Method"] == "POST"
    assert fields["Top clients"] == "192.0.2.1 (2), 192.0.2.2 (1)"
    assert fields["Top paths"] == "/upload (3)"
