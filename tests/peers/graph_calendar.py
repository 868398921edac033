"""A stand-in for Microsoft Graph v1.0 calendar events on 127.0.0.1, answering as Microsoft documents
it (learn.microsoft.com/graph/api/resources/event, /graph/extensibility-open-users):

    graph = GraphCalendarAPI(tokens={"eyJ.test"})
    await graph.start()                               # graph.url is the api_url
    graph.add(subject="Lunch", date="2026-12-10")     # someone else's event
    graph.live()                                      # id -> event

- ``/me/...`` and ``/users/{id}/...`` are the same mailbox; ``/calendar/events`` is the default
  calendar, ``/calendars/{id}/events`` another one (created on first use).
- ``POST .../events``: ``subject``, ``start``/``end`` with ``dateTime`` and ``timeZone``; an
  ``isAllDay`` event must start and end at midnight, at least a day apart (else 400
  ``ErrorInvalidRequest``). A ``transactionId`` already used answers the event it made (no second
  event). ``extensions`` (``@odata.type: microsoft.graph.openTypeExtension``, ``extensionName``) are
  stored with the event, their ``id`` ``Microsoft.OutlookServices.OpenTypeExtension.<name>``.
  201, ``@odata.etag`` ``W/"..."`` (also the ``ETag`` header).
- ``GET``/``PATCH``/``DELETE /events/{id}``: 404 ``ErrorItemNotFound``; ``If-Match`` with another
  etag: 412 ``ErrorIrresolvableConflict``.
- ``GET .../events``: ``$filter=Extensions/any(f:f/id eq 'NAME')`` (the only filter it knows; others
  400), ``$expand=Extensions($filter=id eq 'NAME')`` (extensions are in an answer only when
  expanded), ``$top`` (10 default, at most 1000), paging by ``@odata.nextLink`` (``$skip``).
- a wrong bearer token: 401 ``InvalidAuthenticationToken``; injected faults (``calendar_standin``).
"""

from __future__ import annotations

import re
import secrets
from typing import Any
from urllib.parse import urlencode

import orjson
from aiohttp import web
from peers.calendar_standin import StandIn

EXT_PREFIX = "Microsoft.OutlookServices.OpenTypeExtension."
ANY_EXTENSION = re.compile(r"^Extensions/any\(f:f/id eq '([^']+)'\)$")
EXPAND = re.compile(r"^Extensions\(\$filter=id eq '([^']+)'\)$")
CODES = {400: "ErrorInvalidRequest", 401: "InvalidAuthenticationToken", 404: "ErrorItemNotFound",
         412: "ErrorIrresolvableConflict", 429: "TooManyRequests", 503: "ServiceUnavailable"}


