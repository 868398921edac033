"""Pages from Jinja2 templates; a part of a page (a template block, through jinja2-fragments) for
htmx to swap in; static files under names that carry their content's hash."""

from __future__ import annotations

import hashlib
import json
import time
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlencode

from jinja2 import Environment, PackageLoader, select_autoescape
from jinja2_fragments import BlockNotFoundError, render_block
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from .viewer import Viewer

STATIC_DIR = Path(__file__).with_name("static")
STATIC_URL = "/ui/static"
FLASH_COOKIE = "tidings_flash"

CSP = "; ".join([
    "default-src 'self'", "script-src 'self'", "style-src 'self'", "img-src 'self' data:",
    "connect-src 'self'", "form-action 'self'", "frame-ancestors 'none'", "base-uri 'none'", "object-src 'none'",
])
"""Every page loads only what tidings serves, runs no inline script and can't be framed."""

_SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


# -- static files ----------------------------------------------------------------------------------
@cache
def assets() -> dict[str, tuple[str, bytes]]:
    """Hashed name (``htmx.min.3f2a9c1b0d.js``) -> (plain name, content), for every static file."""
    out: dict[str, tuple[str, bytes]] = {}
    for path in sorted(STATIC_DIR.iterdir()):
        if path.is_file() and not path.name.startswith("LICENSE"):
            data = path.read_bytes()
            digest = hashlib.sha256(data).hexdigest()[:10]
            stem, dot, suffix = path.name.partition(".")
            out[f"{stem}.{digest}.{suffix}" if dot else f"{stem}.{digest}"] = (path.name, data)
    return out


@cache
def asset_url(name: str) -> str:
    """The cache-busting URL of static file ``name``."""
    for hashed, (plain, _) in assets().items():
        if plain == name:
            return f"{STATIC_URL}/{hashed}"
    raise KeyError(f"no static file {name!r} in {STATIC_DIR}")


_TYPES = {"js": "text/javascript; charset=utf-8", "css": "text/css; charset=utf-8", "svg": "image/svg+xml",
          "png": "image/png", "ico": "image/x-icon"}


def static_file(name: str) -> Response:
    """A hashed static file, cached for a year (its name changes with its content); 404 otherwise."""
    found = assets().get(name)
    if found is None:
        return Response("not found", status_code=404, media_type="text/plain")
    kind = _TYPES.get(found[0].rsplit(".", 1)[-1], "application/octet-stream")
    return Response(found[1], media_type=kind, headers={
        "Cache-Control": "public, max-age=31536000, immutable", "X-Content-Type-Options": "nosniff"})


# -- templates -------------------------------------------------------------------------------------
def _when(value: float | int | str | None) -> str:
    """A Unix time as ``2026-12-06 15:04:05 UTC`` (an ISO string is shown as it is)."""
    if value is None or value == "":
        return "—"
    if isinstance(value, str):
        return value
    return datetime.fromtimestamp(float(value), UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _ago(value: float | int | None) -> str:
    """How long ago a Unix time was, in a few characters (``3 min ago``)."""
    if value is None:
        return "never"
    seconds = time.time() - float(value)
    if seconds < 0:
        return "in " + _span(-seconds, round)
    return _span(seconds, int) + " ago"


def _span(seconds: float, whole: Any) -> str:
    """``seconds`` in its largest unit: cut down for the past (``1 h ago`` until 2 h), rounded for
    the future (a 2-hour silence just made ends ``in 2 h``)."""
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if seconds >= size:
            return f"{whole(seconds / size)} {unit}"
    return f"{whole(seconds)} s"


def _query(request: Request, **changes: Any) -> str:
    """The page's query string with ``changes`` (None removes a parameter)."""
    params = dict(request.query_params)
    for key, value in changes.items():
        if value is None:
            params.pop(key, None)
        else:
            params[key] = value
    return "?" + urlencode(params) if params else "?"


@cache
def environment() -> Environment:
    env = Environment(loader=PackageLoader("tidings.ui", "templates"), autoescape=select_autoescape(default=True),
                      trim_blocks=True, lstrip_blocks=True)
    env.globals.update(asset=asset_url)
    env.filters.update(when=_when, ago=_ago, urlpart=lambda v: quote(str(v), safe=""),
                       pretty=lambda v: json.dumps(v, indent=2, sort_keys=True, ensure_ascii=False, default=str))
    return env


def page(request: Request, template: str, viewer: Viewer | None, status: int = 200, **context: Any) -> Response:
    """Render ``template`` as a whole page, or, for htmx asking for one part (``?part=NAME`` or the
    ``HX-Target`` naming a block), that block alone."""
    flash = unquote(request.cookies.get(FLASH_COOKIE) or "") or None
    ctx = {"request": request, "viewer": viewer, "query": lambda **kw: _query(request, **kw), "flash": flash,
           **context}
    part = request.query_params.get("part") if request.headers.get("hx-request") else None
    try:
        html = (render_block(environment(), template, part, ctx) if part
                else environment().get_template(template).render(ctx))
    except BlockNotFoundError:
        return HTMLResponse(f"no part {part!r} on this page", status_code=404, headers=_SECURITY_HEADERS)
    response = HTMLResponse(html, status_code=status, headers=_SECURITY_HEADERS)
    if flash and not part:
        response.delete_cookie(FLASH_COOKIE, path="/ui")
    return response


def go(request: Request, url: str, flash: str | None = None) -> Response:
    """After a change: to ``url`` (303 for a form, ``HX-Redirect`` for htmx), with a one-time notice."""
    if request.headers.get("hx-request"):
        response: Response = Response(status_code=204, headers={"HX-Redirect": url})
    else:
        response = RedirectResponse(url, status_code=303)
    if flash:
        response.set_cookie(FLASH_COOKIE, quote(flash[:300]), max_age=60, path="/ui", httponly=True, samesite="lax")
    return response
