"""End to end on SQLite and PostgreSQL: a route ``to: [ops-slack, "@oncall"]`` reaches the channel,
DMs each on-call person through the Slack bot, mails them through the SMTP integration, honours
their preferences (a suppressed delivery says why), lets a required topic through, and a
recipient deleted before dispatch ends ``dead`` with the reason."""

from __future__ import annotations

import time
import uuid
from typing import Any

from fake_slack import FakeSlack
from fake_smtp import SmtpServer
from helpers import eventually
from sqlalchemy import delete, insert

from tidings import Hub, Message
from tidings.store.engine import Store
from tidings.store.recipient_tables import preferences, recipient_group_members, recipient_groups, recipients

FINAL = {"delivered", "dead", "suppressed"}


def config(slack: FakeSlack, smtp: SmtpServer, **route: Any) -> dict[str, Any]:
    return {
        "integrations": {
            "ops-slack": {"kind": "slack", "token": slack.token, "channel": "#ops", "api_url": slack.api_url},
            "mail": {"kind": "email", "host": "127.0.0.1", "port": smtp.port, "security": "none",
                     "allow_insecure": True, "from_address": "tidings@example.com", "to": ["team@example.com"],
                     "cc": ["boss@example.com"], "timeout": 5},
        },
        "routes": [{"name": "pager", "topic": "deploys", "to": ["ops-slack", "@oncall"], **route}],
        "projects": {"default": {"topics": {"security": {"required": True}, "deploys": {}}}},
    }


async def add_people(store: Store, project: str = "default") -> dict[str, str]:
    """Ada (email + Slack) and Grace (email + Slack, deploys off by email) in @oncall; Linus
    (Slack only) on his own. Rows written as the recipients API would."""
    now = time.time()
    ids = {name: str(uuid.uuid4()) for name in ("ada", "grace", "linus")}
    rows = [
        {"name": "ada", "display_name": "Ada Lovelace", "email": "ada@example.com", "slack_user": "U0ADA"},
        {"name": "grace", "display_name": "Grace Hopper", "email": "grace@example.com", "slack_user": "U0GRACE"},
        {"name": "linus", "display_name": "Linus T", "email": None, "slack_user": "U0LINUS"},
    ]
    group = str(uuid.uuid4())
    async with store.write() as conn:
        await conn.execute(insert(recipients), [
            {**r, "id": ids[r["name"]], "project": project, "timezone": "UTC", "created_at": now, "updated_at": now}
            for r in rows])
        await conn.execute(insert(recipient_groups).values(id=group, project=project, name="oncall",
                                                           created_at=now, updated_at=now))
        await conn.execute(insert(recipient_group_members), [
            {"group_id": group, "recipient_id": ids["ada"], "position": 0},
            {"group_id": group, "recipient_id": ids["grace"], "position": 1}])
        await conn.execute(insert(preferences).values(recipient_id=ids["grace"], topic="deploys", channel="mail",
                                                      enabled=False, updated_at=now, updated_by="grace"))
    return ids


async def settled(hub: Hub, message_id: str, count: int) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []

    async def done() -> bool:
        nonlocal found
        found = (await hub.message(message_id))["deliveries"]
        return len(found) == count and all(d["status"] in FINAL for d in found)

    await eventually(done, timeout=20)
    return found


def by_key(found: list[dict[str, Any]], ids: dict[str, str]) -> dict[tuple[str, str | None], dict[str, Any]]:
    names = {v: k for k, v in ids.items()}
    return {(d["integration"], names.get(d["recipient"])): d for d in found}


