"""A running hub follows its vault secrets: a value rotated by another process reaches the next send
within seconds, without a restart, on SQLite and PostgreSQL; last use is recorded; what can't be
applied (a value the integration refuses, a deleted secret) leaves the working value in place."""

from __future__ import annotations

import base64
import os
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import structlog
from fake_slack import FakeSlack
from helpers import eventually, local_context
from sink import Received, Sink
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

import tidings.security.vault_watch
from tidings import Message
from tidings.audit import Actor
from tidings.errors import VaultError
from tidings.hub import Hub
from tidings.integrations import http
from tidings.integrations.slack import SlackNotifier, SlackSettings
from tidings.integrations.webhook import WebhookIntegration, WebhookSettings
from tidings.security import vault as vault_module
from tidings.security.vault import Vault, load_keys, new_key, write_key_file
from tidings.security.vault_watch import VaultWatch
from tidings.store.engine import Store

CLI = Actor("user", name="cli:ops", auth_method="cli")


def whsec() -> str:
    return "whsec_" + base64.b64encode(os.urandom(24)).decode()


@pytest.fixture
async def elsewhere(db_url: str, tmp_path: Path) -> AsyncIterator[Vault]:
    """The vault as another process sees it (`tidings secret rotate`): its own store and keys."""
    write_key_file(tmp_path / "tidings.key", [new_key()])
    store = Store(db_url)
    await store.migrate()
    yield Vault(store, load_keys(tmp_path))
    await store.close()


@pytest.fixture
def logged() -> Iterator[list[dict[str, Any]]]:
    with pytest.MonkeyPatch.context() as mp, structlog.testing.capture_logs() as captured:
        mp.setattr(tidings.security.vault_watch, "log", structlog.get_logger("tidings.vault"))
        yield captured


async def checked_by_hand(hub: Hub) -> VaultWatch:
    """The hub's watch, its periodic check stopped: the test runs each check itself."""
    watch = hub.vault_watch
    assert watch is not None
    await watch.stop()
    return watch


def signed_with(received: Received, secret: str) -> bool:
    headers = {k.lower(): v for k, v in received.headers.items()}
    try:
        Webhook(secret).verify(received.body, headers)
    except WebhookVerificationError:
        return False
    return True


def webhook(sink: Sink) -> dict[str, Any]:
    return {"integrations": {"ops": {"kind": "webhook", "url": sink.url + "/hook", "secret": "${vault:HOOK}"}},
            "default": {"to": ["ops"]}}


async def send(hub: Hub, sink: Sink, title: str) -> Received:
    receipt = await hub.notify(Message(title))
    assert (await hub.wait(receipt.id))["deliveries"][0]["status"] == "delivered"
    return next(r for r in reversed(sink.received) if r.json()["data"]["title"] == title)


async def test_a_rotated_signing_secret_signs_the_next_sends_within_seconds(
    elsewhere: Vault, make_hub: Any, sink: Sink
) -> None:
    old, new = whsec(), whsec()
    await elsewhere.set("HOOK", old, actor=CLI)
    hub = await make_hub(webhook(sink))
    assert signed_with(await send(hub, sink, "before"), old)

    await elsewhere.set("HOOK", new, actor=CLI, must_exist=True)
    rotated = time.monotonic()
    probes = 0

    async def uses_the_new_value() -> bool:
        nonlocal probes
        probes += 1
        return signed_with(await send(hub, sink, f"probe {probes}"), new)

    await eventually(uses_the_new_value, timeout=10, interval=0.1)
    assert time.monotonic() - rotated < 5, "picked up within seconds"
    for i in range(3):  # and from then on, only the new value
        received = await send(hub, sink, f"after {i}")
        assert signed_with(received, new) and not signed_with(received, old)
    assert hub.notifiers["ops"] is hub._integrations["ops"], "the same integration, reconfigured in place"


