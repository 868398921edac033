"""Order within a thread, end to end: a backlog of alert threads (a medium firing, a high update,
a critical resolve each) reaches a rate-limited Slack in the order each thread was accepted, sent
by two workers on one database (SQLite and PostgreSQL). Before, the critical resolves went out
first: each showed up as a new top-level post and its firing as a broadcast reply."""

from __future__ import annotations

import re
from typing import Any

from fake_slack import FakeSlack, Scripted
from helpers import eventually
from sqlalchemy import select

from tidings import Message
from tidings.store.tables import deliveries, messages

THREADS = 4
DEAD = 3
"""This thread's firing goes to an archived channel: it dies, and the rest of its thread goes on."""
STEPS = ("fire", "still", "resolve")
TITLE = re.compile(r"\b(fire|still|resolve)-(\d+)\b")


def backlog() -> list[Message]:
    """Accepted step by step across the threads, priorities rising with each step, plus
    unthreaded noise: by priority alone every resolve would go first."""
    out: list[Message] = []
    for step, priority in zip(STEPS, ("medium", "high", "critical"), strict=True):
        for i in range(THREADS):
            labels = {"channel": "old"} if step == "fire" and i == DEAD else {}
            out.append(Message(f"{step}-{i}", f"web-{i}", priority=priority, thread_key=f"disk:web-{i}",
                               resolves=step == "resolve", labels=labels))
        out += [Message(f"noise {n} after {step}", priority="info") for n in range(3)]
    return out


async def test_a_backlog_reaches_slack_in_thread_order_with_two_workers(make_hub: Any, slack: FakeSlack) -> None:
    chat = {
        "kind": "slack", "token": slack.token, "channel": "#alerts", "api_url": slack.api_url,
        "rate_limit": "3/second", "burst": 1,  # a lane takes 7 at a time: both workers have work
        "retry": {"base": 0.2, "cap": 1.0, "max_attempts": 20}, "breaker": {"failures": 1000},
    }
    config = {"integrations": {"chat": chat}, "default": {"to": ["chat"]}}
    # Slack rate-limits the first posts: whichever heads they are retry, and their threads wait.
    slack.script("chat.postMessage", *[Scripted(status=429, headers={"Retry-After": "1"}) for _ in range(3)])
    workers = [await make_hub(config) for _ in range(2)]
    writer = await make_hub(config, dispatch=False)
    receipts = await writer.notify_many(backlog())
    store = writer.require_store()

    async def settled() -> bool:
        async with store.read() as conn:
            statuses = [r.status for r in await conn.execute(select(deliveries.c.status))]
        return len(statuses) == len(receipts) and all(s in ("delivered", "dead") for s in statuses)

    await eventually(settled, timeout=60)
    async with store.read() as conn:
        rows = (await conn.execute(select(messages.c.title, deliveries.c.status, deliveries.c.attempts)
                                   .join(messages, messages.c.id == deliveries.c.message_id))).all()
    status = {r.title: r.status for r in rows}
    assert {t for t, s in status.items() if s != "delivered"} == {f"fire-{DEAD}"}
    assert max(r.attempts for r in rows if r.title.startswith("fire-")) >= 2, "a thread's head was retried"
    sent = [w.metrics.registry.get_sample_value("tidings_deliveries_total", {"integration": "chat", "status": "delivered"})
            for w in workers]
    assert all(sent), f"both workers delivered: {sent}"

    # Every call Slack got, rate-limited ones included, in the order it got them.
    attempts: dict[int, list[tuple[str, str, dict[str, Any]]]] = {i: [] for i in range(THREADS)}
    for call in slack.calls:
        body = call.json()
        found = TITLE.search(body.get("text", ""))
        if found and call.method in ("chat.postMessage", "chat.update"):
            attempts[int(found.group(2))].append((call.method, found.group(1), body))
    for i, calls in attempts.items():
        posted = [step for method, step, _ in calls if method == "chat.postMessage"]
        in_order = [s for n, s in enumerate(posted) if n == 0 or posted[n - 1] != s]
        assert in_order == list(STEPS), f"thread {i}: Slack got {posted}"
        last = {step: body for method, step, body in calls if method == "chat.postMessage"}
        assert not any(b.get("reply_broadcast") for b in last.values()), f"thread {i} was reopened"
        if i == DEAD:
            # Its firing died: the next message starts the thread, the resolve answers in it.
            assert "thread_ts" not in last["still"] and last["resolve"]["thread_ts"]
            continue
        assert "thread_ts" not in last["fire"], f"thread {i}: the firing must start the thread"
        (ts,) = [ts for (_, ts), m in slack.messages.items() if (t := TITLE.search(m["text"])) and t.group(0) == f"fire-{i}"]
        assert last["still"]["thread_ts"] == last["resolve"]["thread_ts"] == ts
        steps = [(method, step) for method, step, _ in calls]
        first_update = steps.index(("chat.update", "fire"))
        assert steps[first_update - 1] == ("chat.postMessage", "still"), f"thread {i}: resolved in place after the update"
