"""Tasks from Slack: the slash command's ``task`` verbs and the task buttons, through the real
server with signed Slack requests, against the strict fake Slack (every payload tidings sends is
checked against Block Kit's rules and for unescaped user text). Runs on SQLite and PostgreSQL.

Cast: alice (U0ALICE01) is a member of ``default``, victor (U0VICTOR1) a viewer, olga
(U0OUTSIDE) has no role there, ghost (U0GHOST01) is linked to an email no tidings user has, and
U0STRANGE is linked to nobody.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from fake_slack import FakeSlack, Scripted, blocks_of
from helpers import eventually, local_context
from people import person
from sqlalchemy import select
from test_slack_inbound import (
    SIGNING,
    buttons,
    command,
    config,
    contexts,
    form_request,
    post,
    settled,
    stored_events,
    trigger,
)

from tidings import Message
from tidings.accounts.projects import create_project
from tidings.audit import SYSTEM
from tidings.audit.verify import read_entries
from tidings.config import parse_config
from tidings.errors import ConfigError
from tidings.integrations.slack import SlackNotifier
from tidings.store.tables import tasks
from tidings.sync.events import after_commit, task_message
from tidings.sync.tasks import create_task, get_task

ALICE, VICTOR, OLGA, GHOST, STRANGER = "U0ALICE01", "U0VICTOR1", "U0OUTSIDE", "U0GHOST01", "U0STRANGE"
USERS = {ALICE: "alice@example.com", VICTOR: "Victor@Example.com", OLGA: "olga@example.com",
         GHOST: "ghost@example.com"}
TASK_URL = "https://tidings.example.com/projects/{project}/tasks/{key}"


# -- helpers -----------------------------------------------------------------------------------
async def start(make_api: Any, slack: FakeSlack, **extra: Any) -> Any:
    api = await make_api(config(slack, users=USERS, task_url=TASK_URL, **extra))
    await person(api.hub.store, "alice@example.com", {"default": "member"})
    await person(api.hub.store, "victor@example.com", {"default": "viewer"})
    await create_project_(api.hub.store, "other")
    await person(api.hub.store, "olga@example.com", {"other": "owner"})
    return api


async def create_project_(store: Any, slug: str) -> None:
    async with store.write() as conn:
        await create_project(conn, SYSTEM, slug)


async def ask(api: Any, slack: FakeSlack, text: str, user: str = ALICE, *, user_name: str | None = None,
              **kwargs: Any) -> str:
    """A slash command; its immediate (ephemeral) answer, which must come well inside Slack's 3 s."""
    fields = command(slack, text, user=user, **kwargs)
    if user_name is not None:
        fields["user_name"] = user_name
    started = time.monotonic()
    r = await post(api, *form_request(fields))
    assert time.monotonic() - started < 2.5, "well inside Slack's 3 s"
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["response_type"] == "ephemeral"
    return str(answer["text"])


async def result_of(slack: FakeSlack, count: int) -> str:
    """The text posted to response_url by the ``count``-th stored command."""
    await slack.wait_for("response_url", count)
    return str(slack.responses[count - 1]["text"])


async def new_task(hub: Any, title: str, project: str = "default", **values: Any) -> dict[str, Any]:
    """A task made as the API makes one, routed after the commit (its message goes to Slack)."""
    async with hub.store.write() as conn:
        change = await create_task(conn, project, {"title": title, **values}, actor=SYSTEM)
    await after_commit(hub, change)
    return change.task


async def task_row(hub: Any, key: str, project: str = "default") -> dict[str, Any]:
    async with hub.store.read() as conn:
        task = await get_task(conn, project, key)
    assert task is not None
    return task


async def posted(slack: FakeSlack, task_id: str, count: int = 1) -> list[tuple[str, str, dict[str, Any]]]:
    """The Slack messages carrying this task's buttons: (channel, ts, message)."""
    async def there() -> bool:
        return len(_with_buttons(slack, task_id)) >= count

    await eventually(there)
    return _with_buttons(slack, task_id)


