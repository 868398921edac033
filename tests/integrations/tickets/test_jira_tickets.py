"""kind: jira with ``tickets:`` through a real hub and outbox (SQLite and PostgreSQL) against the Jira stand-in."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from helpers import eventually, pg_available
from peers.jira_api import JiraCloud
from peers.jira_data import STATUSES, text_of
from peers.jira_tickets import comment_texts
from sqlalchemy import select
from ticket_support import FAST, routed, settle

from tidings import Message
from tidings.integrations.jira import JiraSettings
from tidings.integrations.tickets import ledger_row
from tidings.store.tables import integration_state


def jira_settings(cloud: JiraCloud, **tickets: Any) -> dict[str, Any]:
    return {"kind": "jira", "base_url": cloud.url, "email": cloud.email, "api_token": cloud.api_token,
            "tickets": {"project": "OPS", "labels": ["tidings", "alerts"], **tickets}, **FAST}


def alert(title: str = "Disk full on db-01", *, resolves: bool = False, key: str = "disk:db-01", **kw: Any) -> Message:
    return Message(title, "only **3%** left", format="markdown", priority=kw.pop("priority", "critical"),
                   thread_key=key, fields={"host": "db-01", "mount": "/var"},
                   links=[("Runbook", "https://runbooks.example.com/disk")], resolves=resolves, **kw)


async def send(hub: Any, message: Message) -> dict[str, Any]:
    r = await hub.notify(message)
    return await settle(hub, r.id)


def category(cloud: JiraCloud, issue: Any) -> str:
    return str(STATUSES[issue.status][1])


async def test_an_alert_opens_one_issue_with_adf_priority_and_labels(make_hub: Any, jira: JiraCloud) -> None:
    hub = await make_hub(routed("jira", jira_settings(jira)))
    d = await send(hub, alert())
    assert d["status"] == "delivered"
    [issue] = jira.issues.values()
    assert d["remote_id"] == issue.key == "OPS-1"
    assert issue.summary == "Disk full on db-01" and issue.priority == "Highest" and issue.type == "Task"
    row = await ledger_row(hub.store, "jira", "disk:db-01")
    assert row is not None and row["state"] == "open" and row["remote_key"] == "OPS-1"
    assert set(issue.labels) == {"tidings", "alerts", f"tidings-{row['marker']}"}
    text = text_of(issue.description) or ""
    assert "db-01" in text and "/var" in text and "Runbook" in text
    assert issue.properties["tidings-alert"] == {"marker": row["marker"], "alert": "disk:db-01"}


async def test_repeats_comment_rate_limited_then_resolve_and_reopen(make_hub: Any, jira: JiraCloud) -> None:
    hub = await make_hub(routed("jira", jira_settings(jira, comment_every="30m")))
    for _ in range(6):
        assert (await send(hub, alert()))["status"] == "delivered"
    [issue] = jira.issues.values()
    assert comment_texts(jira, issue.id) == ["The alert fired again (once more since the last comment): Disk full on db-01"]

    assert (await send(hub, alert("Disk ok", resolves=True)))["status"] == "delivered"
    assert category(jira, issue) == "done" and issue.status == "Done"
    assert "4 more times" in comment_texts(jira, issue.id)[-1]
    row = await ledger_row(hub.store, "jira", "disk:db-01")
    assert row is not None and row["state"] == "resolved" and row["resolved_at"] is not None

    assert (await send(hub, alert()))["status"] == "delivered"
    assert len(jira.issues) == 1 and issue.status == "To Do", "reopened into a status that is not Done"
    assert "after it was resolved" in comment_texts(jira, issue.id)[-1]


async def test_comment_every_zero_comments_each_repeat(make_hub: Any, jira: JiraCloud) -> None:
    hub = await make_hub(routed("jira", jira_settings(jira, comment_every=0)))
    for _ in range(4):
        await send(hub, alert())
    [issue] = jira.issues.values()
    assert len(comment_texts(jira, issue.id)) == 3


async def test_reopen_false_opens_a_new_issue(make_hub: Any, jira: JiraCloud) -> None:
    hub = await make_hub(routed("jira", jira_settings(jira, reopen=False)))
    await send(hub, alert())
    await send(hub, alert(resolves=True))
    d = await send(hub, alert())
    assert d["remote_id"] == "OPS-2"
    first, second = (jira.issues[jira.keys[k]] for k in ("OPS-1", "OPS-2"))
    assert first.status == "Done" and second.status == "To Do"


async def test_a_workflow_without_a_way_to_done_is_dead_with_the_reason(make_hub: Any, jira: JiraCloud) -> None:
    hub = await make_hub(routed("jira", jira_settings(jira, issue_type="Bug")))
    await send(hub, alert())
    d = await send(hub, alert(resolves=True))
    assert d["status"] == "dead" and "no transition into the Done category" in d["last_error"]


async def test_a_lost_answer_on_create_makes_no_duplicate(make_hub: Any, jira: JiraCloud) -> None:
    jira.drop_next_create()
    hub = await make_hub(routed("jira", jira_settings(jira)))
    d = await send(hub, alert())
    assert d["status"] == "delivered" and d["attempts"] == 2 and d["remote_id"] == "OPS-1"
    assert len(jira.issues) == 1
    assert jira.calls["POST /rest/api/3/issue"] == 1 and jira.calls["POST /rest/api/3/search/jql"] == 1


@pytest.mark.parametrize("status", [429, 503, 500])
async def test_busy_answers_are_retried(make_hub: Any, jira: JiraCloud, status: int) -> None:
    jira.fail(status, retry_after=0 if status != 500 else None, times=2, path="/rest/api/3/issue")
    hub = await make_hub(routed("jira", jira_settings(jira)))
    d = await send(hub, alert())
    assert d["status"] == "delivered" and d["attempts"] == 3 and len(jira.issues) == 1


async def test_400_is_dead_with_jiras_reasons(make_hub: Any, jira: JiraCloud) -> None:
    hub = await make_hub(routed("jira", jira_settings(jira, priorities={"critical": "P0"})))
    d = await send(hub, alert())
    assert d["status"] == "dead" and d["attempts"] == 1
    assert "400" in d["last_error"] and "Priority name 'P0' is not valid" in d["last_error"]


async def test_401_disables_and_holds(make_hub: Any, jira: JiraCloud) -> None:
    settings = jira_settings(jira)
    settings["api_token"] = "ATATT-wrong-token-0000"
    hub = await make_hub(routed("jira", settings))
    d = await send(hub, alert())
    assert d["status"] == "dead" and "401" in d["last_error"] and "ATATT-wrong" not in d["last_error"]

    async def disabled() -> bool:
        async with hub.store.read() as conn:
            row = (await conn.execute(select(integration_state).where(integration_state.c.name == "jira"))).first()
        return row is not None and row.disabled

    await eventually(disabled)
    later = await hub.notify(alert(key="other"))
    await asyncio.sleep(0.3)  # the dispatcher had its chance; nothing may have gone out
    held = (await hub.message(later.id))["deliveries"][0]
    assert held["attempts"] == 0 and jira.issues == {}


async def test_preview_and_connection_test_create_nothing(make_hub: Any, jira: JiraCloud) -> None:
    hub = await make_hub(routed("jira", jira_settings(jira)))
    [preview] = hub.preview(alert(priority="low"))
    fields = preview["payload"]["fields"]
    assert fields["priority"] == {"name": "Low"} and fields["description"]["type"] == "doc"
    assert (await hub.test("jira")).ok
    assert jira.calls["GET /rest/api/3/myself"] == 1 and jira.issues == {}


async def test_two_workers_same_alert_one_issue(make_hub: Any, jira: JiraCloud, db: str) -> None:
    if db != "postgresql" or not pg_available():
        pytest.skip("two workers share a PostgreSQL database")
    config = routed("jira", jira_settings(jira, comment_every=0))
    one, two = await make_hub(config), await make_hub(config)
    hubs = (one, two, one, two)
    sent = await asyncio.gather(*(hub.notify(alert()) for hub in hubs))
    for hub, r in zip(hubs, sent, strict=True):
        assert (await settle(hub, r.id))["status"] == "delivered"
    [issue] = jira.issues.values()
    assert len(comment_texts(jira, issue.id)) == 3


def test_tickets_need_the_rest_credentials_and_receiving_stays_as_it_was() -> None:
    with pytest.raises(ValueError, match="tickets needs base_url, email, api_token"):
        JiraSettings(kind="jira", tickets={"project": "OPS"})
    with pytest.raises(ValueError, match="no spaces"):
        JiraSettings(kind="jira", base_url="https://x.atlassian.net", email="a@b.c", api_token="t",
                     tickets={"project": "OPS", "labels": ["two words"]})
    from tidings.integrations.jira import JiraReceiver

    receive_only = JiraSettings(kind="jira", secret="s3cret-for-webhooks")
    assert not JiraReceiver.can_send(receive_only) and JiraReceiver.can_receive(receive_only)


def test_the_ticket_mixin_shadows_nothing_of_the_receiver() -> None:
    """JiraReceiver is receiver, tracker and ticket sender at once: no helper of one may hide another's."""
    from tidings.integrations.base import Integration, Notifier
    from tidings.integrations.jira import JiraReceiver
    from tidings.integrations.jira.tickets import JiraTicketing

    own = {n for n in vars(JiraTicketing) if not n.startswith("__")} - {"can_send", "render", "send", "test",
                                                                        "concurrency", "settings"}
    for cls in JiraReceiver.__mro__:
        if cls not in (JiraTicketing, Notifier, Integration, object):
            assert not own & set(vars(cls)), cls


async def test_an_issue_someone_closed_already_is_resolved_without_a_transition(make_hub: Any, jira: JiraCloud) -> None:
    hub = await make_hub(routed("jira", jira_settings(jira)))
    await send(hub, alert())
    jira.move("OPS-1", "Done")
    d = await send(hub, alert(resolves=True))
    assert d["status"] == "delivered"
    assert jira.calls["POST /rest/api/3/issue/{id}/transitions"] == 0
    row = await ledger_row(hub.store, "jira", "disk:db-01")
    assert row is not None and row["state"] == "resolved"


async def test_a_deleted_issue_gets_a_new_one_and_its_resolve_is_a_no_op(make_hub: Any, jira: JiraCloud) -> None:
    hub = await make_hub(routed("jira", jira_settings(jira, comment_every=0)))
    await send(hub, alert())
    jira.delete("OPS-1")
    assert (await send(hub, alert()))["remote_id"] == "OPS-2"
    jira.delete("OPS-2")
    d = await send(hub, alert(resolves=True))
    assert d["status"] == "delivered" and "nothing to resolve" in d["last_error"]
