"""The keeper against a rotating token endpoint: refresh before expiry (and at start for expired
tokens), the rotated refresh token stored, a refused refresh -> needs re-auth + held + one notice,
failures for now retried later, and never two refreshes of one connection at once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers import eventually
from oauth.keeper_support import TokenEndpoint, connect, demo_config
from sqlalchemy import select

from tidings import Hub
from tidings.message import Message
from tidings.oauth import connections, keeper
from tidings.oauth.connections import TokenSet
from tidings.oauth.names import access_secret, refresh_secret
from tidings.security.vault import new_key, write_key_file
from tidings.store.tables import audit_log, deliveries, integration_state, messages

pytestmark = pytest.mark.usefixtures("demo")


@pytest.fixture
def config(endpoint: TokenEndpoint, tmp_path: Path) -> dict[str, Any]:
    write_key_file(tmp_path / "tidings.key", [new_key()])
    data = demo_config(endpoint, "chat")
    data["integrations"]["ops"] = {"kind": "inbox"}
    data["default"] = {"to": ["ops"]}
    data["routes"] = [{"match": {"labels": {"to": "chat"}}, "to": ["chat"]}]
    return data


@pytest.fixture
async def hub(make_hub: Callable[..., Any], config: dict[str, Any]) -> Hub:
    return await make_hub(config, dispatch=False, migrate=False)  # type: ignore[no-any-return]


async def _row(hub: Hub, name: str = "chat") -> dict[str, Any]:
    async with hub.require_store().read() as conn:
        row = await connections.get(conn, name)
    assert row is not None
    return row


async def _claim(hub: Hub, name: str = "chat") -> tuple[Any, Any]:
    from tidings.store.connection_tables import oauth_connections

    async with hub.require_store().read() as conn:
        r = (await conn.execute(select(oauth_connections.c.claimed_by, oauth_connections.c.claimed_until).where(
            oauth_connections.c.integration == name))).one()
    return r.claimed_by, r.claimed_until


async def _notices(conn: Any) -> int:
    return sum("oauth.needs_reauth" in str(tuple(m)) for m in await conn.execute(select(messages)))


def _due_soon(endpoint: TokenEndpoint, seconds: float = 120) -> TokenSet:
    grant = endpoint.grant()
    grant.expires_at = time.time() + seconds
    return grant


async def _connect_due(hub: Hub, endpoint: TokenEndpoint, seconds: float = 120) -> TokenSet:
    """A connection of an hour-long token with ``seconds`` left (inside the margin: due)."""
    grant = _due_soon(endpoint, seconds)
    await connect(hub, "chat", grant, now=time.time() + seconds - 3600)
    return grant


async def test_refreshes_before_expiry_and_stores_the_rotated_token(hub: Hub, endpoint: TokenEndpoint) -> None:
    old = _due_soon(endpoint)  # 120 s left of an hour: inside the 6-minute margin
    await connect(hub, "chat", old, now=time.time() - 3480)
    k = keeper.Keeper(hub)
    wait = await k.tick()
    assert endpoint.refreshes == 1
    assert await hub.vault.get(access_secret("chat")) == endpoint.issued[-1]  # type: ignore[union-attr]
    new_refresh = await hub.vault.get(refresh_secret("chat"))  # type: ignore[union-attr]
    assert new_refresh in endpoint.valid and new_refresh != old.refresh_token
    row = await _row(hub)
    assert row["health"] == "healthy" and row["failures"] == 0 and row["version"] == 2
    assert row["expires_at"] > time.time() + 3000
    assert await _claim(hub) == (None, None)
    assert 3000 < wait <= k.poll or wait == k.poll  # nothing due now
    # Not due: nothing happens.
    assert await keeper.refresh_one(hub, "chat", "someone") == "not_due"
    assert endpoint.refreshes == 1
    async with hub.require_store().read() as conn:
        entries = [r.action for r in await conn.execute(select(audit_log.c.action))]
        text = str([tuple(r) for r in await conn.execute(select(audit_log))])
    assert "oauth.refresh" in entries
    for secret in [old.access_token, old.refresh_token, new_refresh, *endpoint.issued]:
        assert secret not in text


def test_margin_is_five_minutes_or_a_tenth_of_the_lifetime() -> None:
    class Row:
        status, has_refresh, connected_at = "healthy", 1, 0.0

    row = Row()
    row.refreshed_at, row.expires_at = 0.0, 3600.0  # type: ignore[attr-defined]
    assert keeper.due_at(row) == 3600 - 360
    row.expires_at = 1200.0  # type: ignore[attr-defined]
    assert keeper.due_at(row) == 1200 - 300
    row.expires_at = 60.0  # shorter than the margin: at half its lifetime, never in a loop  # type: ignore[attr-defined]
    assert keeper.due_at(row) == 30
    row.has_refresh = 0  # type: ignore[attr-defined]
    assert keeper.due_at(row) is None


async def test_an_expired_token_is_refreshed_at_start(make_hub: Callable[..., Any], config: dict[str, Any],
                                                       endpoint: TokenEndpoint) -> None:
    first = await make_hub(config, dispatch=False, migrate=False)
    await connect(first, "chat", _due_soon(endpoint, -600), now=time.time() - 4200)
    await first.stop()
    running = await make_hub(config, migrate=False)  # dispatching: runs the keeper
    assert running.keeper is not None

    async def refreshed() -> bool:
        return (await _row(running))["expires_at"] > time.time()

    await eventually(refreshed)
    assert endpoint.refreshes == 1
    # The running integration sends with the new token (the vault watch brings it).

    async def applied() -> bool:
        token = running._integrations["chat"].settings.token
        return token is not None and token.get_secret_value() == endpoint.issued[-1]

    await eventually(applied)
    receipt = await running.notify(Message("hi", labels={"to": "chat"}))
    await running.wait(receipt.id)
    from oauth.keeper_support import DemoNotifier

    assert DemoNotifier.sent_with[-1] == endpoint.issued[-1]


async def test_a_refused_refresh_needs_reauth_holds_and_tells_the_owners_once(hub: Hub, endpoint: TokenEndpoint) -> None:
    grant = await _connect_due(hub, endpoint)
    endpoint.valid.discard(grant.refresh_token)  # revoked at the provider
    waiting = await hub.notify(Message("queued before", labels={"to": "chat"}))
    assert await keeper.refresh_one(hub, "chat", "w1") == "refused"
    row = await _row(hub)
    assert row["health"] == "needs_reauth" and "invalid_refresh_token" in row["last_error"]
    assert row["notified_at"] is not None
    async with hub.require_store().read() as conn:
        state = (await conn.execute(select(integration_state).where(integration_state.c.name == "chat"))).one()
        held = (await conn.execute(select(deliveries.c.status, deliveries.c.last_error).where(
            deliveries.c.message_id == waiting.id))).one()
        notices = [str(tuple(m)) for m in await conn.execute(select(messages))]
    assert state.disabled and state.reason.startswith("oauth connection needs re-auth (")
    assert held.status == "held" and "needs re-auth" in held.last_error
    told = [m for m in notices if "oauth.needs_reauth" in m]
    assert len(told) == 1 and "https://tidings.example.com/oauth/chat/start" in told[0]
    # Never retried: the keeper leaves it alone, a manual refresh refuses, no second notice.
    assert await keeper.Keeper(hub).tick() >= 0
    assert await keeper.refresh_one(hub, "chat", "w2", force=True) == "busy"
    with pytest.raises(keeper.RefreshRefused, match="needs re-auth"):
        await keeper.refresh_now(hub, "chat")
    assert endpoint.refreshes == 1
    async with hub.require_store().read() as conn:
        assert await _notices(conn) == 1
    # Connecting again starts a new incident: the next refusal tells them again.
    grant = await _connect_due(hub, endpoint)
    assert (await _row(hub))["notified_at"] is None
    endpoint.valid.discard(grant.refresh_token)
    assert await keeper.refresh_one(hub, "chat", "w1") == "refused"
    async with hub.require_store().read() as conn:
        assert await _notices(conn) == 2


@pytest.mark.parametrize("answer", [
    (429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "120"}),
    (500, {"error": "server_error"}, {}),
    (503, {}, {}),
], ids=["429", "500", "503"])
async def test_a_failure_for_now_is_retried_later(hub: Hub, endpoint: TokenEndpoint,
                                                  answer: tuple[int, dict[str, Any], dict[str, str]]) -> None:
    await _connect_due(hub, endpoint)
    endpoint.script.append(answer)
    began = time.time()
    assert await keeper.refresh_one(hub, "chat", "w1") == "failed"
    row = await _row(hub)
    assert row["failures"] == 1 and row["status"] == "healthy" and f"HTTP {answer[0]}" in row["last_error"]
    owner, until = await _claim(hub)
    assert owner == keeper.BACKOFF and until >= began + (120 if answer[0] == 429 else keeper.RETRY_FIRST)
    assert await keeper.refresh_one(hub, "chat", "w2") == "busy"  # waits out the backoff
    assert endpoint.refreshes == 0
    after = await keeper.refresh_now(hub, "chat")  # by hand: now
    assert after["failures"] == 0 and after["last_error"] is None and endpoint.refreshes == 1


async def test_a_timeout_is_retried_and_failing_refreshes_show_as_expiring(
        hub: Hub, endpoint: TokenEndpoint, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(keeper, "REQUEST_TIMEOUT", 0.3)
    await _connect_due(hub, endpoint, -1)  # expired already
    for n in range(1, 4):
        endpoint.script.append("hang")
        assert await keeper.refresh_one(hub, "chat", "w1", force=True) == "failed"
        row = await _row(hub)
        assert row["failures"] == n and "unreachable" in row["last_error"]
        assert row["health"] == "expiring" and row["access_expired"]
    assert endpoint.refreshes == 0
    assert (await keeper.refresh_now(hub, "chat"))["health"] == "healthy"


async def test_a_misconfigured_app_is_retried_not_reauthed(hub: Hub, endpoint: TokenEndpoint) -> None:
    await _connect_due(hub, endpoint)
    endpoint.client_secret = "changed"  # the app's secret was rotated at the provider
    assert await keeper.refresh_one(hub, "chat", "w1") == "failed"
    row = await _row(hub)
    assert row["status"] == "healthy" and "invalid_client" in row["last_error"]


async def _race(hubs: list[Hub], endpoint: TokenEndpoint, rounds: int) -> None:
    for n in range(rounds):
        before = endpoint.refreshes
        outcomes = await asyncio.gather(*(keeper.refresh_one(h, "chat", f"w{i}") for i, h in enumerate(hubs)),
                                        *(keeper.Keeper(h).tick() for h in hubs))
        assert endpoint.refreshes == before + 1, outcomes
        assert outcomes[: len(hubs)].count("refreshed") <= 1
        # Due again (as time passes): the next round races on the rotated token.
        async with hubs[0].vault.transaction() as conn:  # type: ignore[union-attr]
            await _expire(conn, n)
    assert endpoint.max_active == 1 and endpoint.reused == 0
    assert (await _row(hubs[0]))["health"] == "healthy"
    assert await hubs[1].vault.get(refresh_secret("chat")) in endpoint.valid  # type: ignore[union-attr]


async def _expire(conn: Any, _: int) -> None:
    from sqlalchemy import update

    from tidings.store.connection_tables import oauth_connections

    await conn.execute(update(oauth_connections).values(expires_at=time.time() + 60, refreshed_at=time.time() - 3540))


async def test_two_hubs_never_refresh_one_connection_at_once(make_hub: Callable[..., Any], config: dict[str, Any],
                                                             endpoint: TokenEndpoint) -> None:
    one = await make_hub(config, dispatch=False, migrate=False)
    two = await make_hub(config, dispatch=False, migrate=False)
    await _connect_due(one, endpoint)
    endpoint.delay = 0.2  # each refresh stays in flight while the other hub tries
    await _race([one, two], endpoint, rounds=3)


async def test_refresh_now_of_a_connection_another_worker_refreshes_is_refused(hub: Hub,
                                                                              endpoint: TokenEndpoint) -> None:
    await _connect_due(hub, endpoint)
    endpoint.delay = 0.5
    first = asyncio.create_task(keeper.refresh_one(hub, "chat", "w1"))
    await endpoint.arrived.wait()
    with pytest.raises(keeper.RefreshRefused, match="another worker"):
        await keeper.refresh_now(hub, "chat")
    assert await first == "refreshed"
    assert endpoint.max_active == 1 and endpoint.reused == 0


async def test_refresh_now_of_what_is_not_connected(hub: Hub) -> None:
    from tidings.errors import NotFound

    with pytest.raises(NotFound, match="not connected"):
        await keeper.refresh_now(hub, "chat")
    await connect(hub, "chat", TokenSet(access_token="a-forever"))  # GitHub OAuth apps: no expiry, no refresh
    with pytest.raises(keeper.RefreshRefused, match="no refresh token"):
        await keeper.refresh_now(hub, "chat")
