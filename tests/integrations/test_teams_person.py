"""Teams reaches a person at their own workflow URL, end to end on SQLite and PostgreSQL: a route's
``@ana`` posts the card to Ana's workflow (kept in the vault), not to the integration's; Bob, who has
none, gets no Teams delivery; her URL shows nowhere (answers, rows, audit, logs); her workflow's
429/500 are retried, its 410 ends only her delivery; a URL removed or changed meanwhile is honoured
when sent; a sender can't aim a card at a person by a label."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.fernet import Fernet
from fake_teams import FakeTeams
from helpers import eventually, json_logs
from sink import Reply
from sqlalchemy import select

from tidings import Message
from tidings.audit import SYSTEM
from tidings.audit.verify import read_entries
from tidings.integrations.base import Attempt
from tidings.integrations.teams import PERSON_LABEL, TeamsNotifier
from tidings.recipients.edit import editing
from tidings.recipients.store import create_recipient
from tidings.recipients.teams import AddressGone, TeamsUrls
from tidings.store.tables import deliveries, messages

FINAL = {"delivered", "dead", "suppressed"}
CHANNEL_WF = "c4a77e1c4a77e1c4a77e1c4a77e1c4a7"
ANA_WF = "a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0"
ANA_SIG = "YW5hLXNlY3JldC1zaWduYXR1cmUtMDEy"
NEW_WF = "b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1"
NEW_SIG = "bmV3LXNlY3JldC1zaWduYXR1cmUtMzQ1"


def workflow(teams: FakeTeams, wf: str, sig: str) -> str:
    return f"{teams.url}/workflows/{wf}/triggers/manual/paths/invoke?api-version=2016-06-01&sv=1.0&sig={sig}"


def config(teams: FakeTeams, to: list[str]) -> dict[str, Any]:
    return {
        "integrations": {
            "chat": {"kind": "teams", "webhook_url": workflow(teams, CHANNEL_WF, "Y2hhbm5lbC1zaWduYXR1cmUtNjc4"),
                     "rate_limit": "100/second", "retry": {"base": 0.05, "cap": 0.2, "max_attempts": 5},
                     "breaker": {"min_calls": 1000}},
        },
        "routes": [{"name": "pager", "to": to}],
    }


@pytest.fixture(autouse=True)
def secret_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """The vault needs a key to hold a recipient's Teams URL (every hub of a test shares it)."""
    monkeypatch.setenv("TIDINGS_SECRET_KEY", Fernet.generate_key().decode())


async def add_people(api: Any, ana_url: str) -> dict[str, str]:
    """Ana with a Teams workflow URL, Bob with only an email address, through the recipients API."""
    r = await api.post("/api/v1/recipients", json={"name": "ana", "display_name": "Ana", "teams": ana_url})
    assert r.status_code == 201, r.text
    assert r.json()["teams"] is True and ANA_SIG not in r.text
    ana = r.json()["id"]
    r = await api.post("/api/v1/recipients", json={"name": "bob", "email": "bob@example.com"})
    assert r.status_code == 201, r.text
    return {"ana": ana, "bob": r.json()["id"]}


async def settled(hub: Any, message_id: str, count: int) -> dict[tuple[str, str | None], dict[str, Any]]:
    found: list[dict[str, Any]] = []

    async def done() -> bool:
        nonlocal found
        found = (await hub.message(message_id))["deliveries"]
        return len(found) == count and all(d["status"] in FINAL for d in found)

    await eventually(done, timeout=20)
    return {(d["integration"], d["recipient"]): d for d in found}


def paths(teams: FakeTeams) -> list[str]:
    return [r.path.split("?")[0] for r in teams.received]


def path_of(wf: str) -> str:
    return f"/workflows/{wf}/triggers/manual/paths/invoke"


