"""Callbacks that must not connect anything: forged, replayed, expired, of another integration, the
person declined, a code or verifier the provider refuses, a token endpoint that fails. Each answers
a clear 400 page, is audited (``oauth.callback_refused`` with a reason word, never the code or the
state), and stores nothing; a state is never good twice."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from flow_support import World, query, with_query
from sqlalchemy import select, update

from tidings.oauth import connections
from tidings.oauth.flow import state_hash
from tidings.security.vault import VaultError
from tidings.store.connection_tables import oauth_states
from tidings.store.tables import audit_log

pytestmark = pytest.mark.usefixtures("db")


async def refusals(world: World) -> list[str]:
    async with world.hub.store.read() as conn:
        rows = list(await conn.execute(select(audit_log).where(audit_log.c.action == "oauth.callback_refused")
                                       .order_by(audit_log.c.seq)))
    for r in rows:
        assert r.outcome == "denied"
        assert set(r.after) == {"reason"}
    return [r.after["reason"] for r in rows]


async def nothing_stored(world: World, name: str) -> None:
    async with world.hub.store.read() as conn:
        assert await connections.get(conn, name) is None
    with pytest.raises(VaultError):
        await world.vault.get(f"oauth/{name}/access")


async def change_state(world: World, url: str, **values: Any) -> None:
    async with world.hub.store.write() as conn:
        await conn.execute(update(oauth_states).where(oauth_states.c.state_hash == state_hash(query(url)["state"]))
                           .values(**values))


def refused(page: Any, words: str) -> None:
    assert page.status_code == 400, page.text
    assert "was not connected" in page.text and words in page.text, page.text


async def test_a_forged_state_is_refused(make_world: Any) -> None:
    world: World = await make_world()
    back = await world.authorize("github-probe")
    refused(await world.browse(with_query(back, state="forged-by-someone")), "not one tidings made")
    refused(await world.browse(with_query(back, state=None)), "no state")
    assert await refusals(world) == ["state_unknown", "state_missing"]
    await nothing_stored(world, "github-probe")
    assert world.auth.token_requests["github authorization_code"] == 0


async def test_a_replayed_callback_is_refused_and_changes_nothing(make_world: Any) -> None:
    world: World = await make_world()
    back = await world.authorize("slack-probe")
    assert (await world.browse(back)).status_code == 200
    access = await world.vault.get("oauth/slack-probe/access")
    refused(await world.browse(back), "used already")
    assert await refusals(world) == ["state_used"]
    assert await world.vault.get("oauth/slack-probe/access") == access
    assert world.auth.token_requests["slack authorization_code"] == 1


async def test_two_callbacks_at_once_one_wins(make_world: Any) -> None:
    world: World = await make_world()
    back = await world.authorize("atlassian-probe")
    pages = await asyncio.gather(world.browse(back), world.browse(back))
    assert sorted(p.status_code for p in pages) == [200, 400]
    assert await refusals(world) == ["state_used"]
    assert world.auth.token_requests["atlassian authorization_code"] == 1
    async with world.hub.store.read() as conn:
        row = await connections.get(conn, "atlassian-probe")
    assert row is not None and row["version"] == 1


async def test_a_reused_code_is_refused_and_the_provider_revokes_what_it_gave(make_world: Any) -> None:
    world: World = await make_world()
    first = await world.authorize("microsoft-probe")
    assert (await world.browse(first)).status_code == 200
    access = await world.vault.get("oauth/microsoft-probe/access")
    second = await world.authorize("microsoft-probe")  # a fresh state, with the first code
    refused(await world.browse(with_query(second, code=query(first)["code"])), "already redeemed")
    assert await refusals(world) == ["exchange_refused"]
    assert not world.auth.valid(access)  # RFC 6749 §4.1.2: the provider revoked the code's tokens
    assert world.auth.revoked["microsoft access"] == 1


async def test_a_tampered_verifier_is_refused_by_the_provider(make_world: Any) -> None:
    world: World = await make_world()
    back = await world.authorize("google-probe")
    await change_state(world, back, verifier=world.vault.seal("y" * 64))
    refused(await world.browse(back), "refused the code")
    assert await refusals(world) == ["exchange_refused"]
    await nothing_stored(world, "google-probe")
    assert world.auth.token_requests["google authorization_code"] == 1


async def test_an_expired_state_is_refused(make_world: Any) -> None:
    world: World = await make_world()
    back = await world.authorize("github-probe")
    await change_state(world, back, expires_at=time.time() - 1)
    refused(await world.browse(back), "expired")
    assert await refusals(world) == ["state_expired"]
    await nothing_stored(world, "github-probe")
    assert world.auth.token_requests["github authorization_code"] == 0


async def test_the_person_declines(make_world: Any) -> None:
    world: World = await make_world()
    world.auth.deny = True
    back = await world.authorize("slack-probe")
    assert query(back)["error"] == "access_denied" and "code" not in query(back)
    refused(await world.browse(back), "you declined")
    refused(await world.browse(back), "used already")  # the flow is over either way
    assert await refusals(world) == ["provider_error", "state_used"]
    await nothing_stored(world, "slack-probe")


async def test_a_state_made_for_another_integration_is_refused(make_world: Any) -> None:
    world: World = await make_world()
    back = await world.authorize("slack-probe")
    elsewhere = back.replace("/oauth/slack-probe/", "/oauth/github-probe/")
    refused(await world.browse(elsewhere), "another integration")
    refused(await world.browse(back), "used already")  # taken by the attempt: no second try with it
    assert await refusals(world) == ["wrong_integration", "state_used"]
    await nothing_stored(world, "slack-probe")
    await nothing_stored(world, "github-probe")
    async with world.hub.store.read() as conn:
        entries = [r.target for r in await conn.execute(select(audit_log.c.target).where(
            audit_log.c.action == "oauth.callback_refused"))]
    assert entries == ["integration/github-probe", "integration/slack-probe"]


@pytest.mark.parametrize(("status", "delay", "words"), [(500, 0.0, "HTTP 500"), (429, 0.0, "HTTP 429"),
                                                        (200, 5.0, "unreachable")])
async def test_a_token_endpoint_failing_during_the_callback(make_world: Any, status: int, delay: float,
                                                            words: str) -> None:
    world: World = await make_world(github={"timeout": "1s"})
    back = await world.authorize("github-probe")
    world.auth.fail("token", status, retry_after=30 if status == 429 else None, delay=delay)
    page = await world.browse(back)
    refused(page, words)
    assert "start again" in page.text
    refused(await world.browse(back), "used already")
    assert await refusals(world) == ["token_endpoint_failed", "state_used"]
    await nothing_stored(world, "github-probe")


async def test_no_secret_in_a_refusal(make_world: Any, capsys: pytest.CaptureFixture[str]) -> None:
    world: World = await make_world()
    first = await world.authorize("atlassian-probe")
    assert (await world.browse(first)).status_code == 200
    second = await world.authorize("atlassian-probe")
    forged = with_query(second, code=query(first)["code"])
    page = await world.browse(forged)
    refused(page, "refused the code")
    async with world.hub.store.read() as conn:
        audit = json.dumps([dict(r._mapping) for r in await conn.execute(select(audit_log))], default=str)
    shown = page.text + audit + "".join(capsys.readouterr())
    for secret in (query(first)["code"], query(first)["state"], query(second)["state"]):
        assert secret not in shown


async def test_states_long_expired_are_cleaned_up_by_the_next_start(make_world: Any) -> None:
    world: World = await make_world()
    old = await world.authorize("github-probe")
    await change_state(world, old, expires_at=time.time() - 2 * 86400)
    await world.authorize("github-probe")
    async with world.hub.store.read() as conn:
        left = list(await conn.execute(select(oauth_states.c.state_hash)))
    assert [r.state_hash for r in left] != [] and state_hash(query(old)["state"]) not in {r.state_hash for r in left}
    refused(await world.browse(old), "not one tidings made")


async def test_a_failure_while_storing_answers_a_page_and_stores_nothing(make_world: Any,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from tidings.oauth import flow

    world: World = await make_world()
    back = await world.authorize("slack-probe")
    real = flow.connections.store_tokens

    async def broken(*args: Any, **kwargs: Any) -> Any:
        await real(*args, **kwargs)
        raise RuntimeError("the disk is full")

    monkeypatch.setattr(flow.connections, "store_tokens", broken)
    page = await world.browse(back)
    assert page.status_code == 503 and "try again" in page.text and "disk" not in page.text
    await nothing_stored(world, "slack-probe")  # the transaction that stored them was rolled back