async def test_a_route_reaches_the_channel_and_each_person_on_their_channels(
    make_hub: Any, slack: FakeSlack, smtp: Any
) -> None:
    mail = smtp("none")
    hub = await make_hub(config(slack, mail))
    ids = await add_people(hub.require_store())
    await hub.directory.reload("default")

    receipt = await hub.notify(Message("v42 deployed", "all green"))
    found = by_key(await settled(hub, receipt.id, 5), ids)

    assert set(found) == {("ops-slack", None), ("ops-slack", "ada"), ("ops-slack", "grace"), ("mail", "ada"),
                          ("mail", "grace")}
    assert found[("ops-slack", None)]["status"] == "delivered"
    for key in [("ops-slack", "ada"), ("ops-slack", "grace"), ("mail", "ada")]:
        assert found[key]["status"] == "delivered", found[key]
    assert found[("mail", "ada")]["reason"] == "to @oncall (Ada Lovelace) by route pager"
    assert found[("ops-slack", "grace")]["reason"] == "to @oncall (Grace Hopper) by route pager"
    assert found[("mail", "grace")]["status"] == "suppressed"
    assert found[("mail", "grace")]["reason"] == "grace turned off topic deploys for mail"

    # The channel got the post; each person a DM from the bot (chat.postMessage to their user id).
    channels = sorted(c.json()["channel"] for c in slack.calls_of("chat.postMessage"))
    assert channels == ["#ops", "U0ADA", "U0GRACE"]
    assert {k[0] for k in slack.messages} == {"C0OPS", "D0ADA", "D0GRACE"}
    # Ada's own email: to her alone (no cc of the integration), nobody else's address in it.
    assert [m.rcpt_tos for m in mail.mails] == [["ada@example.com"]]
    assert mail.mails[0].message["To"] == "ada@example.com" and mail.mails[0].message["Cc"] is None


async def test_a_required_topic_reaches_who_turned_it_off(make_hub: Any, slack: FakeSlack, smtp: Any) -> None:
    mail = smtp("none")
    hub = await make_hub(config(slack, mail))
    ids = await add_people(hub.require_store())
    async with hub.require_store().write() as conn:
        await conn.execute(insert(preferences).values(recipient_id=ids["grace"], topic="", channel="", enabled=False,
                                                      updated_at=time.time(), updated_by="grace"))
    await hub.directory.reload("default")

    receipt = await hub.notify(Message("intrusion", labels={"topic": "security"}))
    found = by_key(await settled(hub, receipt.id, 5), ids)

    assert found[("mail", "grace")]["status"] == "delivered", found[("mail", "grace")]
    assert found[("ops-slack", "grace")]["status"] == "delivered"
    assert sorted(r for m in mail.mails for r in m.rcpt_tos) == ["ada@example.com", "grace@example.com"]

    # Without the required topic, her global switch holds everywhere.
    receipt = await hub.notify(Message("v43 deployed"))
    found = by_key(await settled(hub, receipt.id, 5), ids)
    assert found[("ops-slack", "grace")]["status"] == "suppressed"
    assert found[("ops-slack", "grace")]["reason"] == "grace turned off all notifications"
    # Her email: topic x channel decides before the global switch (same answer, its own reason).
    assert found[("mail", "grace")]["reason"] == "grace turned off topic deploys for mail"


async def test_a_person_named_twice_gets_each_channel_once_and_unknown_handles_are_recorded(
    make_hub: Any, slack: FakeSlack, smtp: Any
) -> None:
    mail = smtp("none")
    hub = await make_hub(config(slack, mail, to=["@oncall", "@ada", "@linus", "@nobody"]))
    ids = await add_people(hub.require_store())
    await hub.directory.reload("default")

    receipt = await hub.notify(Message("v44 deployed"))
    found = by_key(await settled(hub, receipt.id, 6), ids)

    assert sorted(found) == sorted([("ops-slack", "ada"), ("mail", "ada"), ("ops-slack", "grace"), ("mail", "grace"),
                                    ("ops-slack", "linus"), ("@nobody", None)])
    assert found[("mail", "ada")]["reason"] == "to @oncall (Ada Lovelace) by route pager"  # the first naming
    assert found[("ops-slack", "linus")]["reason"] == "to @linus (Linus T) by route pager"
    nobody = found[("@nobody", None)]
    assert nobody["status"] == "suppressed"
    assert nobody["reason"] == "@nobody names no recipient or group of project default"
    assert sorted(c.json()["channel"] for c in slack.calls_of("chat.postMessage")) == ["U0ADA", "U0GRACE", "U0LINUS"]


