"""A feed's tasks as an iCalendar (RFC 5545) document, with the ``icalendar`` library.

One all-day VEVENT per task with a due date: ``DTSTART;VALUE=DATE`` the due date, ``DTEND`` the
next day (exclusive). Only dates are used, so no VTIMEZONE is needed. ``UID`` is the task's id
(stable for its life), ``SEQUENCE`` its version (every change adds one), and ``DTSTAMP`` its last
change: the same tasks give the same bytes, so the body's hash is a strong ETag.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable
from typing import Any

from icalendar import Calendar, Event

from .. import __version__

PRODID = f"-//tidings//tidings {__version__}//EN"
CANCELLED_NAMES = ("cancel", "won't do", "wont do", "wontfix", "won't fix", "not planned")
"""A status name containing one of these (ignoring case) marks the event ``STATUS:CANCELLED``."""


def cancelled(status: str) -> bool:
    name = status.lower().replace("\u2019", "'")
    return any(part in name for part in CANCELLED_NAMES)


def _utc(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(int(seconds), dt.UTC)


def event(task: dict[str, Any]) -> Event:
    """The VEVENT of one task (``task["due"]`` set; ``task["url"]`` optional)."""
    due = dt.date.fromisoformat(task["due"])
    ev = Event()
    ev.add("uid", f"{task['id']}@tidings")
    ev.add("dtstamp", _utc(task["updated_at"]))
    ev.add("last-modified", _utc(task["updated_at"]))
    ev.add("created", _utc(task["created_at"]))
    ev.add("sequence", int(task["version"]))
    ev.add("dtstart", due)
    ev.add("dtend", due + dt.timedelta(days=1))
    ev.add("summary", f"T-{task['number']} {task['title']}")
    if task.get("description"):
        ev.add("description", task["description"])
    if task.get("url"):
        ev.add("url", task["url"])
    if task.get("labels"):
        ev.add("categories", list(task["labels"]))
    ev.add("status", "CANCELLED" if cancelled(task["status"]) else "CONFIRMED")
    ev.add("transp", "TRANSPARENT")
    return ev


def render(name: str, items: Iterable[dict[str, Any]]) -> bytes:
    """The VCALENDAR named ``name`` with one event per task of ``items``."""
    cal = Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("method", "PUBLISH")
    cal.add("x-wr-calname", name)
    for task in items:
        cal.add_component(event(task))
    return bytes(cal.to_ical())


def etag(body: bytes) -> str:
    """A strong ETag: the body's SHA-256, quoted."""
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