def _with_buttons(slack: FakeSlack, task_id: str) -> list[tuple[str, str, dict[str, Any]]]:
    return [(c, ts, m) for (c, ts), m in slack.messages.items()
            if any(b.get("value") == task_id for b in buttons(m))]


def click(slack: FakeSlack, channel: str, ts: str, action_id: str, user: str = ALICE, *,
          value: str | None = None) -> dict[str, Any]:
    """A click on a task button (docs.slack.dev, "block_actions payload"), in an attachment."""
    message = json.loads(json.dumps(slack.messages[(channel, ts)]))
    message.pop("replies", None)
    button = next((b for b in buttons(message) if b["action_id"] == action_id), None)
    return {
        "type": "block_actions",
        "user": {"id": user, "username": user.lower(), "name": user.lower(), "team_id": "T9TK3CUKW"},
        "api_app_id": "AABA1ABCD", "token": "9s8d9as89d8as9d8as989",
        "container": {"type": "message_attachment", "message_ts": ts, "attachment_id": 1, "channel_id": channel,
                      "is_ephemeral": False, "is_app_unfurl": False},
        "trigger_id": trigger(), "team": {"id": "T9TK3CUKW", "domain": "example"}, "enterprise": None,
        "is_enterprise_install": False, "channel": {"id": channel, "name": "alerts"}, "message": message,
        "state": {"values": {}}, "response_url": slack.response_url("actions"),
        "actions": [{
            "action_id": action_id, "block_id": "b1",
            "text": (button or {}).get("text", {"type": "plain_text", "text": "Mark done", "emoji": True}),
            "value": value if value is not None else (button or {}).get("value", action_id.rsplit(":", 1)[-1]),
            "type": "button", "action_ts": f"{time.time():.6f}",
        }],
    }


async def press(api: Any, payload: dict[str, Any]) -> dict[str, Any]:
    """Post a click; it is answered at once with an empty 200, then processed from the stored row."""
    before = {e.id for e in await stored_events(api)}
    started = time.monotonic()
    r = await post(api, *form_request({"payload": json.dumps(payload)}))
    assert time.monotonic() - started < 2.5
    assert r.status_code == 200 and r.text == "", r.text
    (row,) = [e for e in await stored_events(api) if e.id not in before]
    return await settled(api, row.id)


async def denials(hub: Any) -> list[dict[str, Any]]:
    return [e for e in await read_entries(hub.store) if e["action"] == "access.denied"]


