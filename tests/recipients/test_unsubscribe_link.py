"""The one-click unsubscribe link (RFC 8058) served at /l/unsubscribe/{token}: a valid POST turns
the preference off (row + audit entry, as the recipient through the link), a replay changes
nothing, GET only asks; forged, altered, swapped, expired, ack and required-topic links are
refused with a page, never a 500."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select

from tidings.audit import SYSTEM
from tidings.audit.verify import read_entries
from tidings.recipients.links import UNSUBSCRIBE_TTL, Unsubscribe, ack_url, unsubscribe_url
from tidings.recipients.store import create_recipient, delete_recipient
from tidings.security.signed import Signer
from tidings.store.recipient_tables import preferences

CONFIG: dict[str, Any] = {
    "integrations": {"mail": {"kind": "inbox", "project": "alpha"}},
    "routes": [{"project": "alpha", "to": ["mail"]}],
    "projects": {"alpha": {"topics": {"security": {"required": True}, "deploys": {}}}},
}
ONE_CLICK = {"content": b"List-Unsubscribe=One-Click",
             "headers": {"Content-Type": "application/x-www-form-urlencoded"}}


@pytest.fixture
async def api(make_api: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("TIDINGS_SECRET_KEY", Fernet.generate_key().decode())
    api = await make_api(CONFIG, dispatch=False)
    async with api.hub.store.write() as conn:
        for name in ("ann", "bob"):
            await create_recipient(conn, "alpha", name, {"email": f"{name}@example.com"}, actor=SYSTEM)
    await api.hub.directory.reload("alpha")
    return api


def rid(api: Any, name: str) -> str:
    return str(api.hub.directory.people("alpha").persons[name].id)


def link(api: Any, name: str, topic: str = "deploys", channel: str = "mail", **kwargs: Any) -> str:
    url = unsubscribe_url(api.hub.signer(), "http://tidings.example", Unsubscribe(rid(api, name), topic, channel), **kwargs)
    return url.removeprefix("http://tidings.example")


async def prefs(api: Any) -> list[tuple[str, str, str, bool, str]]:
    names = {p.id: n for n, p in api.hub.directory.people("alpha").persons.items()}
    async with api.hub.store.read() as conn:
        rows = (await conn.execute(select(preferences).order_by(preferences.c.topic))).all()
    return [(names.get(r.recipient_id, "?"), r.topic, r.channel, r.enabled, r.updated_by) for r in rows]


async def test_one_click_turns_it_off_once_and_a_replay_changes_nothing(api: Any) -> None:
    path = link(api, "ann")
    # GET asks (a link scanner fetching it changes nothing).
    r = await api.get(path, auth=False)
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
    assert "messages about deploys by mail" in r.text and "<form method=post>" in r.text
    assert 'name=List-Unsubscribe value=One-Click' in r.text
    assert await prefs(api) == []
    r = await api.post(path, auth=False, **ONE_CLICK)
    assert r.status_code == 200 and "Unsubscribed" in r.text, r.text
    assert await prefs(api) == [("ann", "deploys", "mail", False, "unsubscribe link")]
    assert api.hub.directory.people("alpha").persons["ann"].prefs == {("deploys", "mail"): False}
    again = await api.post(path, auth=False, **ONE_CLICK)
    assert again.status_code == 200 and "Unsubscribed" in again.text
    entries = [e for e in await read_entries(api.hub.store) if e["action"] == "preference.set"]
    assert len(entries) == 1  # the replay: nothing changed, nothing recorded
    [e] = entries
    assert (e["actor"], e["actor_name"], e["auth_method"], e["target"], e["after"]) == (
        "user", "recipient alpha/ann", "link", "recipient/alpha/ann/preference/deploys/mail", {"enabled": False})


async def test_the_button_multipart_form_and_a_bare_post(api: Any) -> None:
    boundary = "b0undary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"List-Unsubscribe\"\r\n\r\nOne-Click\r\n"
            f"--{boundary}--\r\n").encode()
    r = await api.post(link(api, "ann"), auth=False, content=body,
                       headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert r.status_code == 200, r.text
    for content in (b"", b"List-Unsubscribe=Two-Clicks", b"\xff\xfe"):
        r = await api.post(link(api, "bob"), auth=False, content=content,
                           headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert r.status_code == 400 and "One-Click" in r.text, r.text
    assert [p[0] for p in await prefs(api)] == ["ann"]


def _swap(token: str, **claims: Any) -> str:
    """The token with its claims changed and its MAC kept."""
    body, mac = token.split(".")
    data = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    data.update(claims)
    raw = base64.urlsafe_b64encode(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).rstrip(b"=")
    return f"{raw.decode()}.{mac}"


async def test_forged_altered_swapped_expired_and_ack_links_are_refused(api: Any) -> None:
    good = link(api, "ann").rsplit("/", 1)[1]
    other_key = Signer([Fernet.generate_key().decode()])
    forged = unsubscribe_url(other_key, "", Unsubscribe(rid(api, "ann"), "deploys", "mail")).rsplit("/", 1)[1]
    ack = ack_url(api.hub.signer(), "", "some-message-id").rsplit("/", 1)[1]
    cases = {
        "forged": (forged, 400, "not made by this tidings"),
        "another recipient swapped in": (_swap(good, r=rid(api, "bob")), 400, "altered"),
        "another topic": (_swap(good, t="billing"), 400, "altered"),
        "a later expiry": (_swap(good, exp=int(time.time()) + 10 * UNSUBSCRIBE_TTL), 400, "altered"),
        "a cut MAC": (good[:-3], 400, "altered"),
        "garbage": ("not-a-token", 400, "not a tidings link"),
        "bad base64": (good.split(".")[0] + ".!!!!", 400, "altered"),
        "too long": ("a" * 3000 + "." + "b", 400, "not a tidings link"),
        "an ack link": (ack, 400, "for something else"),
        "expired": (link(api, "ann", now=time.time() - 2 * UNSUBSCRIBE_TTL).rsplit("/", 1)[1], 410, "expired"),
    }
    for what, (token, status, fragment) in cases.items():
        for method in ("GET", "POST"):
            r = await api.request(method, f"/l/unsubscribe/{token}", auth=False, **ONE_CLICK)
            assert r.status_code == status and fragment in r.text, (what, method, r.status_code, r.text)
            assert "text/html" in r.headers["content-type"]
    assert await prefs(api) == []
    assert not [e for e in await read_entries(api.hub.store) if e["action"] == "preference.set"]


async def test_a_required_topic_and_a_deleted_recipient_are_refused(api: Any) -> None:
    r = await api.post(link(api, "ann", topic="security"), auth=False, **ONE_CLICK)
    assert r.status_code == 400 and "required" in r.text, r.text
    assert (await api.get(link(api, "ann", topic="security"), auth=False)).status_code == 400
    path = link(api, "bob")
    async with api.hub.store.write() as conn:
        await delete_recipient(conn, "alpha", "bob", actor=SYSTEM)
    for method in ("GET", "POST"):
        r = await api.request(method, path, auth=False, **ONE_CLICK)
        assert r.status_code == 410 and "no longer a recipient" in r.text, r.text
    assert await prefs(api) == []


@pytest.mark.parametrize("db", ["sqlite"])
async def test_a_database_in_trouble_is_a_page_not_a_500(api: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from tidings.server import unsubscribe

    async def down(*_: Any) -> None:
        raise ConnectionError("database unreachable")

    path = link(api, "ann")
    with monkeypatch.context() as patched:
        patched.setattr(unsubscribe, "recipient_by_id", down)
        for method in ("GET", "POST"):
            r = await api.request(method, path, auth=False, **ONE_CLICK)
            assert r.status_code == 503 and "try again" in r.text.lower(), r.text
    assert (await api.post(path, auth=False, **ONE_CLICK)).status_code == 200  # later, it works