class GraphCalendarAPI(StandIn):
    def __init__(self, tokens: set[str] | None = None) -> None:
        super().__init__(tokens)
        self.events: dict[str, dict[str, Any]] = {}
        """Id -> event, every calendar of the mailbox (``calendar`` names which)."""
        self.transactions: dict[str, str] = {}

    def live(self, calendar: str = "default") -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.events.items() if v["calendar"] == calendar}

    def add(self, *, subject: str, date: str, calendar: str = "default") -> str:
        return self._store(calendar, {"subject": subject, "isAllDay": True,
                                      "start": {"dateTime": f"{date}T00:00:00.0000000", "timeZone": "UTC"},
                                      "end": {"dateTime": f"{date}T00:00:00.0000000", "timeZone": "UTC"}})["id"]

    def error(self, status: int, message: str, reason: str | None = None,
              headers: dict[str, str] | None = None) -> web.Response:
        body = {"error": {"code": reason if reason and reason[0].isupper() else CODES.get(status, "generalException"),
                          "message": message}}
        return web.json_response(body, status=status, headers=headers)

    def routes(self, app: web.Application) -> None:
        for owner in ("/me", "/users/{user}"):
            app.router.add_get(owner + "/calendar", self._calendar)
            app.router.add_get(owner + "/calendars/{cal}", self._calendar)
            app.router.add_route("*", owner + "/calendar/events", self._events)
            app.router.add_route("*", owner + "/calendars/{cal}/events", self._events)
            app.router.add_route("*", owner + "/events/{id}", self._one)

    async def _calendar(self, request: web.Request) -> web.Response:
        return web.json_response({"id": request.match_info.get("cal", "default"), "name": "Calendar"})

    def _store(self, calendar: str, body: dict[str, Any], eid: str | None = None) -> dict[str, Any]:
        eid = eid or secrets.token_urlsafe(24)
        etag = f'W/"{self.next_etag()}"'
        event = {**body, "id": eid, "@odata.etag": etag, "changeKey": etag[3:-1], "calendar": calendar}
        self.events[eid] = event
        return event

    @staticmethod
    def _check(body: Any) -> str | None:
        if not isinstance(body, dict):
            return "Empty Payload. JSON content expected."
        for edge in ("start", "end"):
            value = body.get(edge)
            if not isinstance(value, dict) or not value.get("dateTime") or not value.get("timeZone"):
                return f"{edge}: dateTime and timeZone are required."
        if body.get("isAllDay"):
            start, end = body["start"]["dateTime"], body["end"]["dateTime"]
            if not start[10:].startswith("T00:00:00") or not end[10:].startswith("T00:00:00") or end[:10] <= start[:10]:
                return "Your request can't be completed. If an event is marked as all-day, the start and end time " \
                       "must be at midnight, and the end must be at least a day after the start."
        return None

    def _view(self, event: dict[str, Any], expand: str | None) -> dict[str, Any]:
        shown = {k: v for k, v in event.items() if k not in ("calendar", "extensions")}
        if expand is not None:
            shown["extensions"] = [x for x in event.get("extensions", []) if x["extensionName"] == expand]
        return shown

    async def _events(self, request: web.Request) -> web.Response:
        calendar = request.match_info.get("cal", "default")
        if request.method == "POST":
            return await self._create(request, calendar)
        if request.method != "GET":
            return self.error(405, "Method not allowed")
        q = request.query
        wanted = None
        if "$filter" in q:
            m = ANY_EXTENSION.match(q["$filter"])
            if m is None:
                return self.error(400, "Invalid filter clause")
            wanted = m.group(1)
        expand = None
        if "$expand" in q:
            m = EXPAND.match(q["$expand"])
            if m is None:
                return self.error(400, "Parsing OData Select and Expand failed")
            expand = m.group(1)
        try:
            top, skip = min(int(q.get("$top", "10")), 1000), int(q.get("$skip", "0"))
        except ValueError:
            return self.error(400, "Invalid $top or $skip")
        items = [e for e in self.events.values() if e["calendar"] == calendar
                 and (wanted is None or any(x["extensionName"] == wanted for x in e.get("extensions", [])))]
        body: dict[str, Any] = {"value": [self._view(e, expand) for e in items[skip:skip + top]]}
        if skip + top < len(items):
            rest = {k: v for k, v in q.items() if k != "$skip"}
            body["@odata.nextLink"] = f"{self.url}{request.path}?{urlencode({**rest, '$skip': skip + top})}"
        return web.json_response(body)

    async def _create(self, request: web.Request, calendar: str) -> web.Response:
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return self.error(400, "Unable to read JSON request payload.")
        if (problem := self._check(body)) is not None:
            return self.error(400, problem)
        tid = body.get("transactionId")
        if tid and self.transactions.get(tid) in self.events:
            return web.json_response(self._view(self.events[self.transactions[tid]], None), status=201)
        extensions = []
        for x in body.pop("extensions", None) or []:
            if x.get("@odata.type") != "microsoft.graph.openTypeExtension" or not x.get("extensionName"):
                return self.error(400, "An open extension needs @odata.type and extensionName")
            extensions.append({**x, "id": EXT_PREFIX + x["extensionName"]})
        event = self._store(calendar, {**body, "extensions": extensions})
        if tid:
            self.transactions[tid] = event["id"]
        return web.json_response(self._view(event, None), status=201, headers={"ETag": event["@odata.etag"]})

    async def _one(self, request: web.Request) -> web.Response:
        event = self.events.get(request.match_info["id"])
        if event is None:
            return self.error(404, "The specified object was not found in the store.")
        if_match = request.headers.get("If-Match")
        if if_match is not None and if_match != event["@odata.etag"]:
            return self.error(412, "The item was changed meanwhile.")
        if request.method == "GET":
            m = EXPAND.match(request.query.get("$expand", ""))
            return web.json_response(self._view(event, m.group(1) if m else None))
        if request.method == "DELETE":
            del self.events[event["id"]]
            return web.Response(status=204)
        if request.method != "PATCH":
            return self.error(405, "Method not allowed")
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return self.error(400, "Unable to read JSON request payload.")
        merged = {**{k: v for k, v in event.items() if k not in ("id", "@odata.etag", "changeKey")}, **body}
        if (problem := self._check(merged)) is not None:
            return self.error(400, problem)
        updated = self._store(event["calendar"], {k: v for k, v in merged.items() if k != "calendar"}, event["id"])
        return web.json_response(self._view(updated, None), headers={"ETag": updated["@odata.etag"]})
