"""Slack with ``oauth: true``: the bot token comes from the integration's connection (written here
straight through ``oauth.connections.store_tokens``), reaches the running hub within a second, and
a refresh is used by the next send without a restart; before the connection exists, deliveries are
held (nothing lost) and go once it is made and the integration enabled; Slack's ``token_expired``
is retried with a connection (its refresher mends it) but still disables a pasted token."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from connection_support import holds, store, with_key
from fake_slack import FakeSlack, Scripted
from helpers import eventually

import tidings.integrations.slack as slack_module
from tidings import Message
from tidings.config import parse_config
from tidings.errors import ConfigError
from tidings.integrations.base import OutcomeStatus
from tidings.integrations.slack import SlackNotifier, classify_error
from tidings.security import credentials

NEW = "xoxe.xoxb-1-rotatedAAAA-BBBBCCCC"


def connected_bot(slack: FakeSlack, **extra: Any) -> dict[str, Any]:
    chat = {"kind": "slack", "oauth": True, "channel": "#alerts", "api_url": slack.api_url,
            "retry": {"base": 0.05, "cap": 0.2, "max_attempts": 100}, "breaker": {"failures": 1000}, **extra}
    return {"integrations": {"chat": chat}, "default": {"to": ["chat"]}}


async def delivery(hub: Any, message_id: str) -> dict[str, Any]:
    return (await hub.message(message_id))["deliveries"][0]  # type: ignore[no-any-return]


async def status_is(hub: Any, message_id: str, status: str, timeout: float = 10.0) -> dict[str, Any]:
    async def reached() -> bool:
        return (await delivery(hub, message_id))["status"] == status

    await eventually(reached, timeout=timeout)
    return await delivery(hub, message_id)


def auth_of(slack: FakeSlack, method: str = "chat.postMessage") -> list[str]:
    return [c.headers.get("Authorization", "") for c in slack.calls_of(method)]


async def test_sends_with_the_connections_token_and_a_refresh_without_restart(
    make_hub: Any, slack: FakeSlack, tmp_path: Path
) -> None:
    with_key(tmp_path)
    hub = await make_hub(connected_bot(slack))
    notifier = hub.notifiers["chat"]
    await store(hub, "chat", "slack", slack.token)
    await holds(hub, "chat", slack.token)
    first = await hub.notify(Message("with the connection's token"))
    assert (await status_is(hub, first.id, "delivered"))["attempts"] == 1
    assert auth_of(slack) == [f"Bearer {slack.token}"]

    await store(hub, "chat", "slack", NEW, refresh=True)  # the refresher's new (rotating) token
    await holds(hub, "chat", NEW)
    slack.token = NEW  # Slack now takes only the new one
    second = await hub.notify(Message("after the refresh"))
    assert (await status_is(hub, second.id, "delivered"))["attempts"] == 1
    assert auth_of(slack)[-1] == f"Bearer {NEW}", "the next send used the refreshed token"
    assert hub.notifiers["chat"] is notifier, "the same integration, reconfigured in place: no restart"
    assert not any(i["health"] == "disabled" for i in await hub.integrations())


async def test_not_connected_holds_deliveries_until_connected_and_enabled(
    make_hub: Any, slack: FakeSlack, tmp_path: Path
) -> None:
    with_key(tmp_path)
    hub = await make_hub(connected_bot(slack))
    assert hub.notifiers["chat"].settings.token is None, "built before the connection: no token yet"
    first = await hub.notify(Message("before the connection"))
    held = await status_is(hub, first.id, "held")
    assert "not connected: open /oauth/chat/start or run `tidings connect chat`" in held["last_error"]
    second = await hub.notify(Message("also before"))
    assert (await delivery(hub, second.id))["status"] in ("pending", "held"), "waits for the integration"
    assert slack.calls_of("chat.postMessage") == [], "nothing reached Slack without a token"

    await store(hub, "chat", "slack", slack.token)
    await holds(hub, "chat", slack.token)
    await hub.set_enabled("chat", True)  # what a successful connect does (the callback)
    for receipt in (first, second):
        await status_is(hub, receipt.id, "delivered")
    assert set(auth_of(slack)) == {f"Bearer {slack.token}"}
    assert len(slack.messages) == 2, "both delivered, nothing lost"


async def test_token_expired_is_retried_with_a_connection(
    make_hub: Any, slack: FakeSlack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(slack_module, "EXPIRED_RETRY", 0.05)
    with_key(tmp_path)
    hub = await make_hub(connected_bot(slack))
    await store(hub, "chat", "slack", slack.token)
    await holds(hub, "chat", slack.token)
    slack.script("chat.postMessage", Scripted(error="token_expired"))
    receipt = await hub.notify(Message("while the token expires"))
    d = await status_is(hub, receipt.id, "delivered")
    assert d["attempts"] == 2
    assert {i["name"]: i for i in await hub.integrations()}["chat"]["health"] != "disabled"


def test_token_expired_disables_a_pasted_token_and_is_retried_with_a_connection() -> None:
    pasted = classify_error({"ok": False, "error": "token_expired"}, {})
    assert pasted.status is OutcomeStatus.PERMANENT and pasted.disable
    connected = classify_error({"ok": False, "error": "token_expired"}, {}, connection=True)
    assert connected.status is OutcomeStatus.RETRY and not connected.disable
    assert connected.retry_after == slack_module.EXPIRED_RETRY
    revoked = classify_error({"ok": False, "error": "token_revoked"}, {}, connection=True)
    assert revoked.disable and revoked.error is not None and "connect it again" in revoked.error
    assert revoked.status is OutcomeStatus.RETRY  # held with the others until connected again, not dead
    pasted_revoked = classify_error({"ok": False, "error": "token_revoked"}, {})
    assert pasted_revoked.status is OutcomeStatus.PERMANENT and pasted_revoked.disable


async def test_a_revoked_connection_holds_the_message_until_connected_again(
    make_hub: Any, slack: FakeSlack, tmp_path: Path
) -> None:
    with_key(tmp_path)
    hub = await make_hub(connected_bot(slack))
    await store(hub, "chat", "slack", slack.token)
    await holds(hub, "chat", slack.token)
    slack.script("chat.postMessage", Scripted(error="invalid_auth"))
    receipt = await hub.notify(Message("sent as the token is revoked"))
    d = await status_is(hub, receipt.id, "held")
    assert "invalid_auth" in d["last_error"] and "connect it again" in d["last_error"]
    slack.token = NEW  # the new grant's token is the one Slack takes
    await store(hub, "chat", "slack", NEW)  # connected again
    await holds(hub, "chat", NEW)
    await hub.set_enabled("chat", True)
    assert (await status_is(hub, receipt.id, "delivered"))["attempts"] == 2


def chat(**settings: Any) -> Any:
    return parse_config({"integrations": {"chat": {"kind": "slack", **settings}}}).integrations["chat"]


def test_oauth_is_bot_mode_without_a_pasted_token() -> None:
    s = chat(oauth=True, channel="#alerts")
    assert s.bot and not s.connected and s.token is None
    assert SlackNotifier.can_send(s)
    assert chat(token="xoxe.xoxb-1-abc-DEF", channel="#alerts").connected, "a rotating bot token is accepted"
    with pytest.raises(ConfigError, match="channel: required in bot mode"):
        chat(oauth=True)
    with pytest.raises(ConfigError, match="exactly one of token"):
        chat(oauth=True, webhook_url="https://hooks.slack.com/services/T0/B0/abcdefghijklmnopqrstuvwx")
    with pytest.raises(ConfigError, match="xoxe.xoxb-"):
        chat(token="xoxp-user-token", channel="#alerts")


async def test_without_a_connection_the_test_and_commands_say_not_connected(slack: FakeSlack) -> None:
    from helpers import local_context

    notifier = SlackNotifier("chat", chat(oauth=True, channel="#alerts", api_url=slack.api_url), local_context())
    try:
        outcome = (await notifier.test()).as_test()
    finally:
        await notifier.close()
    assert outcome.error is not None and outcome.error.startswith("not connected: open /oauth/chat/start")
    assert not outcome.ok and slack.calls == []


def test_the_connection_secret_is_referenced_by_its_integration() -> None:
    config = parse_config({"integrations": {"chat": {"kind": "slack", "oauth": True, "channel": "#a"}}})
    assert credentials.references(config) == {"oauth/chat/access": ["chat"]}


async def test_a_disconnect_puts_the_integration_back_to_not_connected(
    make_hub: Any, slack: FakeSlack, tmp_path: Path
) -> None:
    from tidings.oauth import connections

    with_key(tmp_path)
    hub = await make_hub(connected_bot(slack))
    await store(hub, "chat", "slack", slack.token)
    await holds(hub, "chat", slack.token)
    async with hub.vault.transaction() as conn:
        assert await connections.disconnect(hub.vault, conn, "chat") is not None

    async def forgotten() -> bool:
        return hub._integrations["chat"].settings.token is None

    await eventually(forgotten, timeout=5)
    receipt = await hub.notify(Message("after the disconnect"))
    held = await status_is(hub, receipt.id, "held")
    assert held["last_error"].startswith("held: integration disabled by its peer (not connected: open /oauth/chat/start")
    assert slack.calls_of("chat.postMessage") == [], "the revoked token is not used"