async def test_a_route_to_a_person_posts_to_their_own_workflow(make_api: Any, teams: FakeTeams) -> None:
    api = await make_api(config(teams, ["@ana", "@bob"]))
    ids = await add_people(api, workflow(teams, ANA_WF, ANA_SIG))

    receipt = await api.hub.notify(Message("Disk full", "92% on web-01", priority="high"))
    found = await settled(api.hub, receipt.id, 2)

    ana = found[("chat", ids["ana"])]
    assert ana["status"] == "delivered", ana
    assert ana["reason"] == "to @ana (Ana) by route pager"
    assert ana["remote_id"].startswith("08584")  # Workflows' run id
    # Bob has no Teams URL: no Teams delivery, only the record that nothing reaches him.
    assert ("chat", ids["bob"]) not in found
    assert found[("@bob", ids["bob"])]["status"] == "suppressed"
    # The card went to Ana's workflow, never to the integration's own.
    assert paths(teams) == [path_of(ANA_WF)]
    assert f"sig={ANA_SIG}" in teams.received[0].path
    card = teams.card_at(0)
    assert card["type"] == "AdaptiveCard" and card["body"][0]["items"][0]["text"] == "Disk full"

    # The channel and the person side by side: each at its own URL.
    receipt = await api.hub.notify(Message("v42 deployed"), to=["chat", "@ana"])
    found = await settled(api.hub, receipt.id, 2)
    assert {k: d["status"] for k, d in found.items()} == {("chat", None): "delivered", ("chat", ids["ana"]): "delivered"}
    assert sorted(paths(teams)[1:]) == sorted([path_of(CHANNEL_WF), path_of(ANA_WF)])


async def test_a_persons_429_and_500_are_retried_at_her_url(make_api: Any, teams: FakeTeams) -> None:
    api = await make_api(config(teams, ["@ana"]))
    ids = await add_people(api, workflow(teams, ANA_WF, ANA_SIG))
    teams.script(Reply(429, headers={"Retry-After": "0"}), Reply(500, body="busy"))

    receipt = await api.hub.notify(Message("Disk full", priority="critical"))
    found = await settled(api.hub, receipt.id, 1)

    d = found[("chat", ids["ana"])]
    assert d["status"] == "delivered" and d["attempts"] == 3, d
    assert paths(teams) == [path_of(ANA_WF)] * 3
    assert len({r.body for r in teams.received}) == 1, "every attempt sends the same card"


async def test_a_persons_gone_workflow_ends_her_delivery_only(make_api: Any, teams: FakeTeams) -> None:
    api = await make_api(config(teams, ["chat", "@ana"]))
    ids = await add_people(api, workflow(teams, ANA_WF, ANA_SIG))
    teams.script(Reply(410, body="gone"))
    receipt = await api.hub.notify(Message("one"), to=["@ana"])
    found = await settled(api.hub, receipt.id, 1)
    d = found[("chat", ids["ana"])]
    assert d["status"] == "dead" and "HTTP 410" in d["last_error"] and "(ana's workflow)" in d["last_error"], d
    assert "integration disabled" not in d["last_error"]

    info = {i["name"]: i for i in await api.hub.integrations()}["chat"]
    assert info["health"] != "disabled"
    receipt = await api.hub.notify(Message("two"), to=["chat"])
    assert (await settled(api.hub, receipt.id, 1))[("chat", None)]["status"] == "delivered"


