"""`tidings send --at/--in` schedules, `tidings messages show` says so, `tidings cancel ID` cancels;
a past time sends at once; bad timing is one line and exit 1."""

from __future__ import annotations

import datetime as dt
import time

from cli_support import Project, db_rows, tidings


def test_send_in_then_show_and_cancel(project: Project) -> None:
    p = project.path
    sent = tidings(p, "send", "--title", "Backup reminder", "--in", "2h", "--json").ok().json
    assert sent["status"] == "scheduled" and sent["deliveries"] == []
    assert abs(sent["send_at"] - (time.time() + 7200)) < 30
    assert db_rows(p, "SELECT status FROM schedules WHERE message_id = ?", sent["id"]) == [("scheduled",)]
    shown = tidings(p, "messages", "show", sent["id"]).ok().out
    assert "scheduled (send at " in shown

    human = tidings(p, "cancel", sent["id"][:12]).ok().out  # a unique start of the id
    assert f"message {sent['id']} cancelled" in human
    assert db_rows(p, "SELECT status, cancelled_by FROM schedules WHERE message_id = ?", sent["id"])[0][0] == "cancelled"
    assert db_rows(p, "SELECT count(*) FROM deliveries WHERE message_id = ?", sent["id"]) == [(0,)]
    [(actor,)] = db_rows(p, "SELECT actor_name FROM audit_log WHERE action = 'message.cancel'")
    assert actor.startswith("cli:")
    assert ") by cli:" in tidings(p, "messages", "show", sent["id"]).ok().out.split("\n")[2]


def test_send_at_an_iso_time_and_cancel_refusals(project: Project) -> None:
    p = project.path
    at = (dt.datetime.now(dt.UTC) + dt.timedelta(days=2)).replace(microsecond=0)
    line = tidings(p, "send", "--title", "Later", "--at", at.isoformat()).ok().out
    assert "scheduled for " + at.isoformat() in line
    now = tidings(p, "send", "--title", "Past", "--at", "2020-01-01T00:00:00Z", "--json").ok().json
    assert [d["status"] for d in now["deliveries"]] == ["delivered"]  # a time past: sent at once
    tidings(p, "cancel", now["id"]).one_line_error("was not scheduled", code=1)
    tidings(p, "cancel", "ffffffffffff").one_line_error("ffffffffffff", code=1)


def test_bad_timing_is_one_line(project: Project) -> None:
    p = project.path
    tidings(p, "send", "--title", "x", "--at", "2030-01-01T09:00").one_line_error("--at", "no time zone offset")
    tidings(p, "send", "--title", "x", "--in", "soon").one_line_error("--in", "invalid duration")
    tidings(p, "send", "--title", "x", "--in", "1h", "--at", "2030-01-01T09:00Z").one_line_error("not both")
    tidings(p, "send", "--title", "x", "--in", "900d").one_line_error("at most 366 days ahead")
    assert db_rows(p, "SELECT count(*) FROM schedules") == [(0,)]