async def test_to_may_name_people_directly(make_hub: Any, slack: FakeSlack, smtp: Any) -> None:
    mail = smtp("none")
    hub = await make_hub(config(slack, mail))
    ids = await add_people(hub.require_store())
    await hub.directory.reload("default")

    receipt = await hub.notify(Message("just for Ada"), to=["@ada"])
    found = by_key(await settled(hub, receipt.id, 2), ids)

    assert set(found) == {("ops-slack", "ada"), ("mail", "ada")}
    assert found[("mail", "ada")]["reason"] == "to @ada (Ada Lovelace) as the sender asked"


async def test_a_recipient_deleted_before_dispatch_ends_dead_with_the_reason(
    make_hub: Any, slack: FakeSlack, smtp: Any
) -> None:
    mail = smtp("none")
    writer = await make_hub(config(slack, mail), dispatch=False)
    ids = await add_people(writer.require_store())
    await writer.directory.reload("default")
    receipt = await writer.notify(Message("v45 deployed"))
    async with writer.require_store().write() as conn:
        await conn.execute(delete(recipients).where(recipients.c.id == ids["ada"]))

    worker = await make_hub(config(slack, mail))  # loads the people as they are now: Ada is gone
    found = by_key(await settled(worker, receipt.id, 5), ids)

    for channel in ("ops-slack", "mail"):
        dead = found[(channel, "ada")]
        assert dead["status"] == "dead"
        assert dead["attempts"] == 1
        assert dead["last_error"] == f"recipient {ids['ada']} no longer exists: nothing sent"
    assert found[("ops-slack", "grace")]["status"] == "delivered"
    assert "U0ADA" not in [c.json()["channel"] for c in slack.calls_of("chat.postMessage")]
    assert "ada@example.com" not in [r for m in mail.mails for r in m.rcpt_tos]


async def test_a_person_without_an_address_any_more_ends_dead(make_hub: Any, slack: FakeSlack, smtp: Any) -> None:
    mail = smtp("none")
    writer = await make_hub(config(slack, mail), dispatch=False)
    ids = await add_people(writer.require_store())
    await writer.directory.reload("default")
    receipt = await writer.notify(Message("v46 deployed"))
    async with writer.require_store().write() as conn:
        await conn.execute(recipients.update().where(recipients.c.id == ids["ada"]).values(email=None))

    worker = await make_hub(config(slack, mail))
    found = by_key(await settled(worker, receipt.id, 5), ids)

    assert found[("mail", "ada")]["status"] == "dead"
    assert found[("mail", "ada")]["last_error"] == "ada has no address on mail any more: nothing sent"
    assert found[("ops-slack", "ada")]["status"] == "delivered"


async def test_the_api_takes_handles_in_to_and_explains_each_delivery(
    make_api: Any, slack: FakeSlack, smtp: Any
) -> None:
    mail = smtp("none")
    api = await make_api(config(slack, mail))
    ids = await add_people(api.hub.require_store())
    await api.hub.directory.reload("default")

    r = await api.post("/api/v1/messages", json={"title": "for the on-call", "to": ["@oncall", "ops-slack"]})
    assert r.status_code == 202, r.text
    message_id = r.json()["id"]
    await settled(api.hub, message_id, 5)

    shown = await api.get(f"/api/v1/messages/{message_id}")
    found = by_key(shown.json()["deliveries"], ids)
    assert found[("mail", "ada")]["status"] == "delivered"
    assert found[("mail", "ada")]["reason"] == "to @oncall (Ada Lovelace) as the sender asked"
    assert found[("mail", "ada")]["recipient"] == ids["ada"]
    assert found[("ops-slack", None)]["reason"] is None
    # No route, no topic: Grace's (deploys, mail) switch doesn't apply.
    assert found[("mail", "grace")]["status"] == "delivered"

    r = await api.post("/api/v1/messages", json={"title": "x", "to": ["@oncall", "nope"]})
    assert r.status_code in (400, 404, 422) and "nope" in r.text