async def test_a_rotated_bearer_token_gets_a_new_session(elsewhere: Vault, make_hub: Any, slack: FakeSlack) -> None:
    old, new = slack.token, "xoxb-9999-8888-rotatedtokenvalue"
    await elsewhere.set("SLACK", old, actor=CLI)
    hub = await make_hub({"integrations": {"chat": {"kind": "slack", "token": "${vault:SLACK}", "channel": "#alerts",
                                                    "api_url": slack.api_url}}, "default": {"to": ["chat"]}})
    first = await hub.notify(Message("with the old token"))
    assert (await hub.wait(first.id))["deliveries"][0]["status"] == "delivered"

    slack.token = new  # Slack now expects the new token: the old session's header is refused
    await elsewhere.set("SLACK", new, actor=CLI, must_exist=True)

    async def accepted() -> bool:
        return (await hub.test("chat")).ok  # a test changes nothing, even when refused

    await eventually(accepted, timeout=10, interval=0.1)
    second = await hub.notify(Message("with the new token"))
    assert (await hub.wait(second.id))["deliveries"][0]["status"] == "delivered"
    auth = [c.headers.get("Authorization") for c in slack.calls_of("chat.postMessage")]
    assert auth == [f"Bearer {old}", f"Bearer {new}"]


async def test_last_use_is_recorded_at_start_and_after_sends(
    elsewhere: Vault, make_hub: Any, sink: Sink, monkeypatch: pytest.MonkeyPatch
) -> None:
    await elsewhere.set("HOOK", whsec(), actor=CLI)
    await elsewhere.set("UNUSED", whsec(), actor=CLI)
    started = time.time()
    hub = await make_hub(webhook(sink))
    at_start = (await elsewhere.info("HOOK"))["last_used_at"]  # type: ignore[index]
    assert at_start is not None and at_start >= started
    assert (await elsewhere.info("UNUSED"))["last_used_at"] is None

    monkeypatch.setattr(vault_module, "USE_EVERY", 0.0)  # not once a minute: at every check
    watch = await checked_by_hand(hub)
    await watch.check()
    assert (await elsewhere.info("HOOK"))["last_used_at"] == at_start, "no send, no use"
    await send(hub, sink, "uses it")
    await watch.check()
    assert (await elsewhere.info("HOOK"))["last_used_at"] > at_start  # type: ignore[index,operator]


async def test_a_new_key_alone_changes_nothing_and_a_value_under_it_is_read(
    elsewhere: Vault, make_hub: Any, sink: Sink, tmp_path: Path
) -> None:
    """`tidings keys rotate` in another process: the hub reads the key file again when it must."""
    old = whsec()
    await elsewhere.set("HOOK", old, actor=CLI)
    hub = await make_hub(webhook(sink))
    watch = await checked_by_hand(hub)
    await elsewhere.rotate(new_key())
    write_key_file(tmp_path / "tidings.key", elsewhere.keys or [])
    assert await watch.check() == [], "re-encrypted, same value: nothing to apply"
    new = whsec()
    await elsewhere.rotate(new_key())  # the hub has never seen this key
    write_key_file(tmp_path / "tidings.key", elsewhere.keys or [])
    await elsewhere.set("HOOK", new, actor=CLI)
    assert await watch.check() == ["ops"]
    assert signed_with(await send(hub, sink, "after"), new)


async def test_a_value_the_integration_refuses_leaves_the_old_one_working(
    elsewhere: Vault, make_hub: Any, sink: Sink, logged: list[dict[str, Any]]
) -> None:
    old = whsec()
    await elsewhere.set("HOOK", old, actor=CLI)
    hub = await make_hub(webhook(sink))
    watch = await checked_by_hand(hub)
    await elsewhere.set("HOOK", "not-a-standard-webhooks-secret", actor=CLI)  # what the CLI and API refuse
    assert await watch.check() == []
    assert await watch.check() == []
    failed = [e for e in logged if e["event"] == "vault.reload_failed"]
    assert len(failed) == 1 and failed[0]["integration"] == "ops", "said once, not every second"
    assert "not-a-standard" not in str(failed)
    assert signed_with(await send(hub, sink, "still"), old)


