"""UI pages: messages and their deliveries (filtered, live while a delivery is under way), a
message's page with Retry, Retry all dead, Acknowledge and Cancel, and Send with a preview per
target. Everything is read from and done through ``/api/v1/projects/{project}/...``."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from html.parser import HTMLParser
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Path, Request
from fastapi.responses import Response
from starlette.datastructures import ImmutableMultiDict

from .client import Answer, Api, ApiError, project_api
from .forms import form_api
from .pages import ProjectPath, Seen, project_url
from .render import go, page

router = APIRouter(include_in_schema=False)

STATUSES = ("pending", "sending", "retrying", "delivered", "dead", "suppressed", "grouped", "held")
UNFINISHED = ("pending", "sending", "retrying")
"""While a delivery is in one of these, its message's page asks for its deliveries every 2 s."""
PRIORITIES = ("critical", "high", "medium", "low", "info")
FORMATS = ("plain", "markdown", "html")
SINCE = (("15m", "last 15 minutes"), ("1h", "last hour"), ("6h", "last 6 hours"), ("1d", "last day"), ("7d", "last week"))
Id = Annotated[str, Path(max_length=64, pattern=r"^[A-Za-z0-9-]+$")]



async def _integrations(api: Api, project: str) -> list[dict[str, Any]]:
    """The project's integrations (an empty list when the person may not list them)."""
    answer = await api.get(project_api(project, "integrations"))
    return answer.data if answer.ok and isinstance(answer.data, list) else []


# -- the list --------------------------------------------------------------------------------------
@router.get("/ui/p/{project}/messages")
async def messages(request: Request, seen: Seen, status: str | None = None, integration: str | None = None,
                   priority: str | None = None, since: str | None = None, before: str | None = None) -> Response:
    api, viewer = seen
    filters = {"status": status, "integration": integration, "priority": priority, "since": since}
    data = await api.need(project_api(viewer.project, "messages"), **filters, before=before, limit=50)
    names = [i["name"] for i in await _integrations(api, viewer.project) if i.get("sends")]
    return page(request, "messages.html", viewer, section="messages", items=data["items"], next=data["next"],
                filters=filters, statuses=STATUSES, priorities=PRIORITIES, since_options=SINCE, integrations=names,
                live=any(n for m in data["items"] for s, n in m["deliveries"].items() if s in UNFINISHED))


# -- one message -----------------------------------------------------------------------------------
@router.get("/ui/p/{project}/messages/{message_id}")
async def message(request: Request, seen: Seen, message_id: Id) -> Response:
    api, viewer = seen
    found = await api.need(project_api(viewer.project, f"messages/{message_id}"))
    deliveries = found["deliveries"]
    dead = sorted({d["integration"] for d in deliveries if d["status"] == "dead"})
    live = found.get("status") == "scheduled" or any(d["status"] in UNFINISHED for d in deliveries)
    return page(request, "message.html", viewer, section="messages", message=found, deliveries=deliveries,
                dead_integrations=dead, live=live)


_RENDERED = ("title", "body", "priority", "format", "fields", "links", "labels", "thread_key", "dedup_key", "resolves")
"""What a message's rendering depends on (the API's message fields a preview takes back)."""


@router.get("/ui/p/{project}/messages/{message_id}/request")
async def request_to(request: Request, seen: Seen, message_id: Id, integration: str) -> Response:
    """What tidings sends ``integration`` for this message: the stored message previewed for it now
    (``POST /preview`` with ``to``), the same rendering the Send page shows. Request bodies are
    not stored (a write per attempt on the hot path for what this shows from the message)."""
    api, viewer = seen
    found = await api.need(project_api(viewer.project, f"messages/{message_id}"))
    body = {k: found[k] for k in _RENDERED if found.get(k) is not None}
    # A preview is a POST that changes nothing: this GET page sends it with the session's own token.
    answer = await Api(request, csrf=viewer.csrf).post(project_api(viewer.project, "preview"), json={**body, "to": [integration]})
    previews = _previews(answer.data["targets"]) if answer.ok else []
    response = page(request, "message_request.html", viewer, status=200 if answer.ok else answer.status,
                    section="messages", message=found, integration=integration, previews=previews,
                    problems=[] if answer.ok else answer.problems)
    return _email_styles(response, previews)


