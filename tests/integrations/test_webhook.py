"""The generic webhook integration: what it sends, how it signs, how it reads the peer's answer,
how its settings are checked, and that no failure of the peer loses a delivery or leaks a secret.

Tests of the notifier alone need no database; tests through a hub run on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import io
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from email.utils import formatdate
from typing import Any

import pytest
from helpers import eventually, json_logs, local_context
from peer import Peer, free_port
from sink import Reply
from sqlalchemy import select
from standardwebhooks import Webhook, WebhookVerificationError

from tidings import Message
from tidings.config import parse_config
from tidings.errors import ConfigError
from tidings.integrations.base import Attempt, Outcome, OutcomeStatus
from tidings.integrations.http import parse_retry_after
from tidings.integrations.webhook import WebhookIntegration
from tidings.store.tables import integration_state

SECRET = "whsec_" + base64.b64encode(b"tidings-test-signing-key-0123456").decode()
OTHER_SECRET = "whsec_" + base64.b64encode(b"somebody-else-s-signing-key-6543").decode()
RETRYABLE = [408, 425, 429, 500, 502, 503]
PERMANENT = [400, 401, 404, 422]


# -- helpers -----------------------------------------------------------------------------------

def webhook_settings(url: str, **extra: Any) -> Any:
    """Settings validated the way tidings.yaml is."""
    return parse_config({"integrations": {"ops": {"kind": "webhook", "url": url, **extra}}}).integrations["ops"]


@pytest.fixture
async def make_notifier(peer: Peer) -> AsyncIterator[Callable[..., WebhookIntegration]]:
    made: list[WebhookIntegration] = []

    def make(url: str | None = None, **extra: Any) -> WebhookIntegration:
        n = WebhookIntegration("ops", webhook_settings(url or peer.url + "/hook", **extra), local_context())
        made.append(n)
        return n

    yield make
    for n in made:
        await n.close()


def a_message() -> Message:
    return Message(
        "Disk full",
        "on **web-01**",
        priority="high",
        format="markdown",
        fields={"host": "web-01", "free": "0 B"},
        links=[("Runbook", "https://runbooks.example.com/disk")],
        labels={"service": "api", "source": "monitor"},
        thread_key="disk:web-01",
    )


def attempt_of(message: Message, delivery_id: str = "dlv-0001", number: int = 1, created_at: float = 1_700_000_000.5) -> Attempt:
    return Attempt(delivery_id, "msg-0001", number, created_at, message)


async def send_once(n: WebhookIntegration, message: Message | None = None, **kw: Any) -> Outcome:
    message = message or a_message()
    return await n.send(n.render(message), attempt_of(message, **kw))


def hook(peer: Peer, **extra: Any) -> dict[str, Any]:
    """A webhook integration to the peer with quick retries and a breaker that stays out of the way."""
    return {
        "kind": "webhook",
        "url": peer.url + "/hook",
        "retry": {"base": 0.05, "cap": 0.2, "max_attempts": 100},
        "breaker": {"failures": 1000},
        **extra,
    }


def routed(ops: dict[str, Any]) -> dict[str, Any]:
    return {"integrations": {"ops": ops}, "default": {"to": ["ops"]}}


async def the_delivery(hub: Any, message_id: str) -> dict[str, Any]:
    return (await hub.message(message_id))["deliveries"][0]


async def wait_delivery(hub: Any, message_id: str, check: Callable[[dict[str, Any]], bool], timeout: float = 10.0) -> dict[str, Any]:
    async def ok() -> bool:
        return check(await the_delivery(hub, message_id))

    await eventually(ok, timeout=timeout)
    return await the_delivery(hub, message_id)


def delivered(d: dict[str, Any]) -> bool:
    return d["status"] == "delivered"


# -- the request -------------------------------------------------------------------------------
def test_body_is_the_message_as_json_with_its_ids() -> None:
    n = WebhookIntegration("ops", webhook_settings("https://hooks.example.com/x"), local_context())
    m = a_message()
    payload = n.render(m)
    assert n.render(m) == payload, "render is pure"
    import orjson

    body = orjson.loads(n.body(payload, attempt_of(m, delivery_id="dlv-42", created_at=1_700_000_000.5)))
    assert body["id"] == "dlv-42"
    assert body["message_id"] == "msg-0001"
    assert dt.datetime.fromisoformat(body["timestamp"]) == dt.datetime.fromtimestamp(1_700_000_000.5, dt.UTC)
    assert dt.datetime.fromisoformat(body["timestamp"]).utcoffset() == dt.timedelta(0)
    assert body["type"] == "message"
    data = body["data"]
    assert data["title"] == "Disk full"
    assert data["body"] == "on **web-01**"
    assert data["priority"] == "high"
    assert data["format"] == "markdown"
    assert data["fields"] == [{"name": "host", "value": "web-01"}, {"name": "free", "value": "0 B"}]
    assert data["links"] == [{"label": "Runbook", "url": "https://runbooks.example.com/disk"}]
    assert data["labels"] == {"service": "api", "source": "monitor"}
    assert data["thread_key"] == "disk:web-01"


async def test_signed_request_verifies_and_tampering_does_not(peer: Peer, make_notifier: Any) -> None:
    n = make_notifier(secret=SECRET)
    outcome = await send_once(n, delivery_id="dlv-signed")
    assert outcome.ok, outcome
    r = peer.received[0]
    headers = {k.lower(): v for k, v in r.headers.items()}
    assert headers["webhook-id"] == "dlv-signed"
    assert abs(int(headers["webhook-timestamp"]) - time.time()) < 300
    assert headers["webhook-signature"].startswith("v1,")
    assert Webhook(SECRET).verify(r.body, r.headers) == r.json()

    tampered = r.body.replace(b"Disk full", b"Disk fine")
    assert tampered != r.body
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(tampered, r.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(r.body, {**r.headers, "webhook-id": "dlv-other"})
    with pytest.raises(WebhookVerificationError):
        Webhook(OTHER_SECRET).verify(r.body, r.headers)


async def test_no_signature_headers_without_a_secret(peer: Peer, make_notifier: Any) -> None:
    assert (await send_once(make_notifier())).ok
    names = {k.lower() for k in peer.received[0].headers}
    assert not names & {"webhook-id", "webhook-timestamp", "webhook-signature"}
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(peer.received[0].body, peer.received[0].headers)


@pytest.mark.parametrize("method", ["POST", "PUT"])
async def test_headers_custom_and_idempotency_key(peer: Peer, make_notifier: Any, method: str) -> None:
    n = make_notifier(headers={"X-Team": "ops", "Authorization": "Bearer abcdefgh1234"}, method=method)
    assert (await send_once(n, delivery_id="dlv-idem")).ok
    r = peer.received[0]
    assert r.method == method
    assert r.path == "/hook"
    assert r.headers["X-Team"] == "ops"
    assert r.headers["Authorization"] == "Bearer abcdefgh1234"
    assert r.headers["Idempotency-Key"] == "dlv-idem"
    assert r.headers["Content-Type"] == "application/json"
    assert r.headers["User-Agent"].startswith("tidings/")
    assert r.json()["id"] == "dlv-idem"


# -- reading the answer ------------------------------------------------------------------------
@pytest.mark.parametrize("status", [200, 201, 202, 204])
async def test_2xx_is_delivered(peer: Peer, make_notifier: Any, status: int) -> None:
    peer.script(Reply(status, headers={"X-Request-Id": "remote-7"}))
    outcome = await send_once(make_notifier())
    assert outcome.status is OutcomeStatus.DELIVERED
    assert outcome.remote_id == "remote-7"
    assert outcome.error is None


@pytest.mark.parametrize("form", ["none", "seconds", "http-date"])
@pytest.mark.parametrize("status", RETRYABLE)
async def test_retryable_statuses_carry_retry_after(peer: Peer, make_notifier: Any, status: int, form: str) -> None:
    headers = {
        "none": {},
        "seconds": {"Retry-After": "7"},
        # Formatted when the request arrives: the wait left is between 29 and 30 seconds.
        "http-date": None,
    }[form]
    if headers is None:
        peer.script(lambda: Reply(status, body="slow down", headers={"Retry-After": formatdate(time.time() + 30, usegmt=True)}))
    else:
        peer.script(Reply(status, body="slow down", headers=headers))
    outcome = await send_once(make_notifier())
    assert outcome.status is OutcomeStatus.RETRY
    assert outcome.error is not None and outcome.error.startswith(f"HTTP {status}")
    assert "slow down" in outcome.error
    assert not outcome.disable
    if form == "none":
        assert outcome.retry_after is None
    elif form == "seconds":
        assert outcome.retry_after == 7.0
    else:
        assert outcome.retry_after is not None and 20.0 <= outcome.retry_after <= 30.0


@pytest.mark.parametrize("status", PERMANENT)
async def test_client_errors_are_permanent_with_the_start_of_the_body(peer: Peer, make_notifier: Any, status: int) -> None:
    body = "field 'data.title' is invalid; " + "x" * 2000 + " END-OF-BODY"
    peer.script(Reply(status, body=body, headers={"Retry-After": "5"}))
    outcome = await send_once(make_notifier())
    assert outcome.status is OutcomeStatus.PERMANENT
    assert outcome.error is not None
    assert f"HTTP {status}" in outcome.error
    assert "field 'data.title' is invalid" in outcome.error
    assert "END-OF-BODY" not in outcome.error, "only the start of the body"
    assert len(outcome.error) < 1000
    assert not outcome.disable
    assert len(peer.received) == 1


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_redirects_are_not_followed(peer: Peer, make_notifier: Any, status: int) -> None:
    location = peer.url + "/moved-to"
    peer.script(Reply(status, headers={"Location": location}))
    outcome = await send_once(make_notifier())
    assert outcome.status is OutcomeStatus.PERMANENT
    assert outcome.error is not None
    assert f"HTTP {status}" in outcome.error
    assert "redirects are not followed" in outcome.error
    assert f"(to {location})" in outcome.error
    await asyncio.sleep(0.1)
    assert [r.path for r in peer.received] == ["/hook"], "the Location was never requested"


async def test_redirect_without_location_still_reads_well(peer: Peer, make_notifier: Any) -> None:
    peer.script(Reply(302))
    outcome = await send_once(make_notifier())
    assert outcome.status is OutcomeStatus.PERMANENT
    assert outcome.error is not None
    assert outcome.error.endswith("update the URL")


async def test_410_is_permanent_and_disables(peer: Peer, make_notifier: Any) -> None:
    peer.script(Reply(410, body="this hook was deleted"))
    outcome = await send_once(make_notifier())
    assert outcome.status is OutcomeStatus.PERMANENT
    assert outcome.disable
    assert outcome.error is not None and "HTTP 410" in outcome.error and "this hook was deleted" in outcome.error


async def test_a_slow_peer_is_a_retryable_timeout(peer: Peer, make_notifier: Any) -> None:
    peer.script(Reply(delay=30))
    outcome = await send_once(make_notifier(timeout=0.2))
    assert outcome.status is OutcomeStatus.RETRY
    assert outcome.error is not None and "timed out" in outcome.error


async def test_a_connection_reset_is_retryable(peer: Peer, make_notifier: Any) -> None:
    peer.script(Reply(action="reset"))
    outcome = await send_once(make_notifier())
    assert outcome.status is OutcomeStatus.RETRY
    assert outcome.error


async def test_a_peer_that_is_down_is_retryable(make_notifier: Any) -> None:
    outcome = await send_once(make_notifier(url=f"http://127.0.0.1:{free_port()}/hook"))
    assert outcome.status is OutcomeStatus.RETRY
    assert outcome.error and "connect" in outcome.error.lower()


# -- Retry-After -------------------------------------------------------------------------------
NOW = 1_445_412_450.0  # 2015-10-21 07:27:30 UTC


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        (" 3 ", 3.0),
        ("0", 0.0),
        ("1.5", 1.5),
        ("-5", 0.0),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 30.0),  # IMF-fixdate
        ("Wednesday, 21-Oct-15 07:28:00 GMT", 30.0),  # RFC 850
        ("Wed Oct 21 07:28:00 2015", 30.0),  # asctime, which is GMT too
        ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0),  # in the past: now
        ("soon", None),
        ("", None),
        (None, None),
        ("nan", None),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, now=NOW) == expected


def test_parse_retry_after_dates_do_not_depend_on_the_local_time_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    if not hasattr(time, "tzset"):
        pytest.skip("needs time.tzset")
    try:
        for tz in ("America/New_York", "Asia/Kolkata", "UTC"):
            monkeypatch.setenv("TZ", tz)
            time.tzset()
            assert parse_retry_after("Wed Oct 21 07:28:00 2015", now=NOW) == 30.0, tz
            assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=NOW) == 30.0, tz
    finally:
        monkeypatch.undo()
        time.tzset()


def test_parse_retry_after_defaults_to_the_clock() -> None:
    value = parse_retry_after(formatdate(time.time() + 100, usegmt=True))
    assert value is not None and 90 <= value <= 100


# -- settings ----------------------------------------------------------------------------------
def problems_of(**extra: Any) -> list[str]:
    data = {"integrations": {"ops": {"kind": "webhook", "url": "https://hooks.example.com/x", **extra}}}
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    return info.value.problems


@pytest.mark.parametrize(
    ("extra", "path", "says"),
    [
        ({"url": "ftp://hooks.example.com/x"}, "integrations.ops.url: ", "http"),
        ({"url": "hooks.example.com/x"}, "integrations.ops.url: ", "http"),
        ({"url": "https://"}, "integrations.ops.url: ", "host"),
        ({"secret": "s3cr3t-but-not-whsec"}, "integrations.ops.secret: ", "whsec_"),
        ({"secret": "whsec_!!!!not base64!!!!"}, "integrations.ops.secret: ", "base64"),
        ({"secret": "whsec_"}, "integrations.ops.secret: ", "base64"),
        ({"headers": {"Content-Type": "text/plain"}}, "integrations.ops.headers: ", "Content-Type"),
        ({"headers": {"webhook-signature": "v1,forged"}}, "integrations.ops.headers: ", "webhook-signature"),
        ({"headers": {"Host": "evil.example.com"}}, "integrations.ops.headers: ", "Host"),
        ({"headers": {"X-Note": "a\r\nX-Injected: 1"}}, "integrations.ops.headers: ", "line breaks"),
        ({"headers": {"X-Note\n": "a"}}, "integrations.ops.headers: ", "line breaks"),
        ({"headers": {"X Note": "a"}}, "integrations.ops.headers: ", "X Note"),
        ({"method": "DELETE"}, "integrations.ops.method: ", ""),
        ({"rate_limit": "fast"}, "integrations.ops.rate_limit: ", "4/second"),
    ],
)
def test_bad_settings_are_clear_errors(extra: dict[str, Any], path: str, says: str) -> None:
    problems = problems_of(**extra)
    matching = [p for p in problems if p.startswith(path)]
    assert matching, problems
    assert says in matching[0], matching


def test_secret_errors_do_not_echo_the_secret() -> None:
    problems = problems_of(secret="s3cr3t-but-not-whsec")
    assert not any("s3cr3t-but-not-whsec" in p for p in problems), problems


def test_good_settings_pass() -> None:
    s = webhook_settings(
        "https://hooks.example.com/x?team=ops",
        secret=SECRET,
        headers={"X-Team": "ops", "Authorization": "Bearer abc"},
        timeout="3s",
        rate_limit="4/second",
    )
    assert s.url == "https://hooks.example.com/x?team=ops"
    assert s.secret is not None and s.secret.get_secret_value() == SECRET
    assert s.timeout == 3.0
    vault = webhook_settings("https://hooks.example.com/x", secret="${vault:ops_signing}")
    assert vault.vault_refs() == {"secret": "ops_signing"}


# -- through the hub: nothing is lost ------------------------------------------------------------
async def test_delivered_end_to_end_signed_with_its_ids(make_hub: Any, peer: Peer) -> None:
    hub = await make_hub(routed(hook(peer, secret=SECRET, headers={"X-Team": "ops"})))
    r = await hub.notify(a_message())
    m = await hub.wait(r.id)
    d = m["deliveries"][0]
    assert d["status"] == "delivered" and d["attempts"] == 1
    (req,) = peer.received
    body = Webhook(SECRET).verify(req.body, req.headers)
    assert body["id"] == d["id"] == req.headers["Idempotency-Key"] == req.headers["webhook-id"]
    assert body["message_id"] == r.id
    assert body["type"] == "message"
    assert body["data"]["fields"] == [{"name": "host", "value": "web-01"}, {"name": "free", "value": "0 B"}]
    assert dt.datetime.fromisoformat(body["timestamp"]).timestamp() == pytest.approx(m["created_at"], abs=1e-3)
    assert req.headers["X-Team"] == "ops"


async def test_retries_carry_the_same_key_and_the_same_bytes(make_hub: Any, peer: Peer) -> None:
    peer.script(503, Reply(action="reset"), Reply(502, headers={"Retry-After": "0"}), 200)
    hub = await make_hub(routed(hook(peer, secret=SECRET)))
    r = await hub.notify(a_message())
    d = await wait_delivery(hub, r.id, delivered)
    assert d["attempts"] == 4
    assert len(peer.received) == 4
    assert {x.headers["Idempotency-Key"] for x in peer.received} == {d["id"]}
    assert {x.headers["webhook-id"] for x in peer.received} == {d["id"]}
    assert len({x.body for x in peer.received}) == 1, "every attempt sends the same bytes"
    for x in peer.received:
        Webhook(SECRET).verify(x.body, x.headers)


async def test_retry_after_seconds_is_honoured(make_hub: Any, peer: Peer) -> None:
    # Backoff after attempt 1 is at most 0.2 s; Retry-After asks for 1 s (within 10x of it).
    hub = await make_hub(routed(hook(peer, retry={"base": 0.2, "cap": 1})))
    peer.script(Reply(503, headers={"Retry-After": "1"}), 200)
    r = await hub.notify(Message("later please"))
    d = await wait_delivery(hub, r.id, delivered)
    assert d["attempts"] == 2
    assert peer.arrivals[1] - peer.arrivals[0] >= 0.95


async def test_retry_after_http_date_is_honoured(make_hub: Any, peer: Peer) -> None:
    hub = await make_hub(routed(hook(peer, retry={"base": 0.2, "cap": 1})))
    # Whole seconds: the wait asked for is between 1 and 2 s from the answer.
    peer.script(lambda: Reply(429, headers={"Retry-After": formatdate(time.time() + 2, usegmt=True)}), 200)
    r = await hub.notify(Message("later please"))
    d = await wait_delivery(hub, r.id, delivered)
    assert d["attempts"] == 2
    assert peer.arrivals[1] - peer.arrivals[0] >= 0.8


async def test_a_permanent_failure_is_dead_at_once(make_hub: Any, peer: Peer) -> None:
    peer.script(Reply(422, body='{"error": "unknown field fields"}'))
    hub = await make_hub(routed(hook(peer)))
    r = await hub.notify(Message("rejected"))
    d = (await hub.wait(r.id))["deliveries"][0]
    assert d["status"] == "dead"
    assert d["attempts"] == 1
    assert "HTTP 422" in d["last_error"] and "unknown field" in d["last_error"]
    await asyncio.sleep(0.3)
    assert len(peer.received) == 1, "a permanent failure is not retried"


async def test_410_disables_the_integration_until_enabled(make_hub: Any, peer: Peer) -> None:
    peer.script(Reply(410, body="hook deleted"))
    config = routed(hook(peer))
    hub = await make_hub(config)
    gone = await hub.notify(Message("first"))
    d = (await hub.wait(gone.id))["deliveries"][0]
    assert d["status"] == "dead" and "HTTP 410" in d["last_error"]

    async def disabled_row() -> bool:
        async with hub.store.read() as conn:
            row = (await conn.execute(select(integration_state).where(integration_state.c.name == "ops"))).first()
        return row is not None and row.disabled

    await eventually(disabled_row)
    ops = {i["name"]: i for i in await hub.integrations()}["ops"]
    assert ops["health"] == "disabled"
    assert "410" in ops["disabled_reason"]

    later = await hub.notify(Message("second"))
    d2 = await the_delivery(hub, later.id)
    assert d2["status"] == "held" and d2["attempts"] == 0 and "410" in d2["last_error"]
    assert len(peer.received) == 1

    # A restart remembers: the row says disabled.
    await hub.stop()
    hub = await make_hub(config)
    await asyncio.sleep(0.3)  # a restarted worker doesn't send it either
    assert (await the_delivery(hub, later.id))["status"] == "held"
    assert len(peer.received) == 1

    await hub.set_enabled("ops", True)
    d2 = await wait_delivery(hub, later.id, delivered)
    assert d2["attempts"] == 1
    assert [x.json()["data"]["title"] for x in peer.received] == ["first", "second"]
    ops = {i["name"]: i for i in await hub.integrations()}["ops"]
    assert ops["health"] != "disabled"
    assert ops["disabled_reason"] is None


@pytest.mark.parametrize("failure", ["slow", "reset", "down"])
async def test_peer_failures_are_retried_and_nothing_is_lost(make_hub: Any, peer: Peer, failure: str) -> None:
    late: Peer | None = None
    if failure == "down":
        port = free_port()
        ops = hook(peer, url=f"http://127.0.0.1:{port}/hook")
    elif failure == "slow":
        peer.default = Reply(delay=30)
        ops = hook(peer, timeout=0.2)
    else:
        peer.default = Reply(action="reset")
        ops = hook(peer)
    hub = await make_hub(routed(ops))
    r = await hub.notify(Message(f"through a {failure} peer"))

    expect = {"slow": "timed out", "reset": "", "down": "connect"}[failure]

    def failed_and_waiting(d: dict[str, Any]) -> bool:
        return d["attempts"] >= 2 and bool(d["last_error"]) and expect in d["last_error"].lower()

    d = await wait_delivery(hub, r.id, failed_and_waiting)
    assert d["status"] in ("retrying", "sending"), d
    assert "HTTP" not in d["last_error"]

    # The peer recovers.
    try:
        if failure == "down":
            late = Peer(port)
            await late.start()
        else:
            peer.default = Reply(200)
        d = await wait_delivery(hub, r.id, delivered)
        assert d["last_error"] is None
        ok = late or peer
        assert ok.received[-1].json()["id"] == d["id"]
        assert {x.headers["Idempotency-Key"] for x in ok.received} == {d["id"]}
    finally:
        if late is not None:
            await hub.stop()
            await late.stop()


# -- secrets never leak --------------------------------------------------------------------------
TOKEN = "s3cr3t-token-value"
QUERY_SECRET = "q5ecret-query-value"


@pytest.fixture
def log_output(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    """tidings' own logging setup (JSON, every known secret masked), written to a buffer."""
    import tidings.store.batch

    yield from json_logs(monkeypatch, (tidings.store.batch, "tidings.store"))