# -- the verbs ---------------------------------------------------------------------------------------
async def test_new_list_assign_done_from_the_slash_command(make_api: Any, slack: FakeSlack) -> None:
    api = await start(make_api, slack)
    hub = api.hub
    assert await ask(api, slack, "task new Fix the &lt;login&gt; &amp; co") == "Creating “Fix the &lt;login&gt; &amp; co”…"
    assert await result_of(slack, 1) == "🆕 Created `T-1`: Fix the &lt;login&gt; &amp; co"
    task = await task_row(hub, "T-1")
    assert (task["title"], task["category"], task["created_by"]) == ("Fix the <login> & co", "todo", "alice@example.com")
    (event,) = await stored_events(api)
    assert (await settled(api, event.id))["status"] == "processed" and event.event_type == "command.task"
    (created,) = [e for e in await read_entries(hub.store) if e["action"] == "task.create"]
    assert (created["actor"], created["actor_name"], created["auth_method"], created["request_id"], created["target"]) == (
        "user", "alice@example.com", "slack", event.id, "T-1")
    (_, _, message) = (await posted(slack, task["id"]))[0]
    assert message["attachments"][0]["blocks"][0]["text"]["text"].endswith("T-1 created: Fix the &lt;login&gt; &amp; co")

    listing = await ask(api, slack, "task list")
    assert listing.startswith("*Open tasks in project `default`* (1)")
    assert "• `T-1` Fix the &lt;login&gt; &amp; co · todo" in listing
    assert await ask(api, slack, "task list mine") == "You have no open tasks in project `default`."

    assert await ask(api, slack, f"task assign T-1 <@{VICTOR}|victor>") == "Assigning `T-1`…"
    assert await result_of(slack, 2) == "👤 `T-1` is assigned to victor@example.com: Fix the &lt;login&gt; &amp; co"
    await ask(api, slack, "task assign 1 me")
    assert (await result_of(slack, 3)).startswith("👤 `T-1` is assigned to alice@example.com")
    assert "• `T-1`" in await ask(api, slack, "task list mine")
    await ask(api, slack, "task assign T-1 <mailto:Bob@Example.com|Bob@Example.com>")
    assert (await result_of(slack, 4)).startswith("assignee: no tidings user 'bob@example.com'")  # not a member
    await ask(api, slack, "task assign T-1 github:octocat")
    assert (await result_of(slack, 5)).startswith("👤 `T-1` is assigned to github:octocat")
    await ask(api, slack, "task assign T-1 nobody")
    assert (await result_of(slack, 6)).startswith("👤 `T-1` is assigned to nobody")
    await ask(api, slack, f"task assign T-1 <@{STRANGER}>")
    assert (await result_of(slack, 7)).startswith(f"<@{STRANGER}> is not linked to a tidings user")

    assert await ask(api, slack, "task done T-1") == "Marking `T-1` done…"
    assert await result_of(slack, 8) == "✔️ `T-1` is done: Fix the &lt;login&gt; &amp; co"
    await ask(api, slack, f"task done {task['id']}")
    assert await result_of(slack, 9) == "`T-1` was already done."
    assert await ask(api, slack, "task list") == "No open tasks in project `default`."
    assert "• `T-1` Fix the &lt;login&gt; &amp; co · done" in await ask(api, slack, "task list all")
    await ask(api, slack, "task done T-99")
    assert await result_of(slack, 10) == "No task `T-99` in project `default`."

    final = await task_row(hub, "T-1")
    assert (final["category"], final["status"], final["assignee"]) == ("done", "done", None)
    updates = [(e["actor_name"], e["auth_method"], e["after"]) for e in await read_entries(hub.store)
               if e["action"] == "task.update"]
    assert updates[0] == ("alice@example.com", "slack", {"assignee": "victor@example.com"})
    assert updates[-1] == ("alice@example.com", "slack", {"category": "done", "status": "done"})
    assert len(updates) == 5  # bob is no member: refused, nothing written
    assert await denials(hub) == []


async def test_a_command_named_task_takes_the_verbs_alone(make_api: Any, slack: FakeSlack) -> None:
    api = await start(make_api, slack, slash_command="/task")
    assert await ask(api, slack, "new Write the docs", name="/task") == "Creating “Write the docs”…"
    assert (await result_of(slack, 1)).startswith("🆕 Created `T-1`: Write the docs")
    assert await ask(api, slack, "task new And the tests", name="/task") == "Creating “And the tests”…"
    assert (await result_of(slack, 2)).startswith("🆕 Created `T-2`")
    assert "`T-2`" in await ask(api, slack, "list", name="/task")
    assert (await ask(api, slack, "status", name="/task")).startswith("*tidings status*"), "the others still answer"
    helped = await ask(api, slack, "help", name="/task")
    assert "`/task new &lt;title&gt;`" in helped and "`/task status`" in helped and "/task task" not in helped
    assert "This URL answers /task, not /tidings" in await ask(api, slack, "task list")


