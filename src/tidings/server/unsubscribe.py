"""``/l/unsubscribe/{token}``: the one-click unsubscribe link of an email (RFC 8058), no sign-in.

- ``GET`` shows what the link turns off, with a button (a link scanner that fetches it changes
  nothing).
- ``POST`` with the form field ``List-Unsubscribe=One-Click`` (what a mail client sends for the
  ``List-Unsubscribe-Post`` header, and what the button sends) turns the recipient's preference
  for (topic, channel) off, audited as the recipient acting through the link
  (``auth_method: link``). A replay changes nothing and answers the same.

A link that was forged or altered, has expired, is for something else (an acknowledge link), names
a recipient deleted since, or a topic the project has made required, is refused with a page that
says so (400, or 410 for what is gone), never a 500."""

from __future__ import annotations

import email.parser
import email.policy
import html
from typing import Any
from urllib.parse import parse_qs

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from ..audit import Actor
from ..recipients.edit import editing
from ..recipients.links import Unsubscribe, read_unsubscribe
from ..recipients.preferences import is_required
from ..recipients.prefs import set_preference
from ..recipients.store import RecipientError, recipient_by_id
from ..security.redact import redact
from ..security.signed import LinkError
from .auth import actor_of
from .oauth_api import _page as page
from .scoped import HubDep

log = structlog.get_logger("tidings.server")
router = APIRouter()
FIELD, VALUE = "List-Unsubscribe", "One-Click"
BY = "unsubscribe link"


class Refused(Exception):
    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status


def _what(u: Unsubscribe, recipient: dict[str, Any]) -> str:
    topic = f"messages about {u.topic}" if u.topic else "all messages"
    channel = f"by {u.channel}" if u.channel else "on every channel"
    return f"{topic} {channel} for {recipient['display_name']} ({recipient['name']}, project {recipient['project']})"


async def _check(hub: Any, token: str) -> tuple[Unsubscribe, dict[str, Any]]:
    """What the link names, and its recipient; :class:`Refused` otherwise."""
    try:
        u = read_unsubscribe(hub.signer(), token)
    except LinkError as exc:
        raise Refused(410 if "expired" in str(exc) else 400, f"{exc}.") from None
    async with hub.require_store().read() as conn:
        recipient = await recipient_by_id(conn, u.recipient)
    if recipient is None:
        raise Refused(410, "The person this link was made for is no longer a recipient: there is nothing to turn off.")
    if is_required(u.topic, hub.config.projects.get(recipient["project"])):
        raise Refused(400, f"Messages about {u.topic} are required in this project: they can't be turned off.")
    return u, recipient


def _one_click(content_type: str, body: bytes) -> bool:
    """Whether the form carries ``List-Unsubscribe=One-Click`` (urlencoded or multipart, RFC 8058)."""
    ctype = content_type.split(";")[0].strip().lower()
    if ctype == "multipart/form-data":
        head = f"Content-Type: {content_type}\r\n\r\n".encode("latin-1", "replace")
        msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
        for part in msg.iter_parts() if msg.is_multipart() else ():
            if part.get_param("name", header="content-disposition") == FIELD:
                return str(part.get_content()).strip() == VALUE
        return False
    try:
        fields = parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=20)
    except (UnicodeDecodeError, ValueError):
        return False
    return fields.get(FIELD) == [VALUE]


@router.get("/l/unsubscribe/{token}", include_in_schema=False)
async def confirm(token: str, hub: HubDep) -> HTMLResponse:
    try:
        u, recipient = await _check(hub, token)
    except Refused as exc:
        return page(exc.status, "This unsubscribe link can't be used", str(exc))
    except Exception as exc:  # the database down...: a page that says so
        log.error("unsubscribe.failed", error=f"{type(exc).__name__}: {redact(str(exc))}")
        return page(503, "Try again in a moment", "tidings could not read this link's recipient just now.")
    what = html.escape(redact(_what(u, recipient)))
    form = (f"Turn off {what}?</p><form method=post><input type=hidden name={FIELD} value={VALUE}>"
            "<button type=submit>Unsubscribe</button></form><p>You can turn it on again in your preferences.")
    return page(200, "Unsubscribe", form, raw=True)


@router.post("/l/unsubscribe/{token}", include_in_schema=False)
async def unsubscribe(token: str, request: Request, hub: HubDep) -> HTMLResponse:
    try:
        u, recipient = await _check(hub, token)
        if not _one_click(request.headers.get("content-type", ""), await request.body()):
            raise Refused(400, f"Not a one-click unsubscribe: the form must send {FIELD}={VALUE}.")
        who = actor_of(request)
        actor = Actor("user", name=f"recipient {recipient['project']}/{recipient['name']}", auth_method="link",
                      ip=who.ip, user_agent=who.user_agent, request_id=who.request_id)
        async with editing(hub, recipient["project"]) as conn:
            fresh = await recipient_by_id(conn, u.recipient)
            if fresh is None:
                raise Refused(410, "The person this link was made for is no longer a recipient.")
            await set_preference(conn, fresh, u.topic, u.channel, False, actor=actor,
                                 settings=hub.config.projects.get(fresh["project"]), by=BY)
    except Refused as exc:
        return page(exc.status, "This unsubscribe link can't be used", str(exc))
    except RecipientError as exc:  # a required topic, a malformed topic in a link made by this server's key
        return page(400, "This unsubscribe link can't be used", str(exc))
    except Exception as exc:  # the database down...: a page that says so, never a 500 with a trace
        log.error("unsubscribe.failed", error=f"{type(exc).__name__}: {redact(str(exc))}")
        return page(503, "Not unsubscribed yet", "tidings could not record it: try again in a moment.")
    return page(200, "Unsubscribed", f"{_what(u, recipient)}: turned off.")


def install(app: Any) -> None:
    app.include_router(router)
