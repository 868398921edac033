"""Google Calendar v3: one all-day event per task, with an id we choose.

- The event id is the task id (a UUID) as base32hex without padding (``a-v0-9``, 26 characters;
  Google takes 5 to 1024), so every attempt names the same event: ``PUT .../events/{id}`` updates
  it in place (``If-Match`` the etag we last saw; 412 → read the etag again and retry), a 404 means
  ``POST .../events`` with that id, and a 409 (``duplicate``) on that create means it exists already
  (a create whose answer was lost) → update. A deleted event (Google keeps it, ``cancelled``) is
  brought back by the ``PUT`` (``status: confirmed``).
- ``extendedProperties.private`` holds ``tidings_task`` and ``tidings_project``; reconcile lists
  ``privateExtendedProperty=tidings_project=<project>`` and touches nothing else. Google refuses a
  ``syncToken`` together with ``privateExtendedProperty``, so each reconcile lists in full.
- 429, 5xx and 403 ``rateLimitExceeded`` / ``userRateLimitExceeded`` are retried.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import AsyncIterator
from typing import Any, ClassVar, Literal
from urllib.parse import quote

from pydantic import Field

from ...calendars.push import Answer, CalendarPush, CalendarSettings, next_day
from ..base import CalendarEvent, EventRef
from ..http import HttpUrl

API = "https://www.googleapis.com/calendar/v3"
RATE_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded", "quotaExceeded"})
PAGE = 250


def event_id(task_id: str) -> str:
    """The task's event id: base32hex (RFC 4648 §7, lowercase, no padding) of the task's UUID."""
    try:
        raw = uuid.UUID(task_id).bytes
    except ValueError:
        raw = task_id.encode()
    return base64.b32hexencode(raw).decode().rstrip("=").lower()


class GoogleCalendarSettings(CalendarSettings):
    kind: Literal["google_calendar"]
    calendar_id: str = Field("primary", min_length=1, max_length=1024,
                             description="the calendar's id (Settings → Integrate calendar), or primary")
    api_url: HttpUrl = Field(API, description="the Calendar API's base URL (change it only for tests)")

    oauth_provider: ClassVar[str] = "google"


class GoogleCalendar(CalendarPush):
    kind = "google_calendar"
    Settings = GoogleCalendarSettings
    settings: GoogleCalendarSettings
    rate_limit = "5/second"
    """Google's default quota is 600 requests a minute per user; a push takes one to three."""
    burst = 5
    concurrency = 4
    timeout = 15.0

    def calendar_url(self) -> str:
        return f"{self.settings.api_url.rstrip('/')}/calendars/{quote(self.settings.calendar_id, safe='')}"

    def events_url(self) -> str:
        return f"{self.calendar_url()}/events"

    def probe_url(self) -> str:
        return f"{self.events_url()}?maxResults=1"  # the calendar.events scope may not read the calendar itself

    def first_id(self, task_id: str) -> str | None:
        return event_id(task_id)

    def body(self, event: CalendarEvent) -> dict[str, Any]:
        reminders: dict[str, Any] = {"useDefault": True}
        if event.reminders is not None:
            reminders = {"useDefault": False,
                         "overrides": [{"method": "popup", "minutes": m} for m in event.reminders]}
        return {
            "id": event_id(event.task_id), "summary": event.summary, "description": event.description,
            "start": {"date": event.date}, "end": {"date": next_day(event.date)},
            "status": "confirmed", "transparency": "transparent", "reminders": reminders,
            "extendedProperties": {"private": {"tidings_task": event.task_id, "tidings_project": event.project}},
        }

    def rate_limited(self, answer: Answer) -> bool:
        if answer.status != 403 or not isinstance(answer.data, dict):
            return False
        errors = (answer.data.get("error") or {}).get("errors") or []
        return any(isinstance(e, dict) and e.get("reason") in RATE_REASONS for e in errors)

    async def upsert(self, event: CalendarEvent, known: EventRef | None) -> EventRef:
        eid = event_id(event.task_id)
        url = f"{self.events_url()}/{eid}"
        body = self.body(event)
        etag = known.etag if known is not None else None
        for _ in range(3):
            answer = await self.call("PUT", url, json=body, headers={"If-Match": etag} if etag else None)
            if answer.status == 200:
                return EventRef(eid, answer.data.get("etag"), event.task_id)
            if answer.status == 412:  # changed in the calendar since: ours wins, on its current etag
                current = await self.call("GET", url)
                if current.status != 200:
                    raise self.failure(current, "reading the event")
                etag = current.data.get("etag")
                continue
            if answer.status != 404:
                raise self.failure(answer, "updating the event")
            created = await self.call("POST", self.events_url(), json=body)
            if created.status == 200:
                return EventRef(eid, created.data.get("etag"), event.task_id)
            if created.status != 409:  # 409 duplicate: it exists (a create whose answer was lost)
                raise self.failure(created, "creating the event")
            etag = None
        raise self.failure(answer, "updating the event (it kept changing)")

    async def delete(self, ref: EventRef) -> None:
        eid = ref.event_id or (event_id(ref.task_id) if ref.task_id else None)
        if eid is None:
            return
        answer = await self.call("DELETE", f"{self.events_url()}/{eid}")
        if answer.status not in (200, 204, 404, 410):
            raise self.failure(answer, "deleting the event")

    async def list_ours(self) -> AsyncIterator[EventRef]:  # type: ignore[override]
        params = {"privateExtendedProperty": f"tidings_project={self.project}", "maxResults": str(PAGE)}
        while True:
            answer = await self.call("GET", self.events_url(), params=params)
            if answer.status != 200:
                raise self.failure(answer, "listing events")
            for item in answer.data.get("items") or []:
                private = (item.get("extendedProperties") or {}).get("private") or {}
                if private.get("tidings_task") and private.get("tidings_project") == self.project:
                    yield EventRef(item["id"], item.get("etag"), private["tidings_task"])
            token = answer.data.get("nextPageToken")
            if not token:
                return
            params = {**params, "pageToken": token}
