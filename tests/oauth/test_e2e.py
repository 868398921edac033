"""OAuth connections end to end with the real integration kinds (issue 15): a served, dispatching hub,
a browser through the flow against the authorization server stand-in (tests/peers/oauth.py), and the
APIs' stand-ins taking only the tokens it issued: Slack (rotation, revocation, re-connect), Jira
through Atlassian 3LO, GitHub App user tokens, Google Calendar."""

from __future__ import annotations

from typing import Any

import pytest
from fake_slack import FakeSlack
from helpers import eventually
from oauth.e2e_support import OWNER, Issued, World

from tidings import Message

pytestmark = pytest.mark.slow


async def delivery(hub: Any, message_id: str) -> dict[str, Any]:
    return (await hub.message(message_id))["deliveries"][0]  # type: ignore[no-any-return]


async def reaches(hub: Any, message_id: str, status: str, timeout: float = 15.0) -> dict[str, Any]:
    async def there() -> bool:
        return (await delivery(hub, message_id))["status"] == status

    await eventually(there, timeout=timeout)
    return await delivery(hub, message_id)


def bearers(slack: FakeSlack) -> list[str]:
    return [c.headers.get("Authorization", "")[7:] for c in slack.calls_of("chat.postMessage")]


async def test_slack_connect_rotate_revoke_and_reconnect(make_e2e: Any, slack: FakeSlack,
                                                         capfd: pytest.CaptureFixture[str]) -> None:
    w: World = await make_e2e({
        "chat": {"kind": "slack", "oauth": True, "channel": "#alerts", "api_url": slack.api_url,
                 "retry": {"base": 0.05, "cap": 0.2, "max_attempts": 100}},
        "ops": {"kind": "inbox"},
    }, ("slack",), routes=[{"match": {"labels": {"event_type": "oauth.needs_reauth"}, "source": "tidings"},
                            "to": ["ops"]}], default={"to": ["chat"]})
    slack.token = "never-this-one"
    slack.accept = Issued(w.auth, "slack")
    w.auth.access_ttl["slack"] = 4.0
    early = await w.hub.notify(Message("before connecting"))
    held = await reaches(w.hub, early.id, "held")
    assert "not connected" in held["last_error"]

    page = await w.connect("chat")
    assert page.status_code == 200 and "Connected chat as Tidings Test" in page.text, page.text
    await reaches(w.hub, early.id, "delivered")
    [first] = w.auth.live("slack")
    assert bearers(slack) == [first], "delivered with the token the authorization server issued"

    # rotation: the keeper refreshes before the 4 s token expires; the next message goes with the new one
    await eventually(lambda: _true(w.auth.token_requests["slack refresh_token"] >= 1), timeout=15)
    await eventually(lambda: _true(first not in w.auth.live("slack")), timeout=15)
    [second] = w.auth.live("slack")
    after = await w.hub.notify(Message("after the refresh"))
    await reaches(w.hub, after.id, "delivered")
    assert bearers(slack)[-1] in w.auth.tokens and bearers(slack)[-1] != first
    listed = (await w.cli("connections", "--json")).ok().json
    [row] = [c for c in listed if c["integration"] == "chat"]
    assert row["health"] == "healthy" and row["account"] == "Tidings Test", row

    # the refresh token is revoked: the next refresh is refused → needs re-auth, held, the owners told once
    for t in w.auth.tokens.values():
        if t.provider == "slack" and t.kind == "refresh":
            w.auth._revoke(t)
    refused_before = w.auth.token_requests["slack refresh_token"]
    await eventually(lambda: _true(w.auth.token_requests["slack refresh_token"] > refused_before), timeout=15)

    async def needs_reauth() -> bool:
        return (await w.connection("chat"))["health"] == "needs_reauth"

    await eventually(needs_reauth, timeout=15)
    w.auth.advance(3600)  # the last access token expires too: Slack refuses it
    late = await w.hub.notify(Message("while it needs re-auth"))
    await eventually(lambda: _held_or_pending(w.hub, late.id), timeout=15)
    [notice] = await _until_notices(w, 1)
    assert f"{'https://tidings.example.com'}/oauth/chat/start" in notice and OWNER in notice
    assert len(await w.notices()) == 1

    w.auth.advance(-3600)
    page = await w.connect("chat", start=f"https://tidings.example.com/oauth/chat/start")
    assert page.status_code == 200 and "enabled again" in page.text, page.text
    await reaches(w.hub, late.id, "delivered")
    assert bearers(slack)[-1] in w.auth.live("slack")
    assert (await w.connection("chat"))["health"] == "healthy"
    assert len(await w.notices()) == 1, "told once"
    no_token_in(capfd.readouterr(), w)


def no_token_in(captured: Any, w: World) -> None:
    """No token the authorization server issued (nor a long piece of one) in the process's output."""
    text = captured.out + captured.err
    assert not [t for t in w.auth.tokens if t[-16:] in text or t[:24] in text]


async def _true(value: bool) -> bool:
    return value


async def _held_or_pending(hub: Any, message_id: str) -> bool:
    return (await delivery(hub, message_id))["status"] in ("held", "pending")


async def _until_notices(w: World, n: int) -> list[str]:
    async def enough() -> bool:
        return len(await w.notices()) >= n

    await eventually(enough, timeout=15)
    return await w.notices()