@router.post("/ui/p/{project}/messages/{message_id}/ack")
async def ack(request: Request, project: ProjectPath, message_id: Id) -> Response:
    _, api = await form_api(request)
    answer = await api.post(project_api(project, f"messages/{message_id}/ack"))
    return _after(request, answer, project_url(project, f"messages/{message_id}"), "Acknowledged")


@router.post("/ui/p/{project}/messages/{message_id}/cancel")
async def cancel(request: Request, project: ProjectPath, message_id: Id) -> Response:
    _, api = await form_api(request)
    answer = await api.delete(project_api(project, f"messages/{message_id}"))
    return _after(request, answer, project_url(project, f"messages/{message_id}"), "Cancelled: it will not be sent")


@router.post("/ui/p/{project}/deliveries/{delivery_id}/retry")
async def retry(request: Request, project: ProjectPath, delivery_id: Id) -> Response:
    form, api = await form_api(request)
    answer = await api.post(project_api(project, f"deliveries/{delivery_id}/retry"))
    back = form.get("message_id", "")
    target = project_url(project, f"messages/{back}") if back.replace("-", "").isalnum() else project_url(project, "messages")
    return _after(request, answer, target, "Sent again")


@router.post("/ui/p/{project}/deliveries/retry")
async def retry_all(request: Request, project: ProjectPath) -> Response:
    """Every dead delivery of an integration (after an outage), through the API's bulk retry."""
    form, api = await form_api(request)
    integration = form.get("integration") or None
    body: dict[str, Any] = {"status": "dead", "integration": integration}
    if form.get("since"):
        body["since"] = form["since"]
    answer = await api.post(project_api(project, "deliveries/retry"), json=body)
    back = form.get("message_id", "")
    target = (project_url(project, f"messages/{back}") if back.replace("-", "").isalnum()
              else project_url(project, "messages") + (f"?{urlencode({'integration': integration})}" if integration else ""))
    if answer.ok:
        n = len(answer.data["retried"])
        what = f" of {integration}" if integration else ""
        return go(request, target, flash=f"Sent {n} dead deliver{'y' if n == 1 else 'ies'}{what} again")
    return _after(request, answer, target, "")


def _after(request: Request, answer: Answer, target: str, done: str) -> Response:
    """Back to ``target`` with ``done``, or with the API's words when it refused."""
    if answer.ok:
        return go(request, target, flash=done)
    if answer.status in (403, 404):
        raise ApiError(answer)
    return go(request, target, flash=f"Not done: {answer.problem}")


# -- send ------------------------------------------------------------------------------------------
def _message(form: ImmutableMultiDict[str, str]) -> tuple[dict[str, Any], list[str]]:
    """The API's message body from the form, and what the form itself can't make sense of."""
    problems: list[str] = []
    body: dict[str, Any] = {"title": form.get("title", ""), "body": form.get("body", ""),
                            "format": form.get("format") or "plain", "priority": form.get("priority") or "medium"}
    to = [t for t in form.getlist("to") if t]
    if to:
        body["to"] = to
    labels: dict[str, str] = {}
    for number, line in enumerate(form.get("labels", "").splitlines(), 1):
        if not line.strip():
            continue
        name, eq, value = line.partition("=")
        if not eq or not name.strip():
            problems.append(f"labels, line {number}: write name=value")
            continue
        labels[name.strip()] = value.strip()
    if labels:
        body["labels"] = labels
    if form.get("thread_key", "").strip():
        body["thread_key"] = form["thread_key"].strip()
    if form.get("send_at", "").strip():
        try:
            when = dt.datetime.fromisoformat(form["send_at"].strip())
        except ValueError:
            problems.append("send at: a date and time, 2026-12-24T08:00")
        else:
            body["send_at"] = (when if when.tzinfo else when.replace(tzinfo=dt.UTC)).isoformat()
    if form.get("delay", "").strip():
        body["delay"] = form["delay"].strip()
    return body, problems


