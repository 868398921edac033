"""Outlook calendars through Microsoft Graph v1.0: one all-day event per task.

Graph chooses event ids, so ours live in ``calendar_events``. A create is ``POST .../events`` with
a ``transactionId`` (a GUID derived from the integration, the task and how many events it had), so a
create retried after a lost answer gives back the event the first one made, and with an open
extension ``com.tidings.task`` (``taskId``, ``project``) that reconcile finds with
``$filter=Extensions/any(f:f/id eq 'com.tidings.task')`` and ``$expand=Extensions(...)``. Updates are
``PATCH /events/{id}`` with ``If-Match`` (412 → read the etag again and retry; 404 → create again).
All-day events run from midnight to midnight in ``time_zone``.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any, ClassVar, Literal
from urllib.parse import quote

from pydantic import Field, field_validator

from ...calendars.push import CalendarPush, CalendarSettings, next_day
from ..base import CalendarEvent, EventRef
from ..http import HttpUrl

API = "https://graph.microsoft.com/v1.0"
EXTENSION = "com.tidings.task"
PAGE = 100
_NS = uuid.UUID("6f1d3c2e-5b7a-4e21-9c0d-7a0c8f4b2e11")


def transaction_id(integration: str, task_id: str, creates: int) -> str:
    """The create's ``transactionId``: the same for every retry of one create, new for the next event."""
    return str(uuid.uuid5(_NS, f"{integration}:{task_id}:{creates}"))


def ours(extension: dict[str, Any]) -> bool:
    """Whether an expanded extension is ours (Graph names it ``Microsoft.OutlookServices.OpenTypeExtension.<name>``)."""
    return extension.get("extensionName") == EXTENSION or str(extension.get("id", "")).endswith(f".{EXTENSION}")


class OutlookCalendarSettings(CalendarSettings):
    kind: Literal["outlook_calendar"]
    user: str | None = Field(None, max_length=320,
                             description="whose calendar (id or userPrincipalName); leave out for the signed-in user (/me)")
    calendar_id: str | None = Field(None, max_length=1024, description="a calendar's id; leave out for the default calendar")
    time_zone: str = Field("UTC", min_length=1, max_length=100,
                           description="the calendar's time zone (Windows or IANA name): all-day events run midnight"
                                       " to midnight there")
    api_url: HttpUrl = Field(API, description="Microsoft Graph's base URL (change it only for tests)")

    oauth_provider: ClassVar[str] = "microsoft"

    @field_validator("reminders")
    @classmethod
    def _one_reminder(cls, v: list[int] | None) -> list[int] | None:
        if v is not None and len(v) > 1:
            raise ValueError("Outlook events have at most one reminder")
        return v


class OutlookCalendar(CalendarPush):
    kind = "outlook_calendar"
    Settings = OutlookCalendarSettings
    settings: OutlookCalendarSettings
    rate_limit = "8/second"
    """Graph allows 10,000 requests per 10 minutes per app and mailbox, 4 at once."""
    burst = 4
    concurrency = 4
    timeout = 15.0

    def owner_url(self) -> str:
        base = self.settings.api_url.rstrip("/")
        return f"{base}/users/{quote(self.settings.user, safe='')}" if self.settings.user else f"{base}/me"

    def calendar_url(self) -> str:
        cid = self.settings.calendar_id
        return f"{self.owner_url()}/calendars/{quote(cid, safe='')}" if cid else f"{self.owner_url()}/calendar"

    def probe_url(self) -> str:
        return self.calendar_url()

    def event_url(self, eid: str) -> str:
        return f"{self.owner_url()}/events/{quote(eid, safe='')}"

    def body(self, event: CalendarEvent) -> dict[str, Any]:
        tz = self.settings.time_zone
        body: dict[str, Any] = {
            "subject": event.summary, "body": {"contentType": "text", "content": event.description},
            "start": {"dateTime": f"{event.date}T00:00:00", "timeZone": tz},
            "end": {"dateTime": f"{next_day(event.date)}T00:00:00", "timeZone": tz},
            "isAllDay": True, "showAs": "free",
        }
        if event.reminders is not None:
            body["isReminderOn"] = bool(event.reminders)
            if event.reminders:
                body["reminderMinutesBeforeStart"] = event.reminders[0]
        return body

    async def upsert(self, event: CalendarEvent, known: EventRef | None) -> EventRef:
        body = self.body(event)
        if known is not None and known.event_id:
            etag = known.etag
            for _ in range(3):
                answer = await self.call("PATCH", self.event_url(known.event_id), json=body,
                                         headers={"If-Match": etag} if etag else None)
                if answer.status == 200:
                    return EventRef(known.event_id, answer.data.get("@odata.etag"), event.task_id, known.creates)
                if answer.status == 412:
                    current = await self.call("GET", self.event_url(known.event_id))
                    if current.status != 200:
                        raise self.failure(current, "reading the event")
                    etag = current.data.get("@odata.etag")
                    continue
                if answer.status == 404:
                    break  # deleted in Outlook: make it again
                raise self.failure(answer, "updating the event")
            else:
                raise self.failure(answer, "updating the event (it kept changing)")
        creates = known.creates if known is not None else 1
        create = {**body, "transactionId": transaction_id(self.name, event.task_id, creates),
                  "extensions": [{"@odata.type": "microsoft.graph.openTypeExtension", "extensionName": EXTENSION,
                                  "taskId": event.task_id, "project": event.project}]}
        answer = await self.call("POST", f"{self.calendar_url()}/events", json=create)
        if answer.status not in (200, 201):
            raise self.failure(answer, "creating the event")
        return EventRef(answer.data["id"], answer.data.get("@odata.etag"), event.task_id, creates)

    async def delete(self, ref: EventRef) -> None:
        ids = [ref.event_id] if ref.event_id else [e.event_id async for e in self.list_ours()
                                                     if e.task_id == ref.task_id and e.event_id]
        for eid in ids:
            answer = await self.call("DELETE", self.event_url(eid))  # type: ignore[arg-type]
            if answer.status not in (200, 204, 404, 410):
                raise self.failure(answer, "deleting the event")

    async def list_ours(self) -> AsyncIterator[EventRef]:  # type: ignore[override]
        url: str | None = f"{self.calendar_url()}/events"
        params: dict[str, str] | None = {
            "$filter": f"Extensions/any(f:f/id eq '{EXTENSION}')",
            "$expand": f"Extensions($filter=id eq '{EXTENSION}')", "$top": str(PAGE), "$select": "id,subject",
        }
        while url:
            answer = await self.call("GET", url, params=params)
            if answer.status != 200:
                raise self.failure(answer, "listing events")
            for item in answer.data.get("value") or []:
                ext = next((x for x in item.get("extensions") or [] if ours(x)), None)
                if ext and ext.get("taskId") and ext.get("project") == self.project:
                    yield EventRef(item["id"], item.get("@odata.etag"), ext["taskId"])
            url, params = answer.data.get("@odata.nextLink"), None