@pytest.fixture
def log_output(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    """Every log line of the hub, the dispatcher and Teams, as JSON, in a buffer."""
    import tidings.integrations.teams

    yield from json_logs(monkeypatch, (tidings.integrations.teams, "tidings.teams"))


async def test_her_url_shows_nowhere(make_api: Any, teams: FakeTeams, log_output: io.StringIO) -> None:
    api = await make_api(config(teams, ["@ana"]))
    ana_url = workflow(teams, ANA_WF, ANA_SIG)
    ids = await add_people(api, ana_url)
    teams.script(Reply(400, body=f"bad request to {ana_url}"), Reply(404, body=f"workflow {ANA_WF} not found"),
                 Reply(401, body=f"sig {ANA_SIG} expired"))

    shown = []
    for i in range(3):
        receipt = await api.hub.notify(Message(f"m{i}", priority="high"))
        d = (await settled(api.hub, receipt.id, 1))[("chat", ids["ana"])]
        assert d["status"] == "dead", d
        r = await api.get(f"/api/v1/messages/{receipt.id}")
        assert r.status_code == 200
        shown.append(r.text)
    errors = [json.loads(t)["deliveries"][0]["last_error"] for t in shown]
    assert all(e.startswith("HTTP 4") for e in errors) and any("…" in e for e in errors), errors
    r = await api.get("/api/v1/recipients/ana")
    assert r.status_code == 200 and r.json()["teams"] is True
    shown.append(r.text)
    shown.append(json.dumps(await api.hub.integrations(), default=str))  # the integration's last error

    store = api.hub.require_store()
    async with store.read() as conn:
        rows = [dict(x._mapping) for t in (deliveries, messages) for x in await conn.execute(select(t))]
    trail = await read_entries(store)
    assert any(e["action"] == "recipient.create" for e in trail)
    # A log line that quotes her URL or its parts (a library's error, say) is masked too.
    from tidings.integrations.teams import log

    log.warning("test.leak_check", error=f"posting to {ana_url} failed: workflow {ANA_WF}, sig {ANA_SIG}")
    await api.hub.stop()
    logged = log_output.getvalue()
    assert "test.leak_check" in logged and "\\u2026a0a0" in logged, logged  # JSON writes … as \\u2026

    for text in [*shown, repr(rows), json.dumps(trail, default=str), logged]:
        for secret in (ana_url, ANA_SIG, ANA_WF):
            assert secret not in text, (secret, text[:2000])


async def test_a_url_removed_before_dispatch_ends_dead_with_the_reason(make_api: Any, make_hub: Any,
                                                                      teams: FakeTeams) -> None:
    writer = await make_api(config(teams, ["@ana"]), dispatch=False)
    ids = await add_people(writer, workflow(teams, ANA_WF, ANA_SIG))
    receipt = await writer.hub.notify(Message("v45 deployed"))
    r = await writer.request("PATCH", "/api/v1/recipients/ana", json={"teams": None}, headers={"If-Match": "*"})
    assert r.status_code == 200 and r.json()["teams"] is False, r.text

    worker = await make_hub(config(teams, ["@ana"]))
    d = (await settled(worker, receipt.id, 1))[("chat", ids["ana"])]
    assert d["status"] == "dead" and d["attempts"] == 1
    assert d["last_error"] == "ana has no address on chat any more: nothing sent"
    assert teams.received == []


async def test_a_url_gone_from_the_vault_is_dead_even_before_the_directory_knows(make_api: Any,
                                                                                teams: FakeTeams) -> None:
    """Another worker removed it: this one's directory still has the reference, the vault not the URL."""
    api = await make_api(config(teams, ["@ana"]))
    ids = await add_people(api, workflow(teams, ANA_WF, ANA_SIG))
    assert api.hub.vault is not None
    await api.hub.vault.delete("recipient/default/ana/teams")

    receipt = await api.hub.notify(Message("v46 deployed"))
    d = (await settled(api.hub, receipt.id, 1))[("chat", ids["ana"])]
    assert d["status"] == "dead" and d["attempts"] == 1
    assert d["last_error"] == "ana has no Teams workflow URL any more: nothing sent"
    assert teams.received == []


async def test_a_changed_url_applies_to_the_next_card(make_api: Any, teams: FakeTeams) -> None:
    api = await make_api(config(teams, ["@ana"]))
    ids = await add_people(api, workflow(teams, ANA_WF, ANA_SIG))
    for title in ("one", "two"):  # the second from what the first read
        receipt = await api.hub.notify(Message(title))
        assert (await settled(api.hub, receipt.id, 1))[("chat", ids["ana"])]["status"] == "delivered"

    r = await api.request("PATCH", "/api/v1/recipients/ana", json={"teams": workflow(teams, NEW_WF, NEW_SIG)},
                          headers={"If-Match": "*"})
    assert r.status_code == 200, r.text
    receipt = await api.hub.notify(Message("three"))
    assert (await settled(api.hub, receipt.id, 1))[("chat", ids["ana"])]["status"] == "delivered"
    assert paths(teams) == [path_of(ANA_WF), path_of(ANA_WF), path_of(NEW_WF)]
    assert f"sig={NEW_SIG}" in teams.received[-1].path


async def test_a_url_is_checked_like_the_integrations_own(make_api: Any, teams: FakeTeams) -> None:
    """A URL put in the vault by hand (not through the recipients API) that isn't https, or isn't a
    workflow's, is refused when sent: nothing posted, and the reason doesn't quote it."""
    api = await make_api(config(teams, ["@ana"]))
    ids = await add_people(api, workflow(teams, ANA_WF, ANA_SIG))
    assert api.hub.vault is not None
    cases = [("http://teams.example.com/workflows/abc/triggers/manual?sig=plain-text-sig-1", "must be https://"),
             (f"{teams.url}/hooks/not-a-workflow?sig=plain-text-sig-2", "is not a Power Automate workflow")]
    for url, says in cases:
        await api.hub.vault.set("recipient/default/ana/teams", url)
        await api.hub.directory.reload("default")  # as an edit would: the next card reads the vault again
        receipt = await api.hub.notify(Message("x"))
        d = (await settled(api.hub, receipt.id, 1))[("chat", ids["ana"])]
        assert d["status"] == "dead" and says in d["last_error"], d
        assert d["last_error"].startswith("ana's Teams workflow URL") and "sig" not in d["last_error"]
    assert teams.received == []


async def test_a_sender_cannot_aim_a_card_at_a_person(make_api: Any, teams: FakeTeams) -> None:
    api = await make_api(config(teams, ["chat"]))
    ids = await add_people(api, workflow(teams, ANA_WF, ANA_SIG))
    r = await api.post("/api/v1/messages", json={"title": "x", "labels": {PERSON_LABEL: ids["ana"]}})
    assert r.status_code == 422, r.text
    with pytest.raises(ValueError, match="label name"):
        Message("x", labels={PERSON_LABEL: ids["ana"]})


async def test_another_projects_recipient_is_refused(make_hub: Any, teams: FakeTeams) -> None:
    """Only planning sets the label, for the integration's own project; a send that carries another
    project's recipient anyway posts nothing."""
    data = config(teams, ["chat"])
    data["integrations"]["beta-chat"] = {**data["integrations"]["chat"], "project": "beta"}
    data["routes"].append({"project": "beta", "to": ["beta-chat"]})
    hub = await make_hub(data)
    async with editing(hub, "default", secret=True) as conn:
        ana = await create_recipient(conn, "default", "ana", {"teams": workflow(teams, ANA_WF, ANA_SIG)},
                                     actor=SYSTEM, vault=hub.vault)
    beta = hub.notifiers["beta-chat"]
    assert isinstance(beta, TeamsNotifier)
    message = Message("x").model_copy(update={"labels": {PERSON_LABEL: ana["id"]}})
    outcome = await beta.send(beta.render(message), Attempt("d1", "m1", 1, time.time(), message))
    assert not outcome.ok and outcome.error == f"recipient {ana['id']} is not of project beta: nothing sent"
    ok = await hub.notifiers["chat"].send(beta.render(message), Attempt("d2", "m2", 1, time.time(), message))
    assert ok.ok and paths(teams) == [path_of(ANA_WF)]


async def test_a_read_url_is_kept_until_the_directory_reloads(make_api: Any, teams: FakeTeams,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """One vault read per person while the directory holds them; its reload (at once after an edit
    here, every few seconds for one elsewhere) makes the next card read the URL again."""
    api = await make_api(config(teams, ["@ana"]), dispatch=False)
    ana_url, new_url = workflow(teams, ANA_WF, ANA_SIG), workflow(teams, NEW_WF, NEW_SIG)
    ids = await add_people(api, ana_url)
    vault, directory = api.hub.vault, api.hub.directory
    assert vault is not None and directory is not None
    await directory.stop()  # its periodic reload (every second here) is called by hand below
    reads: list[str] = []
    real = vault.get

    async def counting(name: str) -> str:
        reads.append(name)
        return await real(name)

    monkeypatch.setattr(vault, "get", counting)
    resolve = TeamsUrls(api.hub)
    assert await resolve(ids["ana"], "default") == ("ana", ana_url)
    assert await resolve(ids["ana"], "default") == ("ana", ana_url)
    assert reads == ["recipient/default/ana/teams"]

    await vault.set("recipient/default/ana/teams", new_url)  # rotated by another worker
    assert (await resolve(ids["ana"], "default"))[1] == ana_url
    await directory.load()  # this worker's periodic refresh
    assert (await resolve(ids["ana"], "default"))[1] == new_url
    assert len(reads) == 2

    with pytest.raises(AddressGone, match="^bob has no Teams workflow URL any more: nothing sent$"):
        await resolve(ids["bob"], "default")
    with pytest.raises(AddressGone, match="no longer exists"):
        await resolve("01a24bbd-0000-7000-8000-000000000000", "default")