def _previews(targets: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each target's payload as a person would want to see it: an email's HTML (shown in a
    sandboxed frame) and text, a Teams card, Slack's blocks; anything else as JSON."""
    out = []
    for t in targets:
        payload = t.get("payload")
        shown: dict[str, Any] = {"integration": t["integration"], "kind": t["kind"], "route": t.get("route")}
        if isinstance(payload, dict) and t["kind"] == "email":
            shown.update(view="email", subject=payload.get("subject"), html=payload.get("html") or "",
                         text=payload.get("text") or "", to=payload.get("to") or [], problem=payload.get("problem"))
        elif isinstance(payload, dict) and t["kind"] == "teams" and payload.get("attachments"):
            shown.update(view="json", what="Adaptive Card", json=payload["attachments"][0].get("content", payload))
        elif isinstance(payload, dict) and t["kind"] == "slack":
            shown.update(view="json", what="Block Kit message", json=payload, text=payload.get("text"),
                         channel=payload.get("channel"))
        else:
            shown.update(view="json", what="Payload", json=payload)
        out.append(shown)
    return out


async def _send_page(request: Request, seen: tuple[Api, Any], form: ImmutableMultiDict[str, str] | None = None,
                     problems: list[str] | None = None, previews: list[dict[str, Any]] | None = None,
                     status: int = 200) -> Response:
    api, viewer = seen
    names = [i["name"] for i in await _integrations(api, viewer.project) if i.get("sends")]
    values = {k: form.get(k, "") for k in ("title", "body", "format", "priority", "labels", "thread_key", "send_at",
                                           "delay")} if form else {"format": "plain", "priority": "medium"}
    response = page(request, "send.html", viewer, status=status, section="send", integrations=names,
                    chosen=form.getlist("to") if form else [], values=values, formats=FORMATS, priorities=PRIORITIES,
                    problems=problems or [], previews=previews)
    return _email_styles(response, previews)


def _email_styles(response: Response, previews: list[dict[str, Any]] | None) -> Response:
    """``response`` allowing exactly the inline styles of the emails it previews (see :func:`_style_hashes`)."""
    styles = _style_hashes([p["html"] for p in previews or [] if p.get("view") == "email"])
    if styles:
        policy = response.headers["Content-Security-Policy"]
        response.headers["Content-Security-Policy"] = policy.replace(
            "style-src 'self'", "style-src 'self' 'unsafe-hashes' " + " ".join(styles), 1)
    return response


MAX_STYLE_HASHES = 200


def _style_hashes(documents: list[str]) -> list[str]:
    """CSP hash sources of the inline styles (``style`` attributes and ``<style>`` elements) of
    the emails previewed: a ``srcdoc`` frame inherits the page's policy, which allows no inline
    style; allowing exactly these shows each email as a mail program would, and nothing else
    (a style can't run a script; the frame is sandboxed anyway). None past the limit."""
    found: set[str] = set()

    class Styles(HTMLParser):
        in_style = False

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            found.update(v for k, v in attrs if k == "style" and v is not None)
            self.in_style = tag == "style"

        def handle_endtag(self, tag: str) -> None:
            self.in_style = False

        def handle_data(self, data: str) -> None:
            if self.in_style:
                found.add(data)

    for document in documents:
        Styles(convert_charrefs=True).feed(document)
    if not found or len(found) > MAX_STYLE_HASHES:
        return []
    return sorted(f"'sha256-{base64.b64encode(hashlib.sha256(s.encode()).digest()).decode()}'" for s in found)


@router.get("/ui/p/{project}/send")
async def send_form(request: Request, seen: Seen) -> Response:
    return await _send_page(request, seen)


@router.post("/ui/p/{project}/send")
async def send(request: Request, seen: Seen, project: ProjectPath) -> Response:
    form, api = await form_api(request)
    body, problems = _message(form)
    if problems:
        return await _send_page(request, seen, form, problems=problems, status=422)
    if form.get("action") == "preview":
        answer = await api.post(project_api(project, "preview"), json={k: v for k, v in body.items()
                                                                if k not in ("send_at", "delay")})
        if not answer.ok:
            return await _send_page(request, seen, form, problems=answer.problems, status=answer.status)
        return await _send_page(request, seen, form, previews=_previews(answer.data["targets"]))
    answer = await api.post(project_api(project, "messages"), json=body)
    if not answer.ok:
        return await _send_page(request, seen, form, problems=answer.problems, status=answer.status)
    accepted = answer.data
    n = len(accepted.get("deliveries", []))
    if accepted.get("status") == "scheduled":
        flash = f"Scheduled for {dt.datetime.fromtimestamp(accepted['send_at'], dt.UTC):%Y-%m-%d %H:%M:%S} UTC"
    else:
        flash = f"Accepted: {n} deliver{'y' if n == 1 else 'ies'} under way"
    return go(request, project_url(project, f"messages/{accepted['id']}"), flash=flash)
