"""UI pages: a project's audit trail (``/api/v1/projects/{project}/audit``: by action, actor and
time, a page at a time), and for site admins the verification of the whole chain
(``/api/v1/audit/verify``)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from .client import ApiError, project_api
from .pages import Seen
from .render import page

router = APIRouter(include_in_schema=False)
SINCE = [("", "any time"), ("1h", "last hour"), ("1d", "last day"), ("7d", "last 7 days"), ("30d", "last 30 days")]


@router.get("/ui/p/{project}/audit")
async def audit(request: Request, seen: Seen, action: str = "", actor: str = "", since: str = "",
                before: str = "", verify: str = "") -> Response:
    api, who = seen
    filters = {"action": action.strip(), "actor": actor.strip(), "since": since}
    answer = await api.get(project_api(who.project, "audit"), **filters, before=before or None, limit=50)
    if answer.status in (401, 403, 404):
        raise ApiError(answer)
    problems = [] if answer.ok else answer.problems  # a malformed filter: the form shows why
    data = answer.data if answer.ok else {"items": [], "next": None}
    verified = None
    if verify and who.site_admin:
        verified = await api.need("/api/v1/audit/verify")
    return page(request, "audit.html", who, status=200 if answer.ok else answer.status, section="audit",
                items=data["items"], next_before=data["next"], filters=filters, sinces=SINCE, problems=problems,
                verified=verified, paged=bool(before))