async def test_mistakes_are_answered_at_once_and_not_stored(make_api: Any, slack: FakeSlack) -> None:
    api = await start(make_api, slack)
    cases = {
        "task new": "give the new task a title",
        "task new    ": "give the new task a title",
        "task new " + "x" * 1001: "title: at most 1000 characters",
        "task new " + "y" * 100_000: "title: at most 1000 characters",
        "task new a\x00b": "control character",
        "task new tab\x1fbed": "control character",
        "task done": "done takes a task key",
        "task done T-1 T-2": "done takes one task key",
        "task done T-one": "done takes a task key",
        "task assign T-1": "assign takes a task key and who",
        "task assign T-1 @bob": "Escape channels, users, and links",
        "task assign T-1 not-an-email@": "not an email address",
        "task assign T-1 <b>": "who is &lt;b&gt;?",
        "task list everything": "list takes one of open, mine, all",
        "task list mine open": "list takes one of",
    }
    for text, says in cases.items():
        answer = await ask(api, slack, text)
        assert says in answer, (text[:40], answer)
        assert "Usage:" in answer and "\x00" not in answer
    unknown = await ask(api, slack, "task frobnicate <!channel>")
    assert unknown.startswith("Unknown task command `frobnicate`.") and "*Tasks*" in unknown
    assert "*Tasks*" in await ask(api, slack, "task") and "`/tidings task new &lt;title&gt;`" in await ask(api, slack, "")
    assert await stored_events(api) == []
    async with api.hub.store.read() as conn:
        assert (await conn.execute(select(tasks))).all() == []


# -- who may --------------------------------------------------------------------------------------
async def test_an_unlinked_slack_user_is_refused_at_once_and_audited(make_api: Any, slack: FakeSlack) -> None:
    api = await start(make_api, slack)
    hub = api.hub
    for text in ("task new Sneaky", "task list", "task done T-1"):
        answer = await ask(api, slack, text, user=STRANGER)
        assert answer.startswith("Your Slack user is not linked to a tidings user: ask an owner")
        assert f"add `{STRANGER}` to `users`" in answer and "Nothing was changed." in answer
    odd = await ask(api, slack, "task list", user="U\x00EVIL", user_name="E\x00ve")
    assert odd.startswith("Your Slack user is not linked") and "\x00" not in odd
    assert await stored_events(api) == []
    assert await ask(api, slack, "task new Boo", user=GHOST) == "Creating “Boo”…", "linked: stored, checked later"
    assert "linked to ghost@example.com, which is not an active tidings user" in await result_of(slack, 1)
    async with hub.store.read() as conn:
        assert (await conn.execute(select(tasks))).all() == []
    refused = [(e["actor"], e["actor_id"], e["auth_method"], e["project"], e["target"], e["outcome"], e["after"]["slack_user"])
               for e in await denials(hub)]
    assert refused == [
        ("user", f"slack:{STRANGER}", "slack", "default", "slack task new", "denied", STRANGER),
        ("user", f"slack:{STRANGER}", "slack", "default", "slack task list open", "denied", STRANGER),
        ("user", f"slack:{STRANGER}", "slack", "default", "slack task done T-1", "denied", STRANGER),
        ("user", None, "slack", "default", "slack task list open", "denied", None),
        ("user", f"slack:{GHOST}", "slack", "default", "slack task new", "denied", GHOST),
    ]


async def test_a_viewer_may_list_but_not_change_and_an_outsider_neither(make_api: Any, slack: FakeSlack) -> None:
    api = await start(make_api, slack)
    hub = api.hub
    await new_task(hub, "Existing")
    assert "`T-1` Existing" in await ask(api, slack, "task list", user=VICTOR)
    await ask(api, slack, "task new Mine now", user=VICTOR)
    refusal = await result_of(slack, 1)
    assert refusal == ("You (victor@example.com) may not do that: it needs the permission `task:write` in project "
                       "`default`, and your role there is viewer. Nothing was changed.")
    await ask(api, slack, "task done T-1", user=VICTOR)
    assert (await result_of(slack, 2)).startswith("You (victor@example.com) may not do that")
    outsider = await ask(api, slack, "task list", user=OLGA)
    assert "needs the permission `task:read` in project `default`, and your role there is none" in outsider
    assert (await task_row(hub, "T-1"))["category"] == "todo"
    async with hub.store.read() as conn:
        assert len((await conn.execute(select(tasks))).all()) == 1
    refused = [(e["actor_name"], e["auth_method"], e["target"], e["after"]["permission"], e["outcome"])
               for e in await denials(hub)]
    assert refused == [
        ("victor@example.com", "slack", "slack task new", "task:write", "denied"),
        ("victor@example.com", "slack", "slack task done T-1", "task:write", "denied"),
        ("olga@example.com", "slack", "slack task list open", "task:read", "denied"),
    ]


