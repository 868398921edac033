"""``throughput.py --recipients``: a fan-out to people beside the same fan-out to integrations.

Each message goes to 50 deliveries, counted delivered in the database and received by the local
peers (bench/_peers.py: a Slack Web API and an SMTP server, each in its own process):

  recipients    one route ``to: ["@everyone"]``, a group of 50 people: one in five by email
                (the email integration mails them), the others by Slack DM (the bot posts to
                their user id). Each person has preference rows and the project has topics,
                default preferences and quiet hours, so planning resolves preferences for every
                person (and, once recipients/quiet.py is wired into recipients/plan.py, quiet
                hours: the window is set away from now with ``deliver`` for every priority, so
                that every delivery still goes out), and each delivery is addressed at dispatch;
  integrations  the default route ``to:`` 50 integrations, one per person: 10 email integrations
                (each mailing one address) and 40 Slack bot integrations, to the same peers.

Same dispatcher settings on both sides (``max_inflight`` 4 x concurrency); each side's lanes may
fill it. The figure is deliveries per second; the ratio recipients / integrations (goal >= 0.8).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
import uuid
from pathlib import Path
from typing import Any

from _peers import SLACK_TOKEN, PeerProcess

FANOUT = 50
EMAIL_EVERY = 5
"""One person (and one integration) in five is reached by email, the others by Slack."""
RAISED_RATE = "1000000/second"
LOCAL = ["127.0.0.1/32", "::1/128"]


def _by_email(i: int) -> bool:
    return i % EMAIL_EVERY == 0


def _slack(peer: PeerProcess, concurrency: int) -> dict[str, Any]:
    return {"kind": "slack", "token": SLACK_TOKEN, "channel": "#bench", "api_url": peer.slack_api,
            "concurrency": concurrency, "rate_limit": RAISED_RATE, "burst": 10_000}


def _email(peer: PeerProcess, concurrency: int, to: str) -> dict[str, Any]:
    return {"kind": "email", "host": "127.0.0.1", "port": peer.port, "security": "none", "allow_insecure": True,
            "from_address": "tidings@bench.example", "to": [to], "concurrency": concurrency,
            "rate_limit": RAISED_RATE, "burst": 10_000}


def _quiet_hours_away_from_now() -> dict[str, Any]:
    """A daily one-hour window twelve hours from now (UTC), delivering every priority anyway."""
    start = dt.datetime.now(dt.UTC) + dt.timedelta(hours=12)
    end = start + dt.timedelta(hours=1)
    return {"timezone": "UTC", "windows": [{"days": "daily", "start": start.strftime("%H:00"),
                                            "end": end.strftime("%H:00")}],
            "policy": dict.fromkeys(("critical", "high", "medium", "low", "info"), "deliver")}


def config(tmp: Path, side: str, slack: PeerProcess, smtp: PeerProcess, concurrency: int, email_c: int) -> Path:
    db = f"sqlite:///{tmp / f'{side}.db'}"
    doc: dict[str, Any] = {"server": {"database": db, "allow_destinations": LOCAL},
                           "dispatcher": {"batch": 500, "max_inflight": 4 * concurrency}}
    if side == "recipients":
        doc["integrations"] = {"chat": _slack(slack, 4 * concurrency), "mail": _email(smtp, email_c, "ops@bench.example")}
        doc["default"] = {"to": ["@everyone"], "topic": "deploys"}
        doc["projects"] = {"default": {
            "topics": {"deploys": {}, "security": {"required": True}},
            "preferences": {"deploys": {"*": True}, "*": {"*": True}},
            "quiet_hours": _quiet_hours_away_from_now(),
        }}
    else:
        doc["integrations"] = {
            f"p{i:02d}": _email(smtp, email_c, f"p{i:02d}@bench.example") if _by_email(i) else _slack(slack, concurrency)
            for i in range(FANOUT)}
        doc["default"] = {"to": list(doc["integrations"])}
    path = tmp / f"{side}.yaml"
    path.write_text(json.dumps(doc))
    return path


async def add_people(hub: Any) -> None:
    """50 people in the group ``everyone``, each with preference rows, as the recipients API writes them."""
    from sqlalchemy import insert

    from tidings.store.recipient_tables import preferences, recipient_group_members, recipient_groups, recipients

    now, group = time.time(), str(uuid.uuid4())
    people = [{"id": str(uuid.uuid4()), "project": "default", "name": f"p{i:02d}", "display_name": f"Person {i}",
               "email": f"p{i:02d}@bench.example" if _by_email(i) else None,
               "slack_user": None if _by_email(i) else f"U{i:08d}", "timezone": "Europe/Berlin",
               "created_at": now, "updated_at": now} for i in range(FANOUT)]
    prefs = [{"recipient_id": p["id"], "topic": t, "channel": c, "enabled": True, "updated_at": now}
             for p in people for t, c in (("", ""), ("builds", "mail"), ("builds", "chat"))]
    async with hub.require_store().write() as conn:
        await conn.execute(insert(recipients), people)
        await conn.execute(insert(recipient_groups).values(id=group, project="default", name="everyone",
                                                           created_at=now, updated_at=now))
        await conn.execute(insert(recipient_group_members),
                           [{"group_id": group, "recipient_id": p["id"], "position": i} for i, p in enumerate(people)])
        await conn.execute(insert(preferences), prefs)
    await hub.directory.reload("default")


async def rate(side: str, slack: PeerProcess, smtp: PeerProcess, messages: list[dict[str, Any]], concurrency: int,
               email_c: int, tmp: Path) -> float:
    """Deliveries per second: ``messages`` through Hub.notify, each to 50 deliveries, until the
    database marks them all delivered and the peers received them."""
    from sqlalchemy import func, select

    from tidings import Hub, Message
    from tidings.store.tables import deliveries

    hub = Hub.from_config(config(tmp, side, slack, smtp, concurrency, email_c))
    want = len(messages) * FANOUT
    built = [Message(**m) for m in messages]
    async with hub:
        if side == "recipients":
            await add_people(hub)
        store = hub.require_store()
        slack.reset()
        smtp.reset()
        it = iter(built)

        async def producer() -> None:
            for m in it:
                await hub.notify(m)

        started = time.perf_counter()
        await asyncio.gather(*(producer() for _ in range(concurrency)))
        deadline = time.monotonic() + 300
        while slack.total + smtp.total < want:
            if time.monotonic() > deadline:
                raise SystemExit(f"{side}: the peers received {slack.total + smtp.total} of {want}")
            await asyncio.sleep(0.005)
        while True:
            async with store.read() as conn:
                done = (await conn.execute(select(func.count()).where(deliveries.c.status == "delivered"))).scalar()
            if done >= want:
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"{side}: {done} of {want} deliveries delivered")
            await asyncio.sleep(0.02)
        elapsed = time.perf_counter() - started
    return want / elapsed
