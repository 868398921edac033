"""UI pages: a project's dashboard — what waits, what died, deliveries per minute over the last
hour by status, the integrations in trouble and the last sync runs; its figures refresh every 5 s
(htmx asks for the ``figures`` block). Read from the API: ``deliveries/summary``,
``integrations`` and ``sync/runs`` (shown to those who may read the logs)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from .client import project_api
from .pages import Seen
from .render import page

router = APIRouter(include_in_schema=False)

CHART_STATUSES = ("delivered", "pending", "sending", "retrying", "held", "grouped", "suppressed", "dead")
"""Stacked from the bottom in this order."""
CHART_HEIGHT = 120
BAR = 8


@router.get("/ui/p/{project}/")
async def dashboard(request: Request, seen: Seen) -> Response:
    api, viewer = seen
    base = project_api(viewer.project)
    summary = await api.need(f"{base}/deliveries/summary", minutes=60)
    listed = await api.get(f"{base}/integrations")
    integrations = listed.data if listed.ok and isinstance(listed.data, list) else []
    troubled = [i for i in integrations if i.get("sends") and i.get("health") not in (None, "ok")]
    runs = await api.get(f"{base}/sync/runs", limit=5)
    totals: dict[str, int] = {}
    for minute in summary["minutes"]:
        for status, n in minute["counts"].items():
            totals[status] = totals.get(status, 0) + n
    return page(request, "dashboard.html", viewer, section="dashboard", summary=summary, totals=totals,
                chart=_chart(summary["minutes"]), troubled=troubled, senders=sum(1 for i in integrations if i.get("sends")),
                runs=runs.data["items"] if runs.ok else None)


def _chart(minutes: list[dict[str, Any]]) -> dict[str, Any]:
    """Stacked bars, one per minute, as SVG rectangles (attributes, not styles: the page's CSP
    allows no inline style)."""
    peak = max((sum(m["counts"].values()) for m in minutes), default=0) or 1
    bars = []
    for i, minute in enumerate(minutes):
        y = float(CHART_HEIGHT)
        for status in CHART_STATUSES:
            n = minute["counts"].get(status, 0)
            if not n:
                continue
            h = max(1.0, n / peak * (CHART_HEIGHT - 4))
            y -= h
            bars.append({"x": i * BAR + 1, "y": round(y, 2), "h": round(h, 2), "status": status, "n": n, "at": minute["at"]})
    return {"bars": bars, "width": len(minutes) * BAR + 2, "height": CHART_HEIGHT, "peak": peak,
            "bar": BAR - 2}