async def test_secrets_in_headers_and_url_never_leak(make_hub: Any, peer: Peer, log_output: io.StringIO) -> None:
    ops = hook(peer, url=peer.url + f"/hook?token={QUERY_SECRET}", headers={"Authorization": f"Bearer {TOKEN}"})
    hub = await make_hub(routed(ops))
    peer.script(
        # Peers echo what they were sent, whole or in part.
        Reply(401, body=f"bad credentials: 'Authorization: Bearer {TOKEN}' for /hook?token={QUERY_SECRET}"),
        Reply(403, body=f"invalid token {TOKEN}"),
        Reply(404, body=f"no hook for key {QUERY_SECRET}"),
        Reply(410, body=f"hook for token {TOKEN} was deleted"),
    )
    errors = []
    for i in range(4):
        r = await hub.notify(Message(f"m{i}"))
        d = (await hub.wait(r.id))["deliveries"][0]
        assert d["status"] == "dead"
        errors.append(d["last_error"])
    assert peer.received[0].headers["Authorization"] == f"Bearer {TOKEN}", "the peer itself gets the secret"
    assert peer.received[0].path == f"/hook?token={QUERY_SECRET}"

    ops_info = {i["name"]: i for i in await hub.integrations()}["ops"]
    texts = [*errors, ops_info["stats"]["last_error"], ops_info["disabled_reason"]]
    from tidings.delivery.dispatcher import log

    log.warning("test.leak_check", error=f"Bearer {TOKEN} {QUERY_SECRET}")
    await hub.stop()
    logged = log_output.getvalue()
    assert "test.leak_check" in logged, "the log capture works"
    texts.append(logged)
    for text in texts:
        assert text is not None
        assert TOKEN not in text, text
        assert QUERY_SECRET not in text, text
    for text in errors:
        assert "…alue" in text, text
    events = [json.loads(line) for line in logged.splitlines() if line.startswith("{")]
    (check,) = [e for e in events if e["event"] == "test.leak_check"]
    assert check["error"].count("…alue") == 2, check