# -- reading, fast ------------------------------------------------------------------------------------
async def test_task_list_answers_within_slacks_3_s_with_at_most_20(make_api: Any, slack: FakeSlack) -> None:
    api = await start(make_api, slack, rate_limit="1000/second")
    async with api.hub.store.write() as conn:
        for i in range(1, 31):
            await create_task(conn, "default", {"title": f"Task <{i}>", "status": "done" if i % 10 == 0 else "todo",
                                                "assignee": "alice@example.com" if i % 2 else None}, actor=SYSTEM)
        await create_task(conn, "other", {"title": "Not here"}, actor=SYSTEM)
    listing = await ask(api, slack, "task list")
    lines = listing.split("\n")
    assert lines[0] == "*Open tasks in project `default`* (27)"
    assert lines[1] == "• `T-29` Task &lt;29&gt; · todo · alice@example.com" and len(lines) == 1 + 20 + 1
    assert lines[-1] == "_…and 7 more (`tidings task list` shows them all)_"
    assert "Not here" not in listing and "`T-30`" not in listing
    mine = await ask(api, slack, "task list mine")
    assert mine.startswith("*Your open tasks in project `default`* (15)") and "alice@example.com" not in mine
    every = await ask(api, slack, "task list all")
    assert every.startswith("*Tasks in project `default`* (30)") and "`T-30` Task &lt;30&gt; · done" in every
    assert await stored_events(api) == [], "reading is not stored"


# -- the buttons ------------------------------------------------------------------------------------------
async def test_task_messages_carry_the_buttons_within_block_kits_limits(make_api: Any, slack: FakeSlack) -> None:
    api = await start(make_api, slack)
    hub = api.hub
    task = await new_task(hub, "Rotate <keys>", priority="critical")
    (_, _, message) = (await posted(slack, task["id"]))[0]
    shown = buttons(message)
    assert [(b["text"]["text"], b["action_id"]) for b in shown] == [
        ("Mark done", f"tidings_task:done:{task['id']}"), ("Assign to me", f"tidings_task:assign:{task['id']}"),
        ("Open", f"tidings_task:open:{task['id']}")]
    assert [b.get("value") for b in shown[:2]] == [task["id"]] * 2
    assert shown[2]["url"] == "https://tidings.example.com/projects/default/tasks/T-1"
    assert not [b for b in shown if b["action_id"] == "tidings_ack"], "a task's message is not an alert to acknowledge"
    kinds = [b["type"] for b in blocks_of(message)]
    assert kinds[-3:] == ["actions", "divider", "context"]

    def render(msg: Message, **extra: Any) -> dict[str, Any]:
        s = parse_config({"integrations": {"slack": {"kind": "slack", "token": "xoxb-1-a", "channel": "#a", **extra}}})
        return SlackNotifier("slack", s.integrations["slack"], local_context()).render(msg)

    done = task_message(_change({**task, "category": "done", "status": "done"}))
    assert [b["text"]["text"] for b in buttons(render(done, signing_secret=SIGNING))] == ["Assign to me"]
    assert buttons(render(done)) == [], "no buttons where nobody receives their clicks (no signing_secret)"
    crowded = Message("T-1 created: x", fields={f"f{i}": "v" * 200 for i in range(50)},
                      labels={"source": "tasks", "task": "T-1", "task_id": task["id"], "status": "todo"})
    payload = render(crowded, signing_secret=SIGNING)
    assert len(blocks_of(payload)) <= 50 and len(buttons(payload)) == 2
    forged = Message("x", labels={"source": "tasks", "task": "T-1", "task_id": "../../etc"})
    assert buttons(render(forged, signing_secret=SIGNING)) == []


def _change(task: dict[str, Any]) -> Any:
    from tidings.sync.tasks import TaskChange

    return TaskChange("task.update", task, {"status": task["category"]})


