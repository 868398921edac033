"""UI pages: a project's dashboard."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from .pages import Seen
from .render import page

router = APIRouter(include_in_schema=False)


@router.get("/ui/p/{project}/")
async def dashboard(request: Request, seen: Seen) -> Response:
    _, viewer = seen
    return page(request, "dashboard.html", viewer, section="dashboard")
