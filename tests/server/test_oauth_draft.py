"""The config API's test of draft settings with ``oauth: true``: before the connection exists it
says "not connected" (no 422, no 500, nothing sent); once connected it tests with the connection's
token; nothing in the answer shows a token."""

from __future__ import annotations

from typing import Any

from connection_support import store
from fake_slack import FakeSlack
from test_config_api import ALPHA, as_, start, vault_key_fixture  # noqa: F401  (a fixture)


async def test_a_draft_with_oauth_says_not_connected_then_tests_with_the_connection(
    make_api: Any, slack: FakeSlack, vault_key: None
) -> None:
    api, people = await start(make_api)
    draft = {"name": "chat", "kind": "slack",
             "settings": {"oauth": True, "channel": "#alerts", "api_url": slack.api_url}}
    r = await api.post(f"{ALPHA}/integrations/test", json=draft, **as_(people["member"]))
    assert r.status_code == 200, r.text
    assert r.json()["ok"] is False and r.json()["status"] == "permanent"
    assert r.json()["error"] == "not connected: open /oauth/chat/start or run `tidings connect chat`"
    assert slack.calls == [], "nothing sent without a token"

    await store(api.hub, "chat", "slack", slack.token, project="alpha")
    r = await api.post(f"{ALPHA}/integrations/test", json=draft, **as_(people["member"]))
    assert r.status_code == 200 and r.json()["ok"] is True and r.json()["remote_id"] == "Acme/tidings", r.text
    assert [c.headers["Authorization"] for c in slack.calls_of("auth.test")] == [f"Bearer {slack.token}"]
    assert slack.token not in r.text