async def test_mark_done_and_assign_to_me_clicks(make_api: Any, slack: FakeSlack) -> None:
    api = await start(make_api, slack)
    hub = api.hub
    task = await new_task(hub, "Renew the <cert>")
    ((channel, ts, _),) = await posted(slack, task["id"])

    assign = await press(api, click(slack, channel, ts, f"tidings_task:assign:{task['id']}"))
    assert assign["status"] == "processed" and assign["event_type"] == "block_actions.tidings_task"
    assert assign["result"]["outcome"] == "changed" and assign["result"]["updated"] == f"{channel}:{ts}"
    assert (await task_row(hub, "T-1"))["assignee"] == "alice@example.com"
    (update,) = slack.calls_of("chat.update")
    body = update.json()
    assert (body["channel"], body["ts"]) == (channel, ts)
    assert f"👤 Assigned to alice@example.com by <@{ALICE}>" in contexts(body)
    assert [b["text"]["text"] for b in buttons(body)] == ["Mark done", "Assign to me", "Open"]

    done = await press(api, click(slack, channel, ts, f"tidings_task:done:{task['id']}"))
    assert done["result"]["outcome"] == "changed"
    assert (await task_row(hub, "T-1"))["category"] == "done"
    body = slack.calls_of("chat.update")[-1].json()
    assert [b["text"]["text"] for b in buttons(body)] == ["Assign to me", "Open"], "nothing left to mark done"
    assert f"✔️ Marked done by <@{ALICE}>" in contexts(body) and "Assigned to alice@example.com" in contexts(body)
    assert slack.messages[(channel, ts)]["attachments"] == body["attachments"], "Slack shows the update"
    entries = [(e["action"], e["actor_name"], e["auth_method"], e["after"]) for e in await read_entries(hub.store)
               if e["action"] == "task.update"]
    assert entries == [("task.update", "alice@example.com", "slack", {"assignee": "alice@example.com"}),
                       ("task.update", "alice@example.com", "slack", {"category": "done", "status": "done"})]

    async def replies() -> bool:  # after_commit routed both changes: replies in the task's thread
        return len(slack.messages[(channel, ts)].get("replies", [])) == 2

    await eventually(replies)

    # A stale button (the click came from an old copy of the message): nothing changes, the clicker is told.
    stale = await press(api, click(slack, channel, ts, f"tidings_task:assign:{task['id']}"))
    assert stale["result"]["outcome"] == "unchanged"
    await slack.wait_for("response_url", 1)
    assert slack.responses[-1]["text"] == "`T-1` was already assigned to alice@example.com."
    opened = await post(api, *form_request({"payload": json.dumps(
        click(slack, channel, ts, f"tidings_task:open:{task['id']}"))}))
    assert opened.status_code == 200
    assert [e.status for e in await stored_events(api) if e.event_type.endswith("_open")] == ["ignored"]
    assert await denials(hub) == []


async def test_clicks_by_strangers_viewers_and_for_other_projects_are_refused(make_api: Any, slack: FakeSlack) -> None:
    api = await start(make_api, slack)
    hub = api.hub
    task = await new_task(hub, "Ours")
    theirs = await new_task(hub, "Theirs", project="other")
    ((channel, ts, _),) = await posted(slack, task["id"])
    done = f"tidings_task:done:{task['id']}"

    stranger = await press(api, click(slack, channel, ts, done, STRANGER))
    assert stranger["result"]["outcome"] == "denied"
    assert (await result_of(slack, 1)).startswith("Your Slack user is not linked to a tidings user")
    viewer = await press(api, click(slack, channel, ts, done, VICTOR))
    assert viewer["result"]["outcome"] == "denied"
    assert "needs the permission `task:write`" in await result_of(slack, 2)
    # A forged click naming another project's task (signed: it came through Slack, but not from our button).
    forged = click(slack, channel, ts, done, value=theirs["id"])
    forged["actions"][0]["action_id"] = f"tidings_task:done:{theirs['id']}"
    refused = await press(api, forged)
    assert refused["result"]["outcome"] == "refused"
    assert await result_of(slack, 3) == "No such task in project `default`. Nothing was changed."
    gone = click(slack, channel, ts, done, value="0190d7a4-0000-7000-8000-000000000001")
    gone["actions"][0]["action_id"] = "tidings_task:done:0190d7a4-0000-7000-8000-000000000001"
    assert (await press(api, gone))["result"]["outcome"] == "not_found"

    assert (await task_row(hub, "T-1"))["category"] == "todo"
    assert (await task_row(hub, "T-1", "other"))["category"] == "todo"
    assert slack.calls_of("chat.update") == []
    refusals = [(e["actor_name"], e["target"], e["outcome"]) for e in await denials(hub)]
    assert refusals == [(f"{STRANGER} ({STRANGER.lower()})", f"task/{task['id']}", "denied"),
                        ("victor@example.com", f"task/{task['id']}", "denied"),
                        ("alice@example.com", f"task/{theirs['id']}", "denied")]

    for action_id, value, says in [
        ("tidings_task:done:not-a-task-id", "not-a-task-id", "action_id is tidings_task"),
        ("tidings_task:close:" + task["id"], task["id"], "action_id is tidings_task"),
        (done, theirs["id"], "value is the task id"),
    ]:
        bad = click(slack, channel, ts, done, value=value)
        bad["actions"][0]["action_id"] = action_id
        r = await post(api, *form_request({"payload": json.dumps(bad)}))
        assert r.status_code == 400 and says in r.json()["detail"], r.text