async def test_a_deleted_secret_leaves_the_held_value_until_the_next_start(
    elsewhere: Vault, make_config: Any, make_hub: Any, sink: Sink, tmp_path: Path, logged: list[dict[str, Any]]
) -> None:
    old = whsec()
    await elsewhere.set("HOOK", old, actor=CLI)
    hub = await make_hub(webhook(sink))
    watch = await checked_by_hand(hub)
    await elsewhere.delete("HOOK", actor=CLI)
    assert await watch.check() == [] and await watch.check() == []
    assert [e["secret"] for e in logged if e["event"] == "vault.secret_deleted"] == ["HOOK"]
    assert signed_with(await send(hub, sink, "held"), old)
    with pytest.raises(VaultError, match="no secret named 'HOOK'"):
        await Hub(make_config(webhook(sink)), config_dir=tmp_path).start()
    await elsewhere.set("HOOK", fresh := whsec(), actor=CLI)  # stored again: applied again
    assert await watch.check() == ["ops"]
    assert signed_with(await send(hub, sink, "again"), fresh)


async def test_a_hub_without_vault_references_does_not_watch(make_hub: Any, sink: Sink) -> None:
    hub = await make_hub({"integrations": {"ops": {"kind": "webhook", "url": sink.url}}})
    assert hub.vault_watch is not None and hub.vault_watch._task is None
    assert await hub.vault_watch.check() == []


# -- reconfiguring an integration in place ---------------------------------------------------------
async def test_reconfigure_derives_again_and_keeps_live_state(sink: Sink, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http, "RETIRE_GRACE", 0.0)
    old, new = whsec(), whsec()
    hook = WebhookIntegration("ops", WebhookSettings(kind="webhook", url=sink.url, secret=old, timeout=0.3),
                              local_context())
    session = await hook.session()
    hook.reconfigure(WebhookSettings(kind="webhook", url=sink.url, secret=new, timeout=0.3))
    when = datetime.now(UTC)
    assert hook._signer is not None and hook._signer.sign("m", when, "x") == Webhook(new).sign("m", when, "x")
    assert hook._session is None and not session.closed, "sends under way keep their session a while"
    replacement = await hook.session()
    assert replacement is not session

    async def closed() -> bool:
        return session.closed

    await eventually(closed, timeout=5)
    await hook.close()
    assert replacement.closed

    chat = SlackNotifier("chat", SlackSettings(kind="slack", token="xoxb-1-2-aaaaaaaaaaaa", channel="#ops"), local_context())
    locks = chat._locks
    chat.reconfigure(SlackSettings(kind="slack", token="xoxb-1-2-bbbbbbbbbbbb", channel="#ops"))
    assert chat._locks is locks, "a lock held by a send in progress stays"
    assert chat.session_headers()["Authorization"] == "Bearer xoxb-1-2-bbbbbbbbbbbb"


async def test_closing_closes_a_session_still_retiring(sink: Sink) -> None:
    hook = WebhookIntegration("ops", WebhookSettings(kind="webhook", url=sink.url, secret=whsec()), local_context())
    session: aiohttp.ClientSession = await hook.session()
    hook.reconfigure(WebhookSettings(kind="webhook", url=sink.url, secret=whsec()))
    assert not session.closed
    await hook.close()
    assert session.closed and not hook._retiring
    await hook.close()  # twice: nothing left to do


def test_a_refused_value_is_never_in_the_reason_logged() -> None:
    from pydantic import BaseModel, ValidationError, field_validator

    from tidings.security.vault_watch import _why

    class S(BaseModel):
        token: str

        @field_validator("token")
        @classmethod
        def _t(cls, v: str) -> str:
            raise ValueError("a bot token starts with 'xoxb-'")

    secret = "xoxe.xoxb-1-AInSemVHwQDYabcdefghijklmnopqrstuvwxyz_VhcyKRDg9KdS8_Th2gLdm2X"
    try:
        S(token=secret)
    except ValidationError as exc:
        why = _why(exc)
    assert why == "invalid settings: token: Value error, a bot token starts with 'xoxb-'"
    assert secret[:12] not in why and secret[-12:] not in why
