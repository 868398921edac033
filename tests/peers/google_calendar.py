"""A stand-in for Google Calendar API v3 events on 127.0.0.1, answering as Google documents it
(developers.google.com/calendar/api/v3/reference/events):

    gcal = GoogleCalendarAPI(tokens={"ya29.test"})
    await gcal.start()                                # gcal.url is the api_url
    gcal.add("primary", summary="Lunch", date="2026-12-10")   # someone else's event
    gcal.live("primary")                              # events not cancelled
    gcal.expire_sync_tokens()                         # every syncToken given so far answers 410

- ``POST /calendars/{cal}/events``: a client-chosen ``id`` must be base32hex (``a-v`` and ``0-9``),
  5 to 1024 characters, else 400 ``invalid``; an id that exists (also a deleted, i.e. cancelled, one)
  is 409 ``duplicate``; ``start``/``end`` need ``date`` or ``dateTime``, the end after the start
  (else 400 ``timeRangeEmpty``); reminders overrides at most 5, minutes 0 to 40320.
- ``GET``/``PUT``/``PATCH``/``DELETE .../events/{id}``: 404 ``notFound`` for an unknown id; a deleted
  event is kept as ``status: cancelled``: ``GET`` and ``DELETE`` answer 410 ``deleted``, a ``PUT`` or
  ``PATCH`` with ``status: confirmed`` brings it back. ``If-Match`` with another etag: 412
  ``conditionNotMet``. Every write gives a new ``etag``.
- ``GET .../events``: ``privateExtendedProperty=name=value`` (repeatable: all must match),
  ``maxResults`` (250 default, at most 2500), ``pageToken``/``nextPageToken``, ``showDeleted``; the
  last page carries ``nextSyncToken``; ``syncToken`` lists what changed since (cancelled ones too),
  410 ``fullSyncRequired`` once expired, 400 together with ``privateExtendedProperty`` (as Google).
- a wrong bearer token: 401 ``authError``; injected faults (``calendar_standin``).
"""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web
from peers.calendar_standin import StandIn

ID = re.compile(r"^[a-v0-9]{5,1024}$")
PAGE_DEFAULT, PAGE_MAX = 250, 2500
NO_SYNC_WITH = ("privateExtendedProperty", "sharedExtendedProperty", "q", "timeMin", "timeMax", "updatedMin",
                "iCalUID", "orderBy")


