"""Every change the hub makes for a person appends its audit entry in the same transaction: silences,
retries (one and bulk), replays, enable/disable, acknowledgements and key rotation, on SQLite and
PostgreSQL. A change that is refused or rolls back leaves no entry."""

from __future__ import annotations

import base64
import time
from typing import Any

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select, update

from tidings import Hub
from tidings.audit import Actor, Verified, verify_store
from tidings.audit.verify import read_entries
from tidings.config import revisions
from tidings.delivery.queries import RetryRefused
from tidings.errors import NotFound, VaultError
from tidings.inbound import ReplayRefused
from tidings.message import Message
from tidings.security.vault import Vault, new_key
from tidings.store.engine import Store
from tidings.store.tables import deliveries, events, integration_state, secrets

ALICE = Actor("user", id="u-alice", name="alice@example.com", auth_method="session", ip="192.0.2.7",
              user_agent="Mozilla/5.0", request_id="req-1")
SLACK_BOB = Actor("user", id="slack:U0BOB", name="U0BOB (bob)", auth_method="slack", request_id="ev-1")
SECRET = "whsec_" + base64.b64encode(b"inbound-test-secret-bytes-32....").decode()
CONFIG = {"integrations": {"inbox": {"kind": "inbox"},
                           "partner": {"kind": "webhook", "receive_secret": SECRET, "receive": {}}}}


async def entries(hub: Hub) -> list[dict[str, Any]]:
    """The entries of the changes the test made: those after the hub's start, whose one entry is
    the configuration's first revision (its file imported)."""
    found = await read_entries(hub.require_store())
    async with hub.require_store().read() as conn:
        start = (await revisions.get(conn, hub.revision)).audit_seq
    assert hub.revision == 1 and [e["action"] for e in found if e["seq"] <= start] == ["config.revision"]
    return [e for e in found if e["seq"] > start]


def who(entry: dict[str, Any]) -> tuple[Any, ...]:
    return entry["actor"], entry["actor_id"], entry["actor_name"], entry["auth_method"], entry["ip"], entry["request_id"]


async def sent(hub: Hub, title: str) -> tuple[str, str]:
    """A message delivered to the inbox: (message id, delivery id)."""
    receipt = await hub.notify(Message(title), to=["inbox"])
    message = await hub.wait(receipt.id)
    return receipt.id, message["deliveries"][0]["id"]


async def dead(hub: Hub, delivery_id: str) -> None:
    async with hub.require_store().write() as conn:
        await conn.execute(update(deliveries).where(deliveries.c.id == delivery_id)
                           .values(status="dead", attempts=3, last_error="HTTP 500"))


async def test_silences_are_audited_with_their_actor(make_hub: Any) -> None:
    hub = await make_hub(CONFIG)
    silence, created = await hub.silence({"service": "api"}, 3600, by="alice", reason="deploy", actor=ALICE)
    assert created
    again, created = await hub.silence({"service": "db"}, 60, by="slack", silence_id="fixed-id", actor=SLACK_BOB)
    _, repeat = await hub.silence({"service": "db"}, 60, by="slack", silence_id="fixed-id", actor=SLACK_BOB)
    assert created and not repeat  # the same request twice is one change, one entry
    assert await hub.unsilence(silence.id, actor=ALICE) is not None
    assert await hub.unsilence(silence.id, actor=ALICE) is None  # over already: nothing changes
    assert await hub.unsilence("no-such-silence", actor=ALICE) is None
    made, made_by_slack, ended = await entries(hub)
    assert made["action"] == "silence.create" and made["target"] == f"silence/{silence.id}"
    assert who(made) == ("user", "u-alice", "alice@example.com", "session", "192.0.2.7", "req-1")
    assert made["project"] == "default" and made["after"]["matchers"] == {"service": "api"}
    assert made["after"]["reason"] == "deploy" and made["before"] is None
    assert made_by_slack["target"] == "silence/fixed-id" and who(made_by_slack)[3] == "slack"
    assert ended["action"] == "silence.end" and ended["before"]["until"] == pytest.approx(silence.until)
    assert ended["after"]["until"] <= time.time()


async def test_a_silence_that_is_refused_leaves_no_entry(make_hub: Any) -> None:
    from tidings.silences import SilenceError

    hub = await make_hub(CONFIG)
    with pytest.raises(SilenceError):
        await hub.silence({"service": "api"}, 40 * 86400, by="alice", actor=ALICE)
    assert await entries(hub) == []


async def test_retry_is_audited_and_a_refused_retry_is_not(make_hub: Any) -> None:
    hub = await make_hub(CONFIG)
    _, first = await sent(hub, "one")
    _, delivered = await sent(hub, "two")
    await dead(hub, first)
    retried = await hub.retry(first, actor=ALICE)
    assert retried["status"] == "pending"
    with pytest.raises(RetryRefused):
        await hub.retry(delivered, actor=ALICE)  # delivered: 409 in the API, and no entry
    with pytest.raises(NotFound):
        await hub.retry("no-such-delivery", actor=ALICE)
    [entry] = await entries(hub)
    assert entry["action"] == "delivery.retry" and entry["target"] == f"delivery/{first}"
    assert entry["before"] == {"status": "dead", "attempts": 3, "last_error": "HTTP 500"}
    assert entry["after"] == {"status": "pending", "attempts": 0}
    assert entry["project"] == "default" and who(entry)[2] == "alice@example.com"


