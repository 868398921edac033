"""Quiet hours, computed with frozen instants: DST changes of 2026 in Europe/Berlin (29 Mar,
25 Oct) and America/New_York (8 Mar, 1 Nov), the 24:00 boundary, overnight windows, weekends,
merged periods, entering at the start and leaving at the end, and what config refuses."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from tidings import Message
from tidings.config.people import ProjectSettings, QuietHours
from tidings.message import Priority
from tidings.recipients.model import People, Person
from tidings.recipients.quiet import (
    apply_quiet_hours,
    covers_whole_week,
    decide_quiet,
    instant,
    parse_days,
    quiet_period,
)
from tidings.routing import Target

BERLIN, NEW_YORK = "Europe/Berlin", "America/New_York"


def at(local: str, zone: str) -> float:
    """The instant of an unambiguous local wall-clock time (``2026-03-28T19:00``)."""
    return dt.datetime.fromisoformat(local).replace(tzinfo=ZoneInfo(zone)).timestamp()


def local(ts: float | None, zone: str) -> str | None:
    return None if ts is None else dt.datetime.fromtimestamp(ts, ZoneInfo(zone)).isoformat(timespec="minutes")


def qh(*windows: dict[str, str], **extra: Any) -> QuietHours:
    return QuietHours(windows=list(windows), **extra)


NIGHTS = qh({"start": "19:00", "end": "08:00"})
OFFICE = qh({"days": "daily", "start": "19:00", "end": "08:00"}, {"days": "weekends"})
"""Quiet outside Mon–Fri 08:00–19:00: one period from Friday 19:00 to Monday 08:00."""
WEEKNIGHTS = qh({"days": "mon-fri", "start": "19:00", "end": "08:00"}, {"days": "sat,sun"})
"""The nights that start Monday to Friday, and weekends: Sunday night is not among them."""
LATE = qh({"days": "daily", "start": "22:00", "end": "24:00"}, {"days": "daily", "start": "00:00", "end": "06:30"})
"""Two windows touching at midnight (24:00 and 00:00): one period 22:00–06:30."""
AT_2_30 = qh({"days": "sun", "start": "02:30", "end": "05:00"})
UNTIL_2_30 = qh({"days": "sat", "start": "22:00", "end": "02:30"})

# (quiet hours, zone, now (local wall clock; an ambiguous one is its first occurrence), end of the period or None, real hours left)
CASES = [
    # Europe/Berlin, spring forward on Sun 29 Mar 2026 at 02:00 -> 03:00: the night is 12 hours
    (NIGHTS, BERLIN, "2026-03-28T19:00", "2026-03-29T08:00+02:00", 12.0),
    (NIGHTS, BERLIN, "2026-03-29T01:59", "2026-03-29T08:00+02:00", 5 + 1 / 60),
    (NIGHTS, BERLIN, "2026-03-29T03:00", "2026-03-29T08:00+02:00", 5.0),
    (NIGHTS, BERLIN, "2026-03-29T08:00", None, None),
    (NIGHTS, BERLIN, "2026-03-29T07:59", "2026-03-29T08:00+02:00", 1 / 60),
    # Europe/Berlin, fall back on Sun 25 Oct 2026 at 03:00 -> 02:00: the night is 14 hours
    (NIGHTS, BERLIN, "2026-10-24T19:00", "2026-10-25T08:00+01:00", 14.0),
    (NIGHTS, BERLIN, "2026-10-25T04:00", "2026-10-25T08:00+01:00", 4.0),
    (NIGHTS, BERLIN, "2026-10-24T18:59", None, None),
    # America/New_York, spring forward on Sun 8 Mar 2026, fall back on Sun 1 Nov 2026
    (NIGHTS, NEW_YORK, "2026-03-07T19:00", "2026-03-08T08:00-04:00", 12.0),
    (NIGHTS, NEW_YORK, "2026-10-31T19:00", "2026-11-01T08:00-05:00", 14.0),
    (NIGHTS, NEW_YORK, "2026-11-01T01:30", "2026-11-01T08:00-05:00", 7.5),  # 01:30 EDT, the first one
    (NIGHTS, NEW_YORK, "2026-11-01T12:00", None, None),
    # a start that does not exist (02:30 on spring-forward day) begins at 03:00, the first instant after the gap
    (AT_2_30, BERLIN, "2026-03-29T01:59", None, None),
    (AT_2_30, BERLIN, "2026-03-29T03:00", "2026-03-29T05:00+02:00", 2.0),
    (AT_2_30, NEW_YORK, "2026-03-08T03:00", "2026-03-08T05:00-04:00", 2.0),
    (AT_2_30, NEW_YORK, "2026-03-08T01:59", None, None),
    # an end that does not exist ends at 03:00; an ambiguous one at its first occurrence
    (UNTIL_2_30, BERLIN, "2026-03-28T23:00", "2026-03-29T03:00+02:00", 3.0),
    (UNTIL_2_30, BERLIN, "2026-10-24T23:00", "2026-10-25T02:30+02:00", 3.5),
    (UNTIL_2_30, NEW_YORK, "2026-10-31T23:00", "2026-11-01T02:30-05:00", 4.5),  # 02:30 exists once there
    # 24:00 is the end of the day, and windows touching at midnight are one period
    (LATE, BERLIN, "2026-06-01T23:59", "2026-06-02T06:30+02:00", 6 + 31 / 60),
    (LATE, BERLIN, "2026-06-01T22:00", "2026-06-02T06:30+02:00", 8.5),
    (LATE, BERLIN, "2026-06-02T00:00", "2026-06-02T06:30+02:00", 6.5),
    (LATE, BERLIN, "2026-06-02T06:30", None, None),
    (LATE, BERLIN, "2026-06-01T21:59", None, None),
    (qh({"days": "fri", "start": "20:00", "end": "24:00"}), BERLIN, "2026-06-05T23:59", "2026-06-06T00:00+02:00", 1 / 60),
    (qh({"days": "fri", "start": "20:00", "end": "24:00"}), BERLIN, "2026-06-06T00:00", None, None),
    # weekends and merged periods: Friday 19:00 to Monday 08:00, across the spring-forward weekend too
    (OFFICE, BERLIN, "2026-06-05T19:00", "2026-06-08T08:00+02:00", 61.0),
    (OFFICE, BERLIN, "2026-06-06T12:00", "2026-06-08T08:00+02:00", 44.0),
    (OFFICE, BERLIN, "2026-06-08T07:59", "2026-06-08T08:00+02:00", 1 / 60),
    (OFFICE, BERLIN, "2026-06-08T08:00", None, None),
    (OFFICE, BERLIN, "2026-06-05T18:59", None, None),
    (OFFICE, BERLIN, "2026-06-09T03:00", "2026-06-09T08:00+02:00", 5.0),
    (OFFICE, BERLIN, "2026-03-27T19:00", "2026-03-30T08:00+02:00", 60.0),
    (OFFICE, NEW_YORK, "2026-10-30T19:00", "2026-11-02T08:00-05:00", 62.0),
    (WEEKNIGHTS, BERLIN, "2026-06-05T19:00", "2026-06-08T00:00+02:00", 53.0),
    (WEEKNIGHTS, BERLIN, "2026-06-08T03:00", None, None),
]


@pytest.mark.parametrize(("quiet", "zone", "now", "end", "hours"), CASES)
def test_the_quiet_period_an_instant_is_in_and_when_it_ends(
    quiet: QuietHours, zone: str, now: str, end: str | None, hours: float | None
) -> None:
    ts = at(now, zone)
    period = quiet_period(quiet, zone, ts)
    assert (None if period is None else dt.datetime.fromtimestamp(period.end, ZoneInfo(zone)).isoformat(timespec="minutes")) == (
        None if end is None else end)
    if hours is not None:
        assert period is not None and period.end - ts == pytest.approx(hours * 3600, abs=1)


def test_a_remembered_answer_is_not_used_outside_the_instants_it_holds_for() -> None:
    # Asked in this order the cache sees: quiet, then a later free instant, then quiet again.
    for now, quiet in (("2026-06-01T23:00", True), ("2026-06-02T12:00", False), ("2026-06-02T23:30", True),
                       ("2026-06-02T21:59", False), ("2026-06-02T22:00", True)):
        assert (quiet_period(LATE, BERLIN, at(now, BERLIN)) is not None) is quiet, now


def test_wall_clock_times_in_gaps_and_overlaps() -> None:
    berlin = ZoneInfo(BERLIN)
    assert local(instant(dt.datetime(2026, 3, 29, 2, 30), berlin), BERLIN) == "2026-03-29T03:00+02:00"
    assert local(instant(dt.datetime(2026, 3, 29, 2, 0), berlin), BERLIN) == "2026-03-29T03:00+02:00"
    assert local(instant(dt.datetime(2026, 10, 25, 2, 30), berlin), BERLIN) == "2026-10-25T02:30+02:00"
    new_york = ZoneInfo(NEW_YORK)
    assert local(instant(dt.datetime(2026, 3, 8, 2, 59), new_york), NEW_YORK) == "2026-03-08T03:00-04:00"
    assert local(instant(dt.datetime(2026, 11, 1, 1, 30), new_york), NEW_YORK) == "2026-11-01T01:30-04:00"


@pytest.mark.parametrize(("days", "weekdays"), [
    ("daily", set(range(7))), ("weekdays", {0, 1, 2, 3, 4}), ("weekends", {5, 6}), ("mon-fri", {0, 1, 2, 3, 4}),
    ("sat,sun", {5, 6}), ("mon,wed-thu", {0, 2, 3}), ("fri-mon", {4, 5, 6, 0}), ("sun", {6}),
])
def test_days(days: str, weekdays: set[int]) -> None:
    assert parse_days(days) == weekdays


@pytest.mark.parametrize("window", [
    {"days": "mon-friday"}, {"days": "someday"}, {"days": ""},
    {"start": "25:00"}, {"start": "7:00"}, {"end": "24:01"}, {"start": "12:60"},
    {"start": "24:00", "end": "08:00"}, {"start": "10:00", "end": "10:00"}, {"start": "23:59", "end": "23:59"},
    {"start": "19:00", "end": "08:00", "color": "red"},
])
def test_config_refuses_bad_windows(window: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        QuietHours(windows=[{"days": "mon", **window}])


def test_config_refuses_bad_zones_policies_and_windows_that_never_end() -> None:
    for bad in ({"timezone": "Mars/Olympus"}, {"timezone": "CEST+2"}, {"policy": {"urgent": "defer"}},
                {"policy": {"low": "later"}}, {"windows": []}):
        with pytest.raises(ValidationError):
            QuietHours.model_validate({"windows": [{"days": "mon"}], **bad})
    with pytest.raises(ValidationError, match="whole week"):
        QuietHours(windows=[{}])  # daily 00:00–24:00
    with pytest.raises(ValidationError, match="whole week"):
        QuietHours(windows=[{"start": "08:00", "end": "20:00"}, {"start": "20:00", "end": "08:00"}])
    with pytest.raises(ValidationError, match="unknown time zone"):
        ProjectSettings.model_validate({"quiet_hours": {"windows": [{"days": "mon"}], "timezone": "Europe/Atlantis"}})
    # whole days are 00:00–24:00 or 00:00–00:00
    assert QuietHours(windows=[{"days": "sat", "start": "00:00", "end": "00:00"}])
    assert not covers_whole_week(OFFICE.windows)


@pytest.mark.parametrize(("priority", "policy", "until", "reason"), [
    ("medium", "defer", "2026-03-30T08:00+02:00", "held by quiet hours until Mon 08:00 Europe/Berlin"),
    ("low", "drop", "2026-03-30T08:00+02:00", "dropped by quiet hours (daily 19:00–08:00 Europe/Berlin)"),
    ("critical", "deliver", "2026-03-30T08:00+02:00",
     "sent during quiet hours (daily 19:00–08:00 Europe/Berlin): critical messages are delivered"),
    ("high", "defer", "2026-03-30T08:00+02:00", "held by quiet hours until Mon 08:00 Europe/Berlin"),
])
def test_decide_by_priority(priority: str, policy: str, until: str, reason: str) -> None:
    quiet = qh(*[w.model_dump() for w in OFFICE.windows], policy={"low": "drop"})
    got = decide_quiet(quiet, BERLIN, priority, at("2026-03-27T20:00", BERLIN))
    assert (got[0], local(got[1], BERLIN), got[2]) == (policy, until, reason)


def test_reasons_show_the_day_only_when_it_is_not_today_there() -> None:
    assert decide_quiet(NIGHTS, BERLIN, "medium", at("2026-06-02T03:00", BERLIN))[2] == \
        "held by quiet hours until 08:00 Europe/Berlin"
    assert decide_quiet(NIGHTS, BERLIN, "medium", at("2026-06-02T23:00", BERLIN))[2] == \
        "held by quiet hours until Wed 08:00 Europe/Berlin"
    assert decide_quiet(WEEKNIGHTS, NEW_YORK, "low", at("2026-06-06T10:00", NEW_YORK))[2] == \
        "held by quiet hours until Mon 00:00 America/New_York"
    assert decide_quiet(qh({"days": "weekends"}, policy={"info": "drop"}), BERLIN, "info",
                        at("2026-06-06T10:00", BERLIN))[2] == "dropped by quiet hours (Sat–Sun all day Europe/Berlin)"
    assert decide_quiet(NIGHTS, BERLIN, "medium", at("2026-06-02T12:00", BERLIN)) == ("deliver", None, None)


def person(name: str, zone: str = "UTC", quiet: QuietHours | None = None) -> Person:
    return Person(f"id-{name}", "ops", name, name.title(), zone, quiet_hours=quiet)


def test_apply_to_planned_deliveries() -> None:
    people = People("ops", {p.name: p for p in (
        person("ana", BERLIN, qh({"start": "22:00", "end": "07:00"}, policy={"low": "drop"})),
        person("bo", NEW_YORK),  # the project's quiet hours, in her own zone
        person("cy"),  # UTC: the project's quiet hours in the project's zone
        person("di", BERLIN, qh({"start": "22:00", "end": "07:00"}, digest=True)),
    )})
    settings = ProjectSettings(quiet_hours=qh({"start": "20:00", "end": "09:00"}, timezone=BERLIN))
    targets = [
        Target("slack", "pager", 0.0, recipient="id-ana", reason="to @ana by route pager"),
        Target("email", "pager", 0.0, recipient="id-ana", status="suppressed", reason="ana turned off email"),
        Target("slack", "pager", 0.0, recipient="id-bo"),
        Target("slack", "pager", 0.0, recipient="id-cy"),
        Target("slack", "pager", 0.0, recipient="id-di"),
        Target("slack", "pager", 0.0, recipient="id-gone"),  # not in the directory (yet): the project's, in its zone
        Target("slack", "pager", 0.0),  # the channel itself: never quiet
    ]
    now = at("2026-06-02T23:30", BERLIN)  # 17:30 in New York
    medium = apply_quiet_hours(targets, people, settings, Message("disk", priority=Priority.MEDIUM), now)
    seven, nine = at("2026-06-03T07:00", BERLIN), at("2026-06-03T09:00", BERLIN)
    assert [(t.status, t.due, t.reason) for t in medium] == [
        (None, seven, "to @ana by route pager; held by quiet hours until Wed 07:00 Europe/Berlin"),
        ("suppressed", None, "ana turned off email"),
        (None, None, None),
        (None, nine, "held by quiet hours until Wed 09:00 Europe/Berlin"),
        ("grouped", seven, "held by quiet hours until Wed 07:00 Europe/Berlin for the quiet-hours digest"),
        (None, nine, "held by quiet hours until Wed 09:00 Europe/Berlin"),
        (None, None, None),
    ]
    low = apply_quiet_hours(targets[:1], people, settings, Message("disk", priority=Priority.LOW), now)
    assert (low[0].status, low[0].reason) == (
        "suppressed", "to @ana by route pager; dropped by quiet hours (daily 22:00–07:00 Europe/Berlin)")
    critical = apply_quiet_hours(targets, people, settings, Message("disk", priority=Priority.CRITICAL), now)
    assert critical == targets
    plain = [Target("slack", None, 0.0)]
    assert apply_quiet_hours(plain, people, settings, Message("x"), now) is plain
    assert apply_quiet_hours(targets, People("ops"), None, Message("x"), now) == targets


def test_remembered_reasons_follow_the_local_date_within_one_period() -> None:
    for order in ((("2026-06-05T20:00", "Mon 08:00"), ("2026-06-08T03:00", "08:00")),
                  (("2026-06-08T03:00", "08:00"), ("2026-06-05T20:00", "Mon 08:00"))):
        for now, until in order:
            assert decide_quiet(OFFICE, BERLIN, "medium", at(now, BERLIN))[2] == f"held by quiet hours until {until} Europe/Berlin"
    # just before and at local midnight, in the same period
    assert decide_quiet(OFFICE, BERLIN, "low", at("2026-06-07T23:59", BERLIN))[2] == "held by quiet hours until Mon 08:00 Europe/Berlin"
    assert decide_quiet(OFFICE, BERLIN, "low", at("2026-06-08T00:00", BERLIN))[2] == "held by quiet hours until 08:00 Europe/Berlin"


def test_a_zone_the_machine_does_not_know_is_read_as_utc_rather_than_failing_the_message() -> None:
    lost = People("ops", {"al": person("al", "Mars/Olympus_Mons", NIGHTS)})
    now = at("2026-06-02T23:30", "UTC")
    (t,) = apply_quiet_hours([Target("slack", None, 0.0, recipient="id-al")], lost, None, Message("x"), now)
    assert (t.due, t.reason) == (at("2026-06-03T08:00", "UTC"), "held by quiet hours until Wed 08:00 UTC")
