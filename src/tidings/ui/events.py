"""UI pages: inbound webhook events (a list with filters, an event with what was received, Replay)
and silences (active and ended, create, end), like Alertmanager's silences page."""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import Response

from .client import Api, project_api
from .forms import form_api
from .pages import ProjectPath, Seen, project_url
from .render import go, page
from .viewer import Viewer, viewer

router = APIRouter(include_in_schema=False)

EVENT_STATUSES = ("received", "processing", "processed", "ignored", "unsupported", "failed")
SINCE = (("15m", "last 15 minutes"), ("1h", "last hour"), ("6h", "last 6 hours"), ("1d", "last day"),
         ("7d", "last 7 days"))
DURATIONS = ("30m", "1h", "2h", "4h", "12h", "1d", "7d")
ENDED_SHOWN = 20



# -- events ----------------------------------------------------------------------------------------
async def _receivers(api: Api, project: str) -> list[str]:
    """The names of the project's integrations that receive webhooks (for the filter)."""
    answer = await api.get(project_api(project, "integrations"))
    if not answer.ok or not isinstance(answer.data, list):
        return []
    return sorted(i["name"] for i in answer.data if i.get("receives"))


@router.get("/ui/p/{project}/events")
async def events(request: Request, seen: Seen, integration: str | None = None, status: str | None = None,
                 since: str | None = None, before: str | None = None) -> Response:
    api, who = seen
    filters = {"integration": integration or None, "status": status or None, "since": since or None}
    answer = await api.get(project_api(who.project, "events"), **filters, before=before or None, limit=50)
    data = answer.data if answer.ok else {"items": [], "next": None}
    return page(request, "events.html", who, section="events", items=data["items"], next=data.get("next"),
                filters=filters, problems=[] if answer.ok else answer.problems,
                receivers=await _receivers(api, who.project), statuses=EVENT_STATUSES, since_options=SINCE)


def _body_view(event: dict[str, Any]) -> str | None:
    """The body as received, pretty when it is JSON."""
    body = event.get("body")
    if body is None:
        return None
    if "json" in (event.get("content_type") or "") or body[:1] in ("{", "["):
        try:
            return json.dumps(json.loads(body), indent=2, ensure_ascii=False)
        except ValueError:
            pass
    return str(body)


async def _event_page(request: Request, api: Api, who: Viewer, event_id: str, problems: list[str] | None = None,
                      status: int = 200) -> Response:
    event = await api.need(project_api(who.project, f"events/{quote(event_id, safe='')}"))
    return page(request, "events_detail.html", who, status=status, section="events", event=event,
                body=_body_view(event), problems=problems or [])


@router.get("/ui/p/{project}/events/{event_id}")
async def event_detail(request: Request, seen: Seen, event_id: str) -> Response:
    api, who = seen
    return await _event_page(request, api, who, event_id)


@router.post("/ui/p/{project}/events/{event_id}/replay")
async def replay(request: Request, project: ProjectPath, event_id: str) -> Response:
    _, api = await form_api(request)
    answer = await api.post(project_api(project, f"events/{quote(event_id, safe='')}/replay"))
    if not answer.ok:
        return await _event_page(request, api, await viewer(api, project), event_id, answer.problems, answer.status)
    return go(request, project_url(project, f"events/{quote(event_id, safe='')}"),
              flash=f"Event replayed: it is {answer.data.get('status', 'queued')} again")


# -- silences --------------------------------------------------------------------------------------
_MATCHER = re.compile(r"^\s*([^=\s]+)\s*=\s*(.*?)\s*$")


def parse_matchers(text: str) -> tuple[dict[str, str], list[str]]:
    """``name=value`` pairs, one a line or separated by commas -> (matchers, problems)."""
    matchers: dict[str, str] = {}
    problems: list[str] = []
    for part in re.split(r"[\n,]", text):
        if not part.strip():
            continue
        found = _MATCHER.match(part)
        if found is None:
            problems.append(f"Matchers: {part.strip()!r} is not name=value")
            continue
        name, value = found.groups()
        matchers[name] = value.strip("\"'")
    if not matchers and not problems:
        problems.append("Matchers: give at least one name=value")
    return matchers, problems


def duration_of(form: Any, now: float | None = None) -> tuple[str | None, list[str]]:
    """The silence's duration: the ``duration`` field, else the seconds until ``ends`` (UTC)."""
    duration = (form.get("duration") or "").strip()
    ends = (form.get("ends") or "").strip()
    if duration and ends:
        return None, ["Give a duration or an end time, not both"]
    if duration:
        return duration, []
    if not ends:
        return None, ["Give a duration (2h) or an end time"]
    try:
        when = dt.datetime.fromisoformat(ends)
    except ValueError:
        return None, [f"End time: {ends!r} is not a date and time (2030-01-31T18:00)"]
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    seconds = int(when.timestamp() - (time.time() if now is None else now))
    if seconds <= 0:
        return None, ["End time: it is in the past"]
    return f"{seconds}s", []


async def _silences_page(request: Request, api: Api, who: Viewer, *, status: int = 200, problems: list[str] | None = None,
                         draft: dict[str, str] | None = None) -> Response:
    active = await api.need(project_api(who.project, "silences"))
    ended = await api.need(project_api(who.project, "silences"), state="ended", limit=ENDED_SHOWN)
    query = request.query_params
    draft = draft if draft is not None else {"matchers": query.get("matchers", ""), "duration": query.get("duration", ""),
                                             "ends": "", "reason": query.get("reason", "")}
    return page(request, "silences.html", who, status=status, section="silences", active=active["items"],
                ended=ended["items"], problems=problems or [], draft=draft, durations=DURATIONS,
                now=time.time())


@router.get("/ui/p/{project}/silences")
async def silences(request: Request, seen: Seen) -> Response:
    api, who = seen
    return await _silences_page(request, api, who)


@router.post("/ui/p/{project}/silences")
async def create_silence(request: Request, project: ProjectPath) -> Response:
    form, api = await form_api(request)
    who = await viewer(api, project)
    draft = {k: form.get(k, "") for k in ("matchers", "duration", "ends", "reason")}
    matchers, problems = parse_matchers(draft["matchers"])
    duration, more = duration_of(form)
    problems += more
    if problems:
        return await _silences_page(request, api, who, status=422, problems=problems, draft=draft)
    body: dict[str, Any] = {"matchers": matchers, "duration": duration, "created_by": who.email or who.name}
    if draft["reason"].strip():
        body["reason"] = draft["reason"].strip()
    answer = await api.post(project_api(project, "silences"), json=body)
    if not answer.ok:
        return await _silences_page(request, api, who, status=answer.status, problems=answer.problems, draft=draft)
    shown = ", ".join(f"{k}={v}" for k, v in matchers.items())
    return go(request, project_url(project, "silences"), flash=f"Silence created: {shown}")


@router.post("/ui/p/{project}/silences/{silence_id}/end")
async def end_silence(request: Request, project: ProjectPath, silence_id: str) -> Response:
    _, api = await form_api(request)
    answer = await api.delete(project_api(project, f"silences/{quote(silence_id, safe='')}"))
    if not answer.ok:
        return await _silences_page(request, api, await viewer(api, project), status=answer.status,
                                    problems=answer.problems)
    return go(request, project_url(project, "silences"), flash="Silence ended")
