"""The HTTP API through a real uvicorn server: auth, messages, deliveries, integrations, the inbox,
previews, health, metrics, and hostile input (which never gets a 500)."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from helpers import eventually
from prometheus_client.parser import text_string_to_metric_families
from sink import Reply, Sink
from sqlalchemy import select

from tidings.security.tokens import revoke_token
from tidings.server import create_app
from tidings.store.engine import Store
from tidings.store.tables import messages as messages_table

SQLITE_ONLY = pytest.mark.parametrize("db", ["sqlite"])
"""For tests of the HTTP layer alone: the database makes no difference to them."""

MESSAGES = "/api/v1/messages"
JSON = {"content-type": "application/json"}


def webhook(sink: Sink, path: str = "/hook", **extra: Any) -> dict[str, Any]:
    return {"kind": "webhook", "url": sink.url + path, "retry": {"base": 0.05, "cap": 0.2}, **extra}


def assert_error(r: httpx.Response, status: int, error: str | None = None) -> Any:
    """An error answer: the status, and the JSON ``{"error": ..., "detail": ...}``; returns detail."""
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert set(body) == {"error", "detail"}, body
    assert isinstance(body["error"], str) and body["error"]
    if error is not None:
        assert body["error"] == error, body
    return body["detail"]


@pytest.fixture
async def sinks() -> AsyncIterator[Callable[..., Any]]:
    """More sinks than the one ``sink`` fixture: ``await sinks(default=Reply(500))``."""
    started: list[Sink] = []

    async def start(default: Reply | None = None) -> Sink:
        s = Sink()
        if default is not None:
            s.default = default
        await s.start()
        started.append(s)
        return s

    yield start
    for s in started:
        await s.stop()


# -- authentication ----------------------------------------------------------------------------


def api_routes() -> list[tuple[str, str]]:
    """Every (method, path) under /api, with its path parameters filled in."""
    from tidings import Hub
    from tidings.config import parse_config

    spec = create_app(Hub(parse_config({}))).openapi()
    out = []
    for path, operations in spec["paths"].items():
        if path.startswith("/api"):
            path = re.sub(r"\{\w+_id\}", "x", path).replace("{name}", "inbox")
            out += [(method.upper(), path) for method in sorted(operations)]
    return out


def test_the_route_table_covers_the_documented_api() -> None:
    routes = set(api_routes())
    expected = {
        ("POST", "/api/v1/messages"),
        ("GET", "/api/v1/messages/x"),
        ("GET", "/api/v1/deliveries"),
        ("POST", "/api/v1/deliveries/x/retry"),
        ("GET", "/api/v1/integrations"),
        ("POST", "/api/v1/integrations/inbox/test"),
        ("POST", "/api/v1/integrations/inbox/enable"),
        ("POST", "/api/v1/integrations/inbox/disable"),
        ("GET", "/api/v1/inbox"),
        ("POST", "/api/v1/preview"),
        ("GET", "/api/v1/events"),
        ("GET", "/api/v1/events/x"),
        ("POST", "/api/v1/events/x/replay"),
        ("GET", "/api/v1/silences"),
        ("POST", "/api/v1/silences"),
        ("DELETE", "/api/v1/silences/x"),
    }
    assert expected <= routes


@SQLITE_ONLY
@pytest.mark.slow  # ~12 s: handed out first, not at the end of a run
async def test_every_api_route_requires_a_bearer_token(make_api: Any) -> None:
    api = await make_api(dispatch=False)
    bad_headers: list[dict[str, str]] = [
        {},
        {"Authorization": ""},
        {"Authorization": "Bearer"},
        {"Authorization": f"Basic {api.token}"},
        {"Authorization": api.token},
        {"Authorization": "Bearer tdg_not-a-real-token"},
        {"Authorization": f"Bearer {api.token}x"},
    ]
    for method, path in api_routes():
        for headers in bad_headers:
            r = await api.request(method, path, auth=False, headers=headers, json={"title": "x"})
            detail = assert_error(r, 401, "unauthorized")
            assert r.headers["www-authenticate"] == "Bearer", (method, path, headers)
            assert detail
    # The token itself is fine, and nothing was stored by the refused calls.
    r = await api.get("/api/v1/deliveries")
    assert r.status_code == 200 and r.json()["items"] == []
    # Bearer is case-insensitive (RFC 6750 follows RFC 7235).
    r = await api.get("/api/v1/deliveries", auth=False, headers={"Authorization": f"bearer {api.token}"})
    assert r.status_code == 200


@SQLITE_ONLY
async def test_a_missing_token_names_the_scheme_and_a_wrong_one_says_invalid(make_api: Any) -> None:
    api = await make_api(dispatch=False)
    missing = assert_error(await api.get("/api/v1/integrations", auth=False), 401)
    assert "Bearer" in missing
    wrong = assert_error(await api.get("/api/v1/integrations", auth=False, headers={"Authorization": "Bearer nope"}), 401)
    assert "invalid, expired or revoked" in wrong


async def test_a_revoked_token_is_refused(make_api: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import tidings.server.auth as auth

    api = await make_api(dispatch=False)
    # Revoked before its first use: refused at once.
    await revoke_token(api.hub.store, "test")
    assert_error(await api.get("/api/v1/integrations"), 401, "unauthorized")

    # Revoked after use: refused once the cache entry expires (here at once).
    from tidings.security.tokens import create_token

    monkeypatch.setattr(auth, "CACHE_SECONDS", 0.0)
    api.token = await create_token(api.hub.store, "second")
    assert (await api.get("/api/v1/integrations")).status_code == 200
    await revoke_token(api.hub.store, "second")
    r = await api.get("/api/v1/integrations")
    assert_error(r, 401)
    assert r.headers["www-authenticate"] == "Bearer"


# -- posting and reading messages ----------------------------------------------------------------


async def test_post_message_answers_202_after_the_row_is_committed(make_api: Any, db_url: str) -> None:
    api = await make_api(dispatch=False)
    r = await api.post(MESSAGES, json={"title": "Disk full", "body": "on web-01", "priority": "high",
                                       "fields": {"host": "web-01", "disk": "/var"}, "labels": {"source": "cron"}})
    assert r.status_code == 202, r.text
    body = r.json()
    assert set(body) == {"id", "deliveries"}
    assert len(body["deliveries"]) == 1
    d = body["deliveries"][0]
    assert set(d) == {"id", "integration", "status"}
    assert d["integration"] == "inbox" and d["status"] in ("pending", "sending")
    assert "idempotency-replay" not in r.headers

    # A separate connection, as another process would see it: the row is there already.
    store = Store(db_url)
    try:
        async with store.read() as conn:
            row = (await conn.execute(select(messages_table.c.title).where(messages_table.c.id == body["id"]))).first()
    finally:
        await store.close()
    assert row is not None and row.title == "Disk full"

    got = await api.get(f"{MESSAGES}/{body['id']}")
    assert got.status_code == 200
    m = got.json()
    assert m["id"] == body["id"]
    assert m["title"] == "Disk full" and m["body"] == "on web-01" and m["priority"] == "high"
    assert m["fields"] == [["host", "web-01"], ["disk", "/var"]]
    assert m["labels"] == {"source": "cron"}
    assert [x["id"] for x in m["deliveries"]] == [d["id"]]
    assert m["deliveries"][0]["status"] == "pending"
    assert m["deliveries"][0]["attempts"] == 0


async def test_get_message_shows_each_deliverys_outcome(make_api: Any, sink: Sink) -> None:
    sink.default = Reply(200, headers={"X-Request-Id": "req-42"})
    api = await make_api({"integrations": {"ops": webhook(sink), "strict": webhook(sink, "/strict")}})
    sink.script(Reply(200, headers={"X-Request-Id": "req-42"}))
    r = await api.post(MESSAGES, json={"title": "deploy", "to": ["ops", "inbox"]})
    assert r.status_code == 202
    mid = r.json()["id"]
    await api.hub.wait(mid)
    m = (await api.get(f"{MESSAGES}/{mid}")).json()
    by_name = {d["integration"]: d for d in m["deliveries"]}
    assert set(by_name) == {"ops", "inbox"}
    for d in by_name.values():
        assert d["status"] == "delivered"
        assert d["attempts"] == 1
        assert d["last_error"] is None
        assert d["latency_ms"] is not None and d["latency_ms"] > 0
        assert d["delivered_at"] is not None
    assert by_name["ops"]["remote_id"] == "req-42"
    assert by_name["inbox"]["remote_id"].startswith("inbox:")

    sink.script(Reply(400, body="no such channel"))
    r = await api.post(MESSAGES, json={"title": "rejected", "to": ["strict"]})
    mid = r.json()["id"]
    await api.hub.wait(mid)
    d = (await api.get(f"{MESSAGES}/{mid}")).json()["deliveries"][0]
    assert d["status"] == "dead" and d["attempts"] == 1
    assert "HTTP 400" in d["last_error"] and "no such channel" in d["last_error"]
    assert d["remote_id"] is None


async def test_idempotency_key_replays_the_same_request_and_refuses_a_different_one(make_api: Any) -> None:
    api = await make_api(dispatch=False)
    payload = {"title": "once", "labels": {"run": "7"}}
    first = await api.post(MESSAGES, json=payload, headers={"Idempotency-Key": "run-7"})
    assert first.status_code == 202 and "idempotency-replay" not in first.headers
    again = await api.post(MESSAGES, json=payload, headers={"Idempotency-Key": "run-7"})
    assert again.status_code == 200
    assert again.headers["idempotency-replay"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert [d["id"] for d in again.json()["deliveries"]] == [d["id"] for d in first.json()["deliveries"]]

    detail = assert_error(await api.post(MESSAGES, json={"title": "twice"}, headers={"Idempotency-Key": "run-7"}),
                          422, "idempotency key reused")
    assert "run-7" in detail
    # The explicit targets are part of the request too.
    assert_error(await api.post(MESSAGES, json={**payload, "to": ["inbox"]}, headers={"Idempotency-Key": "run-7"}), 422)
    # Another key is another message; no key at all is always a new message.
    other = await api.post(MESSAGES, json=payload, headers={"Idempotency-Key": "run-8"})
    assert other.status_code == 202 and other.json()["id"] != first.json()["id"]
    assert (await api.post(MESSAGES, json=payload)).status_code == 202
    assert len((await api.get("/api/v1/deliveries")).json()["items"]) == 3
    # An absurd key is a validation problem, not a database error; so is an empty one, twice.
    detail = assert_error(await api.post(MESSAGES, json=payload, headers={"Idempotency-Key": "k" * 300}), 422)
    assert any("idempotency-key" in line for line in detail)
    for _ in range(2):
        detail = assert_error(await api.post(MESSAGES, json=payload, headers={"Idempotency-Key": ""}), 422)
        assert any("idempotency-key" in line and "at least 1" in line for line in detail)


@SQLITE_ONLY
async def test_the_documented_route_answers_like_the_fast_path(make_hub: Any, serve_asgi: Any) -> None:
    """``POST /api/v1/messages`` is served before FastAPI (server/messages.py); the FastAPI route
    that documents it must still answer the same way for what the fast path leaves to it."""
    from fastapi import FastAPI

    from tidings.security.tokens import create_token

    hub = await make_hub(dispatch=False)
    app = create_app(hub)

    async def framework_only(scope: Any, receive: Any, send: Any) -> None:
        await FastAPI.__call__(app, scope, receive, send)

    url = await serve_asgi(framework_only, lifespan="off")
    headers = {"Authorization": f"Bearer {await create_token(hub.store, 'test')}"}
    async with httpx.AsyncClient(base_url=url) as client:
        first = await client.post(MESSAGES, json={"title": "once"}, headers={**headers, "Idempotency-Key": "k1"})
        assert first.status_code == 202 and set(first.json()) == {"id", "deliveries"}
        again = await client.post(MESSAGES, json={"title": "once"}, headers={**headers, "Idempotency-Key": "k1"})
        assert again.status_code == 200 and again.headers["idempotency-replay"] == "true"
        assert again.json() == first.json()
        assert_error(await client.post(MESSAGES, json={"title": ""}, headers=headers), 422, "invalid request")
        detail = assert_error(await client.post(MESSAGES, json={"title": "x"}, headers={**headers, "Idempotency-Key": ""}), 422)
        assert any("at least 1" in line for line in detail)
        assert_error(await client.post(MESSAGES, json={"title": "x"}), 401, "unauthorized")


@SQLITE_ONLY
async def test_a_byte_order_mark_before_the_json_is_skipped(make_api: Any) -> None:
    api = await make_api(dispatch=False)
    r = await api.post(MESSAGES, content=b"\xef\xbb\xbf" + json.dumps({"title": "bom"}).encode(), headers=JSON)
    assert r.status_code == 202, r.text


@SQLITE_ONLY
async def test_malformed_json_is_400(make_api: Any) -> None:
    api = await make_api(dispatch=False)
    for raw in (b"{bad", b'{"title": "x",}', b'{"title": "x"', b"{'title': 'x'}"):
        detail = assert_error(await api.post(MESSAGES, content=raw, headers=JSON), 400, "malformed JSON")
        assert detail


INVALID = [
    ({"title": ""}, ["title:"]),
    ({"title": "   "}, ["title:"]),
    ({"title": "x", "priority": "urgent"}, ["priority:"]),
    ({"title": "x", "body": "b" * 100_001}, ["body:"]),
    ({"title": "x" * 501}, ["title:"]),
    ({"title": "x", "labels": {"1st": "v"}}, ["labels"]),
    ({"title": "x", "labels": {"has space": "v"}}, ["labels"]),
    ({"title": "x", "links": [{"label": "docs", "url": "javascript:alert(1)"}]}, ["links[0].url:"]),
    ({"title": "x", "links": [{"label": "docs", "url": "ftp://example.com/x"}]}, ["links[0].url:"]),
    ({"title": "x", "colour": "red"}, ["colour:"]),
    ({"title": "x", "format": "rtf"}, ["format:"]),
    ({"title": "x", "thread_key": " "}, ["thread_key"]),
    ({"title": "x", "dedup_key": ""}, ["dedup_key"]),
    ({"title": "x", "fields": {str(i): "v" for i in range(51)}}, ["fields:"]),
    ({"body": "no title"}, ["title:"]),
    # Every problem of one request, one line each.
    ({"title": "", "priority": "nope", "colour": "red"}, ["title:", "priority:", "colour:"]),
]


@SQLITE_ONLY
@pytest.mark.parametrize(("payload", "expected"), INVALID, ids=[f"invalid{i}" for i in range(len(INVALID))])
async def test_invalid_fields_are_422_with_one_line_per_problem(make_api: Any, payload: dict[str, Any], expected: list[str]) -> None:
    api = await make_api(dispatch=False)
    detail = assert_error(await api.post(MESSAGES, json=payload), 422, "invalid request")
    assert isinstance(detail, list) and len(detail) == len(expected), detail
    for line, prefix in zip(sorted(detail), sorted(expected), strict=True):
        assert line.startswith(prefix), (line, prefix)
    assert (await api.get("/api/v1/deliveries")).json()["items"] == []


@SQLITE_ONLY
async def test_an_empty_target_list_is_422(make_api: Any) -> None:
    api = await make_api()
    detail = assert_error(await api.post(MESSAGES, json={"title": "x", "to": []}), 422)
    assert any("to: name at least one integration" in line for line in detail)


async def test_an_unknown_target_is_422(make_api: Any) -> None:
    api = await make_api(dispatch=False)
    detail = assert_error(await api.post(MESSAGES, json={"title": "x", "to": ["inbox", "slak"]}), 422, "unknown integration")
    assert "'slak'" in detail
    assert (await api.get("/api/v1/deliveries")).json()["items"] == []


@SQLITE_ONLY
async def test_a_body_over_the_limit_is_413_with_or_without_content_length(make_api: Any) -> None:
    api = await make_api({"server": {"body_limit": "4KiB"}}, dispatch=False)
    big = {"title": "x", "body": "b" * 6000}
    r = await api.post(MESSAGES, json=big)
    assert "4096" in assert_error(r, 413, "payload too large")

    async def chunks(n: int, size: int = 1000) -> AsyncIterator[bytes]:
        yield b'{"title": "chunked", "body": "'
        for _ in range(n):
            yield b"b" * size
        yield b'"}'

    r = await api.post(MESSAGES, content=chunks(8), headers=JSON)
    assert r.request.headers.get("transfer-encoding") == "chunked"
    assert "content-length" not in r.request.headers
    assert_error(r, 413, "payload too large")
    assert (await api.get("/api/v1/deliveries")).json()["items"] == []

    # Under the limit, chunked or not, it is accepted.
    r = await api.post(MESSAGES, content=chunks(2), headers=JSON)
    assert r.status_code == 202, r.text
    r = await api.post(MESSAGES, json={"title": "x", "body": "b" * 3000})
    assert r.status_code == 202, r.text
    # The limit applies to every route, preview included.
    assert_error(await api.post("/api/v1/preview", json=big), 413)


@SQLITE_ONLY
async def test_unknown_ids_are_404(make_api: Any) -> None:
    api = await make_api(dispatch=False)
    assert "no message" in assert_error(await api.get(f"{MESSAGES}/01a20000-0000-7000-8000-000000000000"), 404, "not found")
    assert_error(await api.get(f"{MESSAGES}/nope"), 404, "not found")
    assert "no delivery" in assert_error(await api.post("/api/v1/deliveries/nope/retry"), 404, "not found")
    for action in ("test", "enable", "disable"):
        assert "slak" in assert_error(await api.post(f"/api/v1/integrations/slak/{action}"), 404, "not found")
    assert_error(await api.get("/api/v1/nothing-here"), 404)
    assert_error(await api.request("DELETE", MESSAGES), 405)


# -- deliveries ----------------------------------------------------------------------------------


async def test_deliveries_filter_by_status_and_integration_and_paginate(make_api: Any, sink: Sink) -> None:
    api = await make_api({"integrations": {"ops": webhook(sink)}}, dispatch=False)
    inbox_ids, ops_ids = [], []
    for i in range(7):
        r = await api.post(MESSAGES, json={"title": f"m{i}", "to": ["inbox"]})
        inbox_ids.append(r.json()["deliveries"][0]["id"])
    for i in range(3):
        r = await api.post(MESSAGES, json={"title": f"dup{i}", "to": ["ops"], "dedup_key": "same"})
        ops_ids.append(r.json()["deliveries"][0]["id"])

    everything = (await api.get("/api/v1/deliveries")).json()
    assert everything["next"] is None
    assert [d["id"] for d in everything["items"]] == sorted(inbox_ids + ops_ids, reverse=True), "newest first"
    assert everything["items"][0]["title"] == "dup2"

    suppressed = (await api.get("/api/v1/deliveries", params={"status": "suppressed"})).json()["items"]
    assert sorted(d["id"] for d in suppressed) == sorted(ops_ids[1:])
    assert all(d["status"] == "suppressed" and d["integration"] == "ops" for d in suppressed)
    pending = (await api.get("/api/v1/deliveries", params={"status": "pending"})).json()["items"]
    assert sorted(d["id"] for d in pending) == sorted(inbox_ids + ops_ids[:1])
    ops = (await api.get("/api/v1/deliveries", params={"integration": "ops"})).json()["items"]
    assert sorted(d["id"] for d in ops) == sorted(ops_ids)
    both = (await api.get("/api/v1/deliveries", params={"integration": "ops", "status": "pending"})).json()["items"]
    assert [d["id"] for d in both] == [ops_ids[0]]
    assert (await api.get("/api/v1/deliveries", params={"status": "dead"})).json() == {"items": [], "next": None}
    assert (await api.get("/api/v1/deliveries", params={"integration": "slak"})).json() == {"items": [], "next": None}

    pages: list[list[str]] = []
    params: dict[str, Any] = {"integration": "inbox", "limit": 3}
    while True:
        page = (await api.get("/api/v1/deliveries", params=params)).json()
        pages.append([d["id"] for d in page["items"]])
        if page["next"] is None:
            break
        assert page["next"] == page["items"][-1]["id"]
        params["before"] = page["next"]
    assert [len(p) for p in pages] == [3, 3, 1]
    assert [i for p in pages for i in p] == sorted(inbox_ids, reverse=True)
    # Exactly one full page: no `next` pointing at an empty page.
    page = (await api.get("/api/v1/deliveries", params={"integration": "ops", "limit": 3})).json()
    assert len(page["items"]) == 3 and page["next"] is None

    for bad in ({"limit": 0}, {"limit": 501}, {"limit": "ten"}, {"status": "lost"}, {"status": ""}):
        assert_error(await api.get("/api/v1/deliveries", params=bad), 422, "invalid request")


async def test_retry_by_hand(make_api: Any, sink: Sink) -> None:
    sink.script(Reply(400, body="bad field"))
    api = await make_api({"integrations": {"ops": webhook(sink)}, "default": {"to": ["ops"]}})
    mid = (await api.post(MESSAGES, json={"title": "rejected"})).json()["id"]
    d = (await api.hub.wait(mid))["deliveries"][0]
    assert d["status"] == "dead"

    r = await api.post(f"/api/v1/deliveries/{d['id']}/retry")
    assert r.status_code == 200, r.text
    again = r.json()
    assert again["id"] == d["id"] and again["status"] == "pending" and again["attempts"] == 0

    async def delivered() -> bool:
        got = (await api.get(f"{MESSAGES}/{mid}")).json()["deliveries"][0]
        return bool(got["status"] == "delivered")

    await eventually(delivered)
    assert len(sink.received) == 2
    detail = assert_error(await api.post(f"/api/v1/deliveries/{d['id']}/retry"), 409, "conflict")
    assert "delivered" in detail
    assert_error(await api.post("/api/v1/deliveries/00000000-0000-0000-0000-000000000000/retry"), 404)


# -- integrations --------------------------------------------------------------------------------


async def test_integration_health_and_stats(make_api: Any, sinks: Callable[..., Any]) -> None:
    ok_sink = await sinks()
    down = await sinks(default=Reply(500, body="boom"))
    flaky = await sinks()
    flaky.script(Reply(400, body="once"))
    api = await make_api(
        {
            "integrations": {
                "good": webhook(ok_sink),
                "bad": webhook(down, retry={"max_attempts": 1}, breaker={"failures": 100}),
                "flaky": webhook(flaky),
                "broken": webhook(down, retry={"base": 60, "cap": 60}, breaker={"failures": 1, "cool_off": "60s"}),
                "off": webhook(ok_sink),
            }
        }
    )

    async def send(target: str, **extra: Any) -> dict[str, Any]:
        r = await api.post(MESSAGES, json={"title": f"to {target}", "to": [target], **extra})
        assert r.status_code == 202, r.text
        return await api.hub.wait(r.json()["id"])

    for _ in range(3):
        await send("good")
    await send("good", dedup_key="k")
    await send("good", dedup_key="k")  # suppressed
    await send("bad")
    for _ in range(3):
        await send("flaky")
    m = await send("broken")
    assert m["deliveries"][0]["status"] == "retrying"
    r = await api.post("/api/v1/integrations/off/disable")
    assert r.status_code == 200 and r.json() == {"integration": "off", "enabled": False}

    listed = (await api.get("/api/v1/integrations")).json()
    by_name = {i["name"]: i for i in listed}
    assert [i["name"] for i in listed] == ["good", "bad", "flaky", "broken", "off", "inbox"]
    health = {name: i["health"] for name, i in by_name.items()}
    assert health == {"good": "ok", "bad": "failing", "flaky": "degraded", "broken": "circuit-open",
                      "off": "disabled", "inbox": "ok"}
    assert by_name["broken"]["circuit"] == "open"
    assert by_name["good"]["circuit"] == "closed"
    assert by_name["off"]["disabled_reason"] == "disabled by hand"
    assert by_name["good"]["kind"] == "webhook" and by_name["inbox"]["kind"] == "inbox"
    assert set(by_name["good"]["limits"]) == {"rate_limit", "burst", "concurrency", "timeout_s"}

    good = by_name["good"]["stats"]
    assert good["sent"] == 4 and good["failed"] == 0 and good["suppressed"] == 1
    assert good["success_rate"] == 100.0
    assert good["latency_p50_ms"] is not None and good["latency_p95_ms"] is not None
    assert 0 < good["latency_p50_ms"] <= good["latency_p95_ms"]
    assert good["last_error"] is None

    bad = by_name["bad"]["stats"]
    assert bad["sent"] == 0 and bad["failed"] == 1 and bad["success_rate"] == 0.0
    assert bad["latency_p50_ms"] is None
    assert "HTTP 500" in bad["last_error"] and "boom" in bad["last_error"]

    flaky_stats = by_name["flaky"]["stats"]
    assert flaky_stats["sent"] == 2 and flaky_stats["failed"] == 1
    assert flaky_stats["success_rate"] == pytest.approx(66.67)

    broken = by_name["broken"]["stats"]
    assert broken["retrying"] == 1 and broken["success_rate"] is None

    inbox = by_name["inbox"]["stats"]
    assert inbox["sent"] == 0 and inbox["success_rate"] is None

    r = await api.post("/api/v1/integrations/off/enable")
    assert r.status_code == 200 and r.json() == {"integration": "off", "enabled": True}
    by_name = {i["name"]: i for i in (await api.get("/api/v1/integrations")).json()}
    assert by_name["off"]["health"] == "ok" and by_name["off"]["disabled_reason"] is None


async def test_a_disabled_integration_holds_its_deliveries_until_enabled(make_api: Any, sink: Sink) -> None:
    api = await make_api({"integrations": {"ops": webhook(sink)}})
    assert (await api.post("/api/v1/integrations/ops/disable")).status_code == 200
    mid = (await api.post(MESSAGES, json={"title": "held", "to": ["ops"]})).json()["id"]
    held = (await api.get(f"{MESSAGES}/{mid}")).json()["deliveries"][0]
    assert (held["status"], held["last_error"], held["attempts"]) == ("held", "held: integration disabled by hand", 0)
    assert sink.received == []
    assert (await api.post("/api/v1/integrations/ops/enable")).status_code == 200

    async def delivered() -> bool:
        got = (await api.get(f"{MESSAGES}/{mid}")).json()["deliveries"][0]
        return bool(got["status"] == "delivered")

    await eventually(delivered)
    assert [x.json()["data"]["title"] for x in sink.received] == ["held"]
    # Enabling or disabling twice is harmless.
    for action in ("enable", "enable", "disable", "disable"):
        assert (await api.post(f"/api/v1/integrations/ops/{action}")).status_code == 200


@SQLITE_ONLY
async def test_integration_test_endpoint(make_api: Any, sinks: Callable[..., Any]) -> None:
    good = await sinks()
    failing = await sinks(default=Reply(500, body="down for maintenance"))
    rejecting = await sinks(default=Reply(401, body="bad token"))
    api = await make_api(
        {"integrations": {"good": webhook(good), "failing": webhook(failing), "rejecting": webhook(rejecting)}},
        dispatch=False,
    )
    r = await api.post("/api/v1/integrations/inbox/test")
    assert r.status_code == 200
    assert r.json() == {"integration": "inbox", "ok": True, "status": "delivered", "remote_id": None,
                        "error": None, "retry_after": None}

    r = await api.post("/api/v1/integrations/good/test")
    assert r.status_code == 200 and r.json()["ok"] is True and r.json()["status"] == "delivered"
    assert len(good.received) == 1
    assert good.received[0].json()["data"]["title"] == "tidings test for good"

    r = await api.post("/api/v1/integrations/failing/test")
    assert r.status_code == 200, "the call worked; the peer did not"
    result = r.json()
    assert result["ok"] is False and result["status"] == "retry"
    assert "HTTP 500" in result["error"] and "down for maintenance" in result["error"]

    result = (await api.post("/api/v1/integrations/rejecting/test")).json()
    assert result["ok"] is False and result["status"] == "permanent" and "HTTP 401" in result["error"]

    assert_error(await api.post("/api/v1/integrations/nope/test"), 404, "not found")
    # Tests go around the queue: nothing stored, no stats changed.
    assert (await api.get("/api/v1/deliveries")).json()["items"] == []
    stats = {i["name"]: i["stats"] for i in (await api.get("/api/v1/integrations")).json()}
    assert stats["failing"]["failed"] == 0 and stats["good"]["sent"] == 0


# -- inbox and preview ---------------------------------------------------------------------------


async def test_inbox_lists_what_the_inbox_received(make_api: Any) -> None:
    api = await make_api({"integrations": {"second": {"kind": "inbox"}}})
    ids = []
    for i in range(3):
        r = await api.post(MESSAGES, json={"title": f"note {i}", "fields": [["n", str(i)]]})
        ids.append(r.json()["id"])
        await api.hub.wait(ids[-1])
    r = await api.post(MESSAGES, json={"title": "elsewhere", "to": ["second"]})
    await api.hub.wait(r.json()["id"])

    page = (await api.get("/api/v1/inbox")).json()
    assert [i["message"]["title"] for i in page["items"]] == ["elsewhere", "note 2", "note 1", "note 0"]
    first = (await api.get("/api/v1/inbox", params={"integration": "inbox", "limit": 2})).json()
    assert [i["message"]["title"] for i in first["items"]] == ["note 2", "note 1"]
    assert first["items"][0]["message_id"] == ids[2]
    assert first["items"][0]["message"]["fields"] == [["n", "2"]]
    assert first["items"][0]["integration"] == "inbox"
    assert first["next"] == first["items"][-1]["id"]
    rest = (await api.get("/api/v1/inbox", params={"integration": "inbox", "limit": 2, "before": first["next"]})).json()
    assert [i["message"]["title"] for i in rest["items"]] == ["note 0"] and rest["next"] is None
    second = (await api.get("/api/v1/inbox", params={"integration": "second"})).json()
    assert [i["message"]["title"] for i in second["items"]] == ["elsewhere"]
    for bad in ({"limit": 0}, {"before": "abc"}, {"before": 2**70}, {"before": -(2**70)}):
        assert_error(await api.get("/api/v1/inbox", params=bad), 422)


@SQLITE_ONLY
async def test_preview_renders_each_target_without_sending(make_api: Any, sink: Sink) -> None:
    api = await make_api(
        {
            "integrations": {"ops": webhook(sink)},
            "routes": [{"name": "urgent", "match": {"priority": ">=high"}, "to": ["ops", "inbox"]}],
        }
    )
    r = await api.post("/api/v1/preview", json={"title": "down", "priority": "critical", "fields": {"host": "db-1"}})
    assert r.status_code == 200, r.text
    targets = r.json()["targets"]
    assert [(t["integration"], t["kind"], t["route"]) for t in targets] == [("ops", "webhook", "urgent"), ("inbox", "inbox", "urgent")]
    assert targets[0]["payload"]["type"] == "message"
    assert targets[0]["payload"]["data"]["title"] == "down"
    assert targets[0]["payload"]["data"]["fields"] == [{"name": "host", "value": "db-1"}]
    assert targets[1]["payload"]["title"] == "down" and targets[1]["payload"]["priority"] == "critical"

    calm = (await api.post("/api/v1/preview", json={"title": "fyi", "priority": "low"})).json()["targets"]
    assert [(t["integration"], t["route"]) for t in calm] == [("inbox", "default")]
    forced = (await api.post("/api/v1/preview", json={"title": "fyi", "to": ["ops"]})).json()["targets"]
    assert [(t["integration"], t["route"]) for t in forced] == [("ops", None)]

    assert_error(await api.post("/api/v1/preview", json={"title": ""}), 422)
    assert_error(await api.post("/api/v1/preview", json={"title": "x", "to": ["slak"]}), 422, "unknown integration")
    await asyncio.sleep(0.3)
    assert sink.received == []
    assert (await api.get("/api/v1/deliveries")).json()["items"] == []
    assert (await api.get("/api/v1/inbox")).json()["items"] == []


# -- operations ----------------------------------------------------------------------------------


@SQLITE_ONLY
async def test_healthz_readyz_docs_and_openapi_need_no_token(make_api: Any) -> None:
    api = await make_api(dispatch=False)
    r = await api.get("/healthz", auth=False)
    assert r.status_code == 200 and r.json() == {"status": "ok"}
    r = await api.get("/readyz", auth=False)
    assert r.status_code == 200 and r.json() == {"status": "ready"}
    r = await api.get("/docs", auth=False)
    assert r.status_code == 200 and "text/html" in r.headers["content-type"] and "swagger" in r.text.lower()
    r = await api.get("/openapi.json", auth=False)
    assert r.status_code == 200
    spec = r.json()
    assert spec["info"]["title"] == "tidings"
    for path in ("/api/v1/messages", "/api/v1/messages/{message_id}", "/api/v1/deliveries", "/api/v1/integrations",
                 "/api/v1/inbox", "/api/v1/preview", "/healthz", "/readyz", "/metrics"):
        assert path in spec["paths"], path
    assert "202" in spec["paths"]["/api/v1/messages"]["post"]["responses"]


@pytest.mark.fresh_db
async def test_readyz_is_503_when_the_schema_is_not_current(make_hub: Any, serve: Any) -> None:
    hub = await make_hub(migrate=False, dispatch=False)
    api = await serve(hub, token=False)
    r = await api.get("/readyz", auth=False)
    detail = assert_error(r, 503, "not ready")
    assert "schema" in detail
    assert (await api.get("/healthz", auth=False)).status_code == 200


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


async def test_metrics_show_queue_depth_while_deliveries_wait(make_api: Any, sink: Sink) -> None:
    api = await make_api({"integrations": {"ops": webhook(sink)}}, dispatch=False)
    for i in range(3):
        assert (await api.post(MESSAGES, json={"title": f"m{i}", "to": ["ops"]})).status_code == 202
    await asyncio.sleep(0.05)
    r = await api.get("/metrics", auth=False)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    s = _samples(r.text)
    assert s[("tidings_queue_depth", (("integration", "ops"),))] == 3
    assert s[("tidings_queue_depth", (("integration", "inbox"),))] == 0
    assert s[("tidings_oldest_pending_age_seconds", ())] > 0
    assert s[("tidings_messages_total", ())] == 3


async def test_metrics_count_deliveries_and_latency(make_api: Any, sink: Sink) -> None:
    sink.script(Reply(400))
    api = await make_api({"integrations": {"ops": webhook(sink)}})
    for i in range(3):
        r = await api.post(MESSAGES, json={"title": f"m{i}", "to": ["inbox"]})
        await api.hub.wait(r.json()["id"])
    r = await api.post(MESSAGES, json={"title": "rejected", "to": ["ops"]})
    await api.hub.wait(r.json()["id"])

    async def counted() -> bool:
        s = _samples((await api.get("/metrics", auth=False)).text)
        return s.get(("tidings_deliveries_total", (("integration", "ops"), ("status", "dead")))) == 1 and \
            s.get(("tidings_deliveries_total", (("integration", "inbox"), ("status", "delivered")))) == 3

    await eventually(counted, timeout=5)
    text = (await api.get("/metrics", auth=False)).text
    assert "# TYPE tidings_delivery_latency_seconds histogram" in text
    s = _samples(text)
    assert s[("tidings_delivery_latency_seconds_count", (("integration", "inbox"),))] == 3
    assert s[("tidings_delivery_latency_seconds_bucket", (("integration", "inbox"), ("le", "+Inf")))] == 3
    assert s[("tidings_delivery_latency_seconds_sum", (("integration", "inbox"),))] > 0
    assert s[("tidings_delivery_latency_seconds_count", (("integration", "ops"),))] == 1
    assert s[("tidings_queue_depth", (("integration", "inbox"),))] == 0
    assert s[("tidings_oldest_pending_age_seconds", ())] == 0


# -- hostile input -------------------------------------------------------------------------------

REJECTED: list[tuple[str, bytes, dict[str, str]]] = [
    ("title is a number", b'{"title": 5}', JSON),
    ("title is a list", b'{"title": ["x"]}', JSON),
    ("title is an object", b'{"title": {"a": 1}}', JSON),
    ("title is null", b'{"title": null}', JSON),
    ("priority is a number", b'{"title": "x", "priority": 3}', JSON),
    ("huge integer priority", b'{"title": "x", "priority": ' + b"9" * 400 + b"}", JSON),
    ("huge float title", b'{"title": 1e400}', JSON),
    ("fields is a string", b'{"title": "x", "fields": "host=a"}', JSON),
    ("fields rows too short", b'{"title": "x", "fields": [[1]]}', JSON),
    ("labels is a list", b'{"title": "x", "labels": [1, 2]}', JSON),
    ("links rows too long", b'{"title": "x", "links": [[1, 2, 3]]}', JSON),
    ("links is a number", b'{"title": "x", "links": 7}', JSON),
    ("to is a string", b'{"title": "x", "to": "inbox"}', JSON),
    ("to holds numbers", b'{"title": "x", "to": [1]}', JSON),
    ("to is too long", json.dumps({"title": "x", "to": ["inbox"] * 51}).encode(), JSON),
    ("resolves is a word", b'{"title": "x", "resolves": "maybe"}', JSON),
    ("nested garbage", b'{"title": {"a": [{"b": {"c": [null, true, 1.5]}}]}, "labels": {"x": [[[]]]}}', JSON),
    ("deep nesting", b"[" * 5000 + b"]" * 5000, JSON),
    ("deep objects", b'{"a":' * 3000 + b"1" + b"}" * 3000, JSON),
    ("non-UTF-8 bytes", b'{"title": "\xff\xfe\xfd"}', JSON),
    ("binary garbage", bytes(range(256)), JSON),
    ("lone surrogate", b'{"title": "\\ud800"}', JSON),
    ("NUL in title", b'{"title": "a\\u0000b"}', JSON),
    ("NUL in dedup key", b'{"title": "x", "dedup_key": "k\\u0000"}', JSON),
    ("NUL in thread key", b'{"title": "x", "thread_key": "\\u0000"}', JSON),
    ("NUL in a label", b'{"title": "x", "labels": {"source": "a\\u0000"}}', JSON),
    ("empty body", b"", JSON),
    ("whitespace body", b"   ", JSON),
    ("JSON array", b'[{"title": "x"}]', JSON),
    ("JSON string", b'"x"', JSON),
    ("JSON null", b"null", JSON),
    ("JSON number", b"1e999999", JSON),
    ("text/plain", b'{"title": "x"}', {"content-type": "text/plain"}),
    ("form", b"title=x", {"content-type": "application/x-www-form-urlencoded"}),
    ("multipart", b"--b\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nx\r\n--b--\r\n",
     {"content-type": "multipart/form-data; boundary=b"}),
    ("no content type", b'{"title": "x"}', {}),
]

BAD_URLS: list[tuple[str, str]] = [
    ("GET", "/api/v1/messages/%00"),
    ("GET", "/api/v1/messages/x%00y"),
    ("GET", "/api/v1/messages/" + "x" * 5000),
    ("GET", "/api/v1/messages/%ff%fe"),
    ("GET", "/api/v1/deliveries?integration=%00"),
    ("GET", "/api/v1/deliveries?before=%00"),
    ("GET", "/api/v1/deliveries?status=%00"),
    ("GET", "/api/v1/deliveries?limit=99999999999999999999999999"),
    ("GET", "/api/v1/deliveries?limit=-1"),
    ("GET", "/api/v1/deliveries?limit=1e3"),
    ("GET", "/api/v1/inbox?before=99999999999999999999999999"),
    ("GET", "/api/v1/inbox?before=-99999999999999999999999999"),
    ("GET", "/api/v1/inbox?integration=%00"),
    ("GET", "/api/v1/inbox?limit=%ff"),
    ("POST", "/api/v1/deliveries/%00/retry"),
    ("POST", "/api/v1/deliveries/" + "9" * 400 + "/retry"),
    ("POST", "/api/v1/integrations/%00/test"),
    ("POST", "/api/v1/integrations/%00/enable"),
]


async def test_hostile_input_is_always_answered_4xx(make_api: Any) -> None:
    api = await make_api(dispatch=False)
    for name, raw, headers in REJECTED:
        for path in (MESSAGES, "/api/v1/preview"):
            r = await api.post(path, content=raw, headers=headers)
            assert 400 <= r.status_code < 500, (name, path, r.status_code, r.text)
            assert_error(r, r.status_code)
    r = await api.post(MESSAGES, content=b'{"title": "x"}', headers={**JSON, "Idempotency-Key": "k" * 8000})
    assert_error(r, 422)
    for method, url in BAD_URLS:
        r = await api.request(method, url)
        assert 400 <= r.status_code < 500, (method, url, r.status_code, r.text)
        assert_error(r, r.status_code)
    # Nothing above was stored, and the server is still fine.
    assert (await api.get("/api/v1/deliveries")).json() == {"items": [], "next": None}
    assert (await api.post(MESSAGES, json={"title": "still alive"})).status_code == 202


ODD_BUT_FINE: list[tuple[str, dict[str, Any]]] = [
    ("numbers as label values", {"title": "x", "labels": {"n": 10**30, "f": 1.5, "b": True}}),  # null: 422 (test_openapi)
    ("numbers as field values", {"title": "x", "fields": {"n": 10**30, "b": False}}),
    ("long source label", {"title": "x", "labels": {"source": "s" * 500}}),
    ("unicode everywhere", {"title": "🔥 Ünïcödé — 漢字", "body": "\u202e\u200b", "labels": {"k": "ñ"}}),
    ("longest title", {"title": "t" * 500, "thread_key": "k" * 500, "dedup_key": "d" * 500}),
]


async def test_odd_but_valid_input_is_stored_on_every_database(make_api: Any) -> None:
    api = await make_api(dispatch=False)
    for name, payload in ODD_BUT_FINE:
        r = await api.post(MESSAGES, json=payload)
        assert r.status_code == 202, (name, r.status_code, r.text)
        got = await api.get(f"{MESSAGES}/{r.json()['id']}")
        assert got.status_code == 200, (name, got.text)
        assert got.json()["title"] == payload["title"].strip()


def _raw_request(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(request)
        chunks = []
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                data = s.recv(65536)
            except (TimeoutError, ConnectionResetError):
                break
            if not data:
                break
            chunks.append(data)
            if b"\r\n\r\n" in b"".join(chunks):
                head, _, rest = b"".join(chunks).partition(b"\r\n\r\n")
                length = [int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")]
                if length and len(rest) >= length[0]:
                    break
        return b"".join(chunks)


@SQLITE_ONLY
async def test_broken_http_framing_is_4xx(make_api: Any) -> None:
    api = await make_api(dispatch=False)
    port = int(api.url.rsplit(":", 1)[1])
    auth = f"Authorization: Bearer {api.token}\r\n".encode()
    for length in (b"abc", b"-5", b"1" * 40):
        request = (b"POST /api/v1/messages HTTP/1.1\r\nHost: x\r\n" + auth
                   + b"Content-Type: application/json\r\nContent-Length: " + length + b"\r\n\r\n{}")
        answer = await asyncio.to_thread(_raw_request, port, request)
        status = int(answer.split(b" ", 2)[1])
        assert 400 <= status < 500, (length, answer[:200])


@pytest.mark.parametrize("ctype", ["text/plain", "application/x-www-form-urlencoded", None])
async def test_a_body_not_declared_as_json_is_415(make_api: Any, ctype: str | None) -> None:
    api = await make_api(dispatch=False)
    headers = {"content-type": ctype} if ctype else {}
    for path in (MESSAGES, "/api/v1/preview"):
        r = await api.post(path, content=b'{"title": "x"}', headers=headers)
        assert "json" in assert_error(r, 415, "unsupported media type").lower()
    r = await api.post(MESSAGES, content=b'{"title": "x"}', headers={"content-type": "application/merge-patch+json"})
    assert r.status_code == 202, r.text


async def test_error_details_never_echo_a_known_secret(make_hub: Any) -> None:
    """An input refused with its value echoed back (an unknown integration named like a secret)
    comes back masked."""
    from tidings.security import redact
    from tidings.security.tokens import create_token
    from tidings.server import create_app

    secret = "xoxb-echo-this-secret-9f8e7d6c5b"
    redact.register([secret])
    hub = await make_hub()
    token = await create_token(hub.store, "t")
    transport = httpx.ASGITransport(app=create_app(hub))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1",
                                 headers={"Authorization": f"Bearer {token}"}) as api:
        r = await api.post("/api/v1/messages", json={"title": "x", "to": [secret]})
        assert r.status_code == 422 and "unknown integration" in r.text, r.text
        assert secret[:12] not in r.text and secret[-12:] not in r.text, r.text


async def test_a_receiver_lists_the_url_to_give_its_provider_when_the_public_url_is_set(make_api: Any) -> None:
    """Behind a reverse proxy the address providers reach is server.public_url, not the API's own."""
    config = {"integrations": {"inbox": {"kind": "inbox"}, "gh": {"kind": "github", "secret": "s3cret-for-the-test"}},
              "server": {"public_url": "https://hooks.example.com/tidings/"}}
    api = await make_api(config, dispatch=False)
    by_name = {i["name"]: i for i in (await api.get("/api/v1/integrations")).json()}
    assert by_name["gh"]["webhook_url"] == "https://hooks.example.com/tidings/hooks/gh"
    assert "webhook_url" not in by_name["inbox"]  # a sender receives nothing


async def test_without_a_public_url_no_webhook_url_is_guessed(make_api: Any) -> None:
    api = await make_api({"integrations": {"gh": {"kind": "github", "secret": "s3cret-for-the-test"}}}, dispatch=False)
    by_name = {i["name"]: i for i in (await api.get("/api/v1/integrations")).json()}
    assert by_name["gh"]["receives"] and "webhook_url" not in by_name["gh"]