async def test_a_click_on_a_message_sent_by_incoming_webhook_updates_it_through_response_url(
    make_api: Any, slack: FakeSlack
) -> None:
    data = {"integrations": {"slack": {"kind": "slack", "webhook_url": slack.webhook_url, "api_url": slack.api_url, "signing_secret": SIGNING,
                                       "users": USERS, "rate_limit": "50/second"}}, "default": {"to": ["slack"]}}
    api = await make_api(data)
    await person(api.hub.store, "alice@example.com", {"default": "member"})
    task = await new_task(api.hub, "Hooked")

    async def sent() -> bool:
        return len(slack.hook_messages) == 1

    await eventually(sent)
    message = slack.hook_messages[0]
    assert [b["text"]["text"] for b in buttons(message)] == ["Mark done", "Assign to me"], "no task_url: no Open"
    slack.messages[("C0ALERTS", "1.000001")] = {"ts": "1.000001", **message}  # as Slack keeps it
    pressed = await press(api, click(slack, "C0ALERTS", "1.000001", f"tidings_task:done:{task['id']}"))
    assert pressed["result"]["updated"] == "response_url"
    await slack.wait_for("response_url", 1)
    (replaced,) = slack.responses
    assert replaced["replace_original"] is True and "Marked done by" in contexts(replaced)
    assert [b["text"]["text"] for b in buttons(replaced)] == ["Assign to me"]
    assert slack.calls_of("chat.update") == []


async def test_a_retried_command_creates_one_task(make_api: Any, slack: FakeSlack) -> None:
    api = await start(make_api, slack)
    slack.script("response_url", Scripted(status=503))
    await ask(api, slack, "task new Only once")
    (row,) = await stored_events(api)
    stored = await settled(api, row.id)
    assert stored["status"] == "processed" and stored["attempts"] == 2
    assert slack.responses[-1]["text"] == "🆕 Created `T-1`: Only once"
    async with api.hub.store.read() as conn:
        assert len((await conn.execute(select(tasks))).all()) == 1


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        ({"users": {"alice": "alice@example.com"}}, "not a Slack user id"),
        ({"users": {ALICE: "alice"}}, "not an email address"),
        ({"task_url": "javascript:alert(1)"}, "http:// or https://"),
        ({"task_url": "https://x.example/{key} y"}, "spaces"),
    ],
)
def test_settings_are_checked(extra: dict[str, Any], says: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"integrations": {"slack": {"kind": "slack", "signing_secret": SIGNING, **extra}}})
    assert any(says in p for p in info.value.problems), info.value.problems


def test_the_users_map_is_normalized() -> None:
    s = parse_config({"integrations": {"slack": {"kind": "slack", "signing_secret": SIGNING, "users": USERS}}})
    assert s.integrations["slack"].users[VICTOR] == "victor@example.com"
