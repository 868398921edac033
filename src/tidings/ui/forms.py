"""Reading what a page's form posted (``application/x-www-form-urlencoded``), and the CSRF token
it carries: a hidden ``csrf_token`` field (a form posted without JavaScript) or the
``X-CSRF-Token`` header (htmx). The UI checks neither: it hands the token to the API, which does."""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.datastructures import ImmutableMultiDict
from starlette.exceptions import HTTPException
from starlette.requests import Request

from ..server.auth import CSRF_HEADER
from .client import Api

MAX_FIELDS = 500
MAX_BODY = 1_000_000


async def read_form(request: Request) -> ImmutableMultiDict[str, str]:
    """The posted fields (a name may repeat); 400/413/415 for what isn't a form."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind not in ("application/x-www-form-urlencoded", ""):
        raise HTTPException(415, "post this page's form (application/x-www-form-urlencoded)")
    body = await request.body()
    if len(body) > MAX_BODY:
        raise HTTPException(413, "the form is too large")
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=MAX_FIELDS, errors="strict")
    except ValueError:
        raise HTTPException(400, "not a form: percent-encoded UTF-8 name=value pairs joined by &") from None
    return ImmutableMultiDict([(k, v.replace("\r\n", "\n")) for k, v in pairs])


async def form_api(request: Request) -> tuple[ImmutableMultiDict[str, str], Api]:
    """The posted form, and the API as its sender with the CSRF token they sent."""
    form = await read_form(request)
    csrf = request.headers.get(CSRF_HEADER) or form.get("csrf_token")
    return form, Api(request, csrf=csrf or "")