@dataclass
class Calendar:
    events: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Id -> event, in creation order (cancelled ones stay)."""
    changed: dict[str, int] = field(default_factory=dict)
    """Id -> the change counter when it last changed."""


class GoogleCalendarAPI(StandIn):
    def __init__(self, tokens: set[str] | None = None) -> None:
        super().__init__(tokens)
        self.calendars: dict[str, Calendar] = {"primary": Calendar()}
        self.counter = 0
        self.sync_tokens: dict[str, int] = {}

    # -- test helpers ---------------------------------------------------------------------------
    def cal(self, cal_id: str) -> Calendar:
        return self.calendars.setdefault(cal_id, Calendar())

    def live(self, cal_id: str = "primary") -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.cal(cal_id).events.items() if v["status"] != "cancelled"}

    def add(self, cal_id: str = "primary", *, summary: str, date: str, private: dict[str, str] | None = None) -> str:
        eid = secrets.token_hex(10)
        body = {"summary": summary, "start": {"date": date}, "end": {"date": date}}
        if private is not None:
            body["extendedProperties"] = {"private": private}
        self._store(self.cal(cal_id), eid, body)
        return eid

    def expire_sync_tokens(self) -> None:
        self.sync_tokens.clear()

    # -- answers --------------------------------------------------------------------------------
    def error(self, status: int, message: str, reason: str | None = None,
              headers: dict[str, str] | None = None) -> web.Response:
        reason = reason or {400: "invalid", 401: "authError", 404: "notFound", 409: "duplicate", 410: "deleted",
                            412: "conditionNotMet", 429: "rateLimitExceeded"}.get(status, "backendError")
        body = {"error": {"errors": [{"domain": "global", "reason": reason, "message": message}],
                          "code": status, "message": message}}
        return web.json_response(body, status=status, headers=headers)

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/calendars/{cal}", self._calendar)
        app.router.add_get("/calendars/{cal}/events", self._list)
        app.router.add_post("/calendars/{cal}/events", self._insert)
        app.router.add_route("*", "/calendars/{cal}/events/{id}", self._one)

    async def _calendar(self, request: web.Request) -> web.Response:
        cal_id = request.match_info["cal"]
        return web.json_response({"kind": "calendar#calendar", "id": cal_id, "summary": cal_id, "timeZone": "UTC"})

    def _check(self, body: Any) -> str | None:
        if not isinstance(body, dict):
            return "Parse Error"
        for edge in ("start", "end"):
            value = body.get(edge)
            if not isinstance(value, dict) or not (value.get("date") or value.get("dateTime")):
                return f"Missing {edge} time."
        if body["start"].get("date") and body["end"].get("date") and body["end"]["date"] <= body["start"]["date"]:
            return "The specified time range is empty."
        overrides = (body.get("reminders") or {}).get("overrides") or []
        if len(overrides) > 5 or any(not 0 <= o.get("minutes", -1) <= 40320 for o in overrides):
            return "Invalid reminder."
        return None

    def _store(self, cal: Calendar, eid: str, body: dict[str, Any]) -> dict[str, Any]:
        self.counter += 1
        now = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
        old = cal.events.get(eid)
        event = {"kind": "calendar#event", "status": "confirmed", **body, "id": eid,
                 "etag": f'"{self.next_etag()}"', "updated": now, "created": old["created"] if old else now,
                 "iCalUID": f"{eid}@google.com"}
        cal.events[eid] = event
        cal.changed[eid] = self.counter
        return event

    async def _insert(self, request: web.Request) -> web.Response:
        cal = self.cal(request.match_info["cal"])
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return self.error(400, "Parse Error", "parseError")
        if (problem := self._check(body)) is not None:
            return self.error(400, problem, "timeRangeEmpty" if "empty" in problem else "invalid")
        eid = body.get("id") or secrets.token_hex(13)
        if not isinstance(eid, str) or not ID.match(eid):
            return self.error(400, "Invalid resource id value.")
        if eid in cal.events:
            return self.error(409, "The requested identifier already exists.", "duplicate")
        return web.json_response(self._store(cal, eid, body))

    async def _one(self, request: web.Request) -> web.Response:
        cal = self.cal(request.match_info["cal"])
        eid = request.match_info["id"]
        event = cal.events.get(eid)
        if event is None:
            return self.error(404, "Not Found")
        if_match = request.headers.get("If-Match")
        if if_match is not None and if_match != event["etag"]:
            return self.error(412, "Precondition Failed")
        cancelled = event["status"] == "cancelled"
        if request.method == "GET":
            return self.error(410, "Resource has been deleted") if cancelled else web.json_response(event)
        if request.method == "DELETE":
            if cancelled:
                return self.error(410, "Resource has been deleted")
            self._store(cal, eid, {**{k: v for k, v in event.items() if k not in ("etag", "updated")},
                                   "status": "cancelled"})
            return web.Response(status=204)
        if request.method not in ("PUT", "PATCH"):
            return self.error(405, "Method Not Allowed")
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return self.error(400, "Parse Error", "parseError")
        if not isinstance(body, dict) or body.get("id", eid) != eid:
            return self.error(400, "Invalid resource id value.")
        merged = body if request.method == "PUT" else {**event, **body}
        merged = {k: v for k, v in merged.items() if k not in ("etag", "updated", "kind", "iCalUID", "created")}
        if (problem := self._check(merged)) is not None:
            return self.error(400, problem)
        if cancelled and merged.get("status", "confirmed") == "cancelled":
            return self.error(410, "Resource has been deleted")
        return web.json_response(self._store(cal, eid, {"status": "confirmed", **merged}))

    async def _list(self, request: web.Request) -> web.Response:
        cal = self.cal(request.match_info["cal"])
        q = request.query
        sync = q.get("syncToken")
        if sync is not None and any(name in q for name in NO_SYNC_WITH):
            return self.error(400, "Sync token cannot be used with other query parameters.")
        since = None
        if sync is not None:
            since = self.sync_tokens.get(sync)
            if since is None:
                return self.error(410, "Sync token is no longer valid, a full sync is required.", "fullSyncRequired")
        try:
            size = min(int(q.get("maxResults", PAGE_DEFAULT)), PAGE_MAX)
            start = int(q.get("pageToken", "0") or "0")
        except ValueError:
            return self.error(400, "Invalid value")
        wanted = [p.split("=", 1) for p in q.getall("privateExtendedProperty", [])]
        if any(len(p) != 2 for p in wanted):
            return self.error(400, "Invalid privateExtendedProperty: write name=value")
        show_deleted = q.get("showDeleted") == "true" or since is not None
        items = []
        for eid, event in cal.events.items():
            if since is not None and cal.changed[eid] <= since:
                continue
            if event["status"] == "cancelled" and not show_deleted:
                continue
            private = (event.get("extendedProperties") or {}).get("private") or {}
            if all(private.get(name) == value for name, value in wanted):
                items.append(event)
        page = items[start:start + size]
        body: dict[str, Any] = {"kind": "calendar#events", "items": page}
        if start + size < len(items):
            body["nextPageToken"] = str(start + size)
        else:
            token = secrets.token_urlsafe(12)
            self.sync_tokens[token] = self.counter
            body["nextSyncToken"] = token
        return web.json_response(body)