async def test_a_bulk_retry_is_one_entry_listing_the_deliveries(make_hub: Any) -> None:
    hub = await make_hub(CONFIG, dispatch=False)
    ids = []
    for title in ("a", "b", "c"):
        receipt = await hub.notify(Message(title), to=["inbox"])
        ids.append(receipt.deliveries[0].id)
        await dead(hub, ids[-1])
    assert await hub.retry_many(status="retrying", actor=ALICE) == []  # nothing matched: nothing changed
    assert await entries(hub) == []
    retried = await hub.retry_many(integration="inbox", actor=ALICE)
    assert sorted(retried) == sorted(ids)
    [entry] = await entries(hub)
    assert entry["action"] == "delivery.retry" and entry["target"] == "deliveries"
    assert entry["after"]["count"] == 3 and sorted(entry["after"]["ids"]) == sorted(ids)
    assert entry["after"]["filters"] == {"status": "dead", "integration": "inbox", "since_s": None}
    assert entry["after"]["ids_complete"] is True and entry["project"] == "default"


async def test_replay_is_audited_and_a_refused_replay_is_not(make_hub: Any) -> None:
    hub = await make_hub(CONFIG, dispatch=False)
    now = time.time()
    async with hub.require_store().write() as conn:
        for event_id, status in (("ev-done", "processed"), ("ev-busy", "processing")):
            await conn.execute(events.insert().values(
                id=event_id, integration="partner", kind="webhook", event_type="order.failed", delivery_key=event_id,
                received_at=now, headers={}, body=b"{}", status=status, attempts=1, next_attempt_at=now))
    replayed = await hub.replay("ev-done", actor=ALICE)
    assert replayed["status"] == "received"
    with pytest.raises(ReplayRefused):
        await hub.replay("ev-busy", actor=ALICE)
    with pytest.raises(NotFound):
        await hub.replay("ev-nope", actor=ALICE)
    [entry] = await entries(hub)
    assert (entry["action"], entry["target"], entry["project"]) == ("event.replay", "event/ev-done", "default")
    assert entry["before"]["status"] == "processed" and entry["after"] == {"status": "received", "attempts": 0}


async def test_enable_and_disable_are_audited_with_before_and_after(make_hub: Any) -> None:
    hub = await make_hub(CONFIG)
    await hub.set_enabled("inbox", False, actor=ALICE)
    await hub.set_enabled("inbox", True, actor=ALICE)
    with pytest.raises(Exception, match="unknown integration"):
        await hub.set_enabled("nope", False, actor=ALICE)
    disabled, enabled = await entries(hub)
    assert disabled["action"] == "integration.disable" and disabled["target"] == "integration/inbox"
    assert disabled["before"] == {"disabled": False, "reason": None} and disabled["after"] == {"disabled": True}
    assert enabled["action"] == "integration.enable"
    assert enabled["before"] == {"disabled": True, "reason": "disabled by hand"} and enabled["after"] == {"disabled": False}
    async with hub.require_store().read() as conn:
        assert (await conn.execute(select(integration_state.c.disabled))).scalar() is False


async def test_an_acknowledgement_is_audited_once(make_hub: Any) -> None:
    hub = await make_hub(CONFIG)
    message_id, _ = await sent(hub, "disk full")
    ack, created = await hub.ack(message_id, by="U0BOB (bob)", via="slack", integration="slack", actor=SLACK_BOB)
    assert created
    _, again = await hub.ack(message_id, by="U0CAROL", via="slack", actor=SLACK_BOB)
    assert not again
    with pytest.raises(NotFound):
        await hub.ack("no-such-message", by="x", via="api", actor=ALICE)
    [entry] = await entries(hub)
    assert entry["action"] == "ack" and entry["target"] == f"message/{message_id}" and entry["project"] == "default"
    assert who(entry)[:4] == ("user", "slack:U0BOB", "U0BOB (bob)", "slack") and entry["after"]["by"] == "U0BOB (bob)"


async def test_key_rotation_reencrypts_in_one_transaction_with_its_entry(store: Store) -> None:
    old = new_key()
    vault = Vault(store, [old])
    await vault.set("SLACK_TOKEN", "xoxb-secret-value-1")
    await vault.set("SMTP_PASSWORD", "hunter2-secret-value")
    fresh = new_key()
    assert await vault.rotate(fresh, actor=ALICE) == 2
    async with store.read() as conn:
        for (token,) in await conn.execute(select(secrets.c.ciphertext)):
            Fernet(fresh.encode()).decrypt(bytes(token))  # every secret now under the new key
    [entry] = [e for e in await read_entries(store) if e["action"] == "keys.rotate"]
    assert entry["project"] is None
    assert entry["after"] == {"re_encrypted": 2, "secrets": ["SLACK_TOKEN", "SMTP_PASSWORD"], "keys": 2}
    assert "secret-value" not in str(entry) and fresh not in str(entry) and old not in str(entry)
    # A secret the keys can't read stops the whole rotation: nothing re-encrypted, nothing audited.
    async with store.write() as conn:
        await conn.execute(secrets.insert().values(name="ALIEN", ciphertext=Fernet(new_key().encode()).encrypt(b"x"),
                                                   created_at=0.0, updated_at=0.0))
    before = await _ciphertexts(store)
    with pytest.raises(VaultError, match="ALIEN"):
        await Vault(store, [fresh, old]).rotate(new_key(), actor=ALICE)
    assert await _ciphertexts(store) == before
    assert len(await read_entries(store)) == 3, "two secret.set and the one keys.rotate"
    assert isinstance(await verify_store(store, None), Verified)


async def _ciphertexts(store: Store) -> dict[str, bytes]:
    async with store.read() as conn:
        return {r.name: bytes(r.ciphertext) for r in await conn.execute(select(secrets.c.name, secrets.c.ciphertext))}
