"""The apprise kind through a real hub and the outbox, on SQLite and PostgreSQL: delivered once,
a failing URL retried alone (the others never get it twice), failures masked in the delivery,
preview, the integrations test, a ``${vault:NAME}`` URL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from helpers import eventually
from sink import Reply, Sink

from tidings import Message
from tidings.integrations.apprise import fingerprint, progress_of

TOKEN = "hubS3cr3tT0ken77"


@pytest.fixture
async def peers() -> AsyncIterator[tuple[Sink, Sink]]:
    a, b = Sink(), Sink()
    await a.start()
    await b.start()
    yield a, b
    await a.stop()
    await b.stop()


def config(*urls: str, **extra: Any) -> dict[str, Any]:
    ops = {"kind": "apprise", "urls": list(urls), "retry": {"base": 0.05, "cap": 0.2, "max_attempts": 20},
           "breaker": {"min_calls": 1000}, **extra}
    return {"integrations": {"push": ops}, "default": {"to": ["push"]}}


async def delivery(hub: Any, message_id: str) -> dict[str, Any]:
    d: dict[str, Any] = (await hub.message(message_id))["deliveries"][0]
    return d


async def settled(hub: Any, message_id: str, status: str = "delivered") -> dict[str, Any]:
    async def check() -> bool:
        return (await delivery(hub, message_id))["status"] == status

    await eventually(check, timeout=15)
    return await delivery(hub, message_id)


async def test_delivered_once(make_hub: Any, peers: tuple[Sink, Sink]) -> None:
    a, _ = peers
    hub = await make_hub(config(f"json://user:{TOKEN}@127.0.0.1:{a.port}/hook"))
    m = await hub.notify(Message("disk full", body="sda1"))
    d = await settled(hub, m.id)
    assert d["attempts"] == 1 and d["remote_id"] is None
    assert len(a.received) == 1 and a.received[0].json()["title"] == "disk full"


async def test_failing_url_retried_alone(make_hub: Any, peers: tuple[Sink, Sink]) -> None:
    a, b = peers
    b.script(Reply(500, body=f"token {TOKEN} rejected"), 503)  # fails twice, then 200
    good, bad = f"json://127.0.0.1:{a.port}/a", f"form://user:{TOKEN}@127.0.0.1:{b.port}/b"
    hub = await make_hub(config(good, bad))
    m = await hub.notify(Message("x"))

    async def failed_once() -> bool:
        return (await delivery(hub, m.id))["attempts"] >= 1

    await eventually(failed_once)
    d = await settled(hub, m.id)
    assert d["attempts"] == 3, d
    assert len(a.received) == 1, "the URL that got it is never sent to again"
    assert len(b.received) == 3
    assert progress_of(d["remote_id"]) == {fingerprint(good), fingerprint(bad)}
    assert TOKEN not in str(d)


async def test_retry_error_masked_and_says_why(make_hub: Any, peers: tuple[Sink, Sink]) -> None:
    a, b = peers
    b.default = Reply(500, body=f"token {TOKEN} rejected")
    hub = await make_hub(config(f"json://127.0.0.1:{a.port}/a", f"json://user:{TOKEN}@127.0.0.1:{b.port}/b"))
    m = await hub.notify(Message("x"))

    async def retried() -> bool:
        return (await delivery(hub, m.id))["attempts"] >= 2

    await eventually(retried)
    d = await delivery(hub, m.id)
    assert d["status"] in ("retrying", "sending"), d
    assert "1 of 2 URLs got it" in (d["last_error"] or "") and "True/False" in (d["last_error"] or "")
    assert TOKEN not in str(d)
    assert len(a.received) == 1


async def test_preview_and_integrations_test(make_hub: Any, peers: tuple[Sink, Sink]) -> None:
    a, b = peers
    hub = await make_hub(config(f"json://user:{TOKEN}@127.0.0.1:{a.port}/a"))
    [shown] = hub.preview(Message("preview me", body="body", fields={"host": "db1"}))
    rendered = str(shown)
    assert "preview me" in rendered and "host: db1" in rendered and TOKEN not in rendered
    assert a.received == [], "a preview sends nothing"
    outcome = await hub.test("push")  # Apprise has no check call: the test sends a test notification
    assert outcome.ok, outcome
    assert len(a.received) == 1 and "tidings test for push" in a.received[0].json()["title"]
    a.default = Reply(500, body=f"no {TOKEN}")
    failed = await hub.test("push")
    assert not failed.ok and TOKEN not in (failed.error or "")


async def test_vault_url(make_hub: Any, peers: tuple[Sink, Sink], monkeypatch: pytest.MonkeyPatch) -> None:
    from tidings.security.vault import new_key

    monkeypatch.setenv("TIDINGS_SECRET_KEY", new_key())
    a, _ = peers
    writer = await make_hub(config("json://127.0.0.1:1/placeholder"), dispatch=False)
    assert writer.vault is not None
    await writer.vault.set("pushurl", f"json://user:{TOKEN}@127.0.0.1:{a.port}/vaulted")
    await writer.stop()
    hub = await make_hub(config(f"json://127.0.0.1:{a.port}/plain", "${vault:pushurl}"))
    m = await hub.notify(Message("from the vault"))
    await settled(hub, m.id)
    assert sorted(r.path for r in a.received) == ["/plain", "/vaulted"]
