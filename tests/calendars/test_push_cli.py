"""`tidings calendar reconcile NAME`: one pass from the CLI (deletes our orphan, pushes a missing
event again through the outbox), clear one-line errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from calendars.push_support import Tasks, calendar_config
from cli_support import tidings_async
from peers.google_calendar import GoogleCalendarAPI


async def test_reconcile_from_the_cli(tmp_path: Path, db_url: str, make_hub: Any, gcal: GoogleCalendarAPI) -> None:
    config = {**calendar_config("google_calendar", gcal.url),
              "server": {"database": db_url, "allow_destinations": ["127.0.0.1"]}}
    config["integrations"]["hook"] = {"kind": "webhook", "url": gcal.url}
    (tmp_path / "tidings.yaml").write_text(yaml.safe_dump(config))
    hub = await make_hub(calendar_config("google_calendar", gcal.url), migrate=False, dispatch=False)
    tasks = Tasks(hub)
    await tasks.create(title="to push", due="2026-12-10")
    orphan = gcal.add(summary="old", date="2026-12-01",
                      private={"tidings_task": "0193a7c2-0000-7000-8000-000000000000", "tidings_project": "default"})
    foreign = gcal.add(summary="Lunch", date="2026-12-10")

    ran = (await tidings_async(tmp_path, "calendar", "reconcile", "cal", "--json")).ok()
    assert ran.json == {"integration": "cal", "listed": 1, "kept": 0, "deleted": 1, "repushed": 1}
    assert set(gcal.live()) == {foreign} and orphan not in gcal.live()
    human = (await tidings_async(tmp_path, "calendar", "reconcile", "cal")).ok().out
    assert human.startswith("reconciled cal: 0 events of ours")
    (await tidings_async(tmp_path, "calendar", "reconcile", "hook")).one_line_error("not a calendar integration")
    gcal.fail(500)
    (await tidings_async(tmp_path, "calendar", "reconcile", "cal")).one_line_error("HTTP 500")
