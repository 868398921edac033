"""An email as tidings renders it: a multipart/alternative message, text and HTML (the Jinja2
templates in ``templates/``), with the headers that thread it, rank it and offer an unsubscribe link.

Rendering is pure (:func:`render_payload`): the delivery's own ``Message-ID``, ``Date`` and
acknowledge link are added when it is sent (:func:`build_message`), into slots the templates leave."""

from __future__ import annotations

import datetime as dt
import hashlib
import html
import re
import secrets
from dataclasses import dataclass, field
from email.headerregistry import HeaderRegistry, UnstructuredHeader
from email.message import EmailMessage
from email.policy import default as default_policy
from email.utils import format_datetime
from functools import cache
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from ...message import Format, Message, Priority
from ..base import ACK_PRIORITIES, Attempt
from ..http import check_http_url
from ..markup import html_to_text, markdown_to_html, sanitize_html
from .addresses import CONTROL, address_header, split_address

COLOURS: dict[Priority, str] = {
    Priority.CRITICAL: "#d00000",
    Priority.HIGH: "#ff6600",
    Priority.MEDIUM: "#ffcc00",
    Priority.LOW: "#0099ff",
    Priority.INFO: "#999999",
}
_BADGE_TEXT = {Priority.MEDIUM: "#18181b"}  # dark text where the band is light
X_PRIORITY: dict[Priority, str] = {
    Priority.CRITICAL: "1 (Highest)",
    Priority.HIGH: "2 (High)",
    Priority.MEDIUM: "3 (Normal)",
    Priority.LOW: "5 (Lowest)",
    Priority.INFO: "5 (Lowest)",
}
IMPORTANCE: dict[Priority, str] = {
    Priority.CRITICAL: "high",
    Priority.HIGH: "high",
    Priority.MEDIUM: "normal",
    Priority.LOW: "low",
    Priority.INFO: "low",
}
SUBJECT_MAX = 200
LABEL_UNSUBSCRIBE = "unsubscribe_url"
"""A one-click unsubscribe link (set when a message is addressed to a recipient): RFC 8058
``List-Unsubscribe`` headers and a line in the footer."""


@dataclass(frozen=True, slots=True)
class EmailPayload:
    """What :meth:`EmailNotifier.render` makes of a message: everything but the delivery's own
    ``Message-ID`` and ``Date``, which :meth:`EmailNotifier.build` adds."""

    subject: str
    sender: str
    to: tuple[str, ...]
    cc: tuple[str, ...]
    bcc: tuple[str, ...]
    headers: tuple[tuple[str, str], ...]
    text: str
    html: str
    problem: str | None = None
    """Why this message can't be sent (an invalid ``email_to`` label): a permanent error."""
    recipients: tuple[str, ...] = field(default=())
    """Envelope recipients: the addresses of to, cc and bcc, each once."""


_SLOT = f"\u2060tidings-sent-at-{secrets.token_hex(8)}\u2060"
"""Where the delivery's time goes: rendering is pure, the time belongs to the delivery."""
_ACK_SLOT = f"\u2060tidings-ack-{secrets.token_hex(8)}\u2060"
"""Where a critical or high message's acknowledge link goes, filled in when sent (it names the message)."""


@cache
def _ack_html(url: str) -> str:
    return ('<tr><td style="padding:16px 24px 4px 24px;">'
            f'<a href="{html.escape(url)}" style="display:inline-block;padding:8px 14px;border-radius:4px;'
            'background-color:#dc2626;color:#ffffff;font-size:13px;font-weight:bold;text-decoration:none;">'
            "Acknowledge</a></td></tr>")


def _templates() -> Environment:
    return Environment(
        loader=PackageLoader("tidings.integrations.email", "templates"),
        autoescape=lambda name: bool(name and name.endswith(".html.j2")),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _body_html(message: Message) -> str:
    if not message.body.strip():
        return ""
    if message.format is Format.MARKDOWN:
        return markdown_to_html(message.body)
    if message.format is Format.HTML:
        return sanitize_html(message.body)
    return html.escape(message.body).replace("\n", "<br>\n")


def _body_text(message: Message) -> str:
    if message.format is Format.HTML:
        return html_to_text(message.body)
    return message.body.strip("\n")


def one_line(text: str) -> str:
    """``text`` with line breaks and control characters as single spaces."""
    return re.sub(r"\s+", " ", re.sub(r"[\x00-\x1f\x7f\x85\u2028\u2029]", " ", text)).strip()


def subject_of(prefix: str, title: str) -> str:
    """``prefix`` + ``title`` on one line (line breaks and control characters become spaces: a
    title can't add a header), at most :data:`SUBJECT_MAX` characters."""
    text = one_line(f"{prefix} {title}" if prefix else title)
    return text if len(text) <= SUBJECT_MAX else text[: SUBJECT_MAX - 1].rstrip() + "…"


def unsubscribe_link(value: str | None) -> str:
    """The ``unsubscribe_url`` label if it is an http(s) URL fit for a header (``<...>``, no
    spaces, no line breaks), else ``''``: a malformed one is left out, never sent."""
    if not value or len(value) > 900 or any(c in value for c in "<>\"'") or CONTROL.search(value):
        return ""
    try:
        check_http_url(value)
    except ValueError:
        return ""
    return value


class _OneLine(UnstructuredHeader):
    """A header written on one line as it is: a long URL in ``List-Unsubscribe`` would otherwise be
    folded as an RFC 2047 encoded word, which mail clients don't read as a URL (at most 900
    characters: lines stay under SMTP's 998)."""

    def fold(self, *, policy: Any) -> str:  # type: ignore[override]
        return f"{self.name}: {self}{policy.linesep}"


_HEADERS = HeaderRegistry()
_HEADERS.map_to_type("list-unsubscribe", _OneLine)
_POLICY = default_policy.clone(header_factory=_HEADERS)


def thread_root(thread_key: str, domain: str) -> str:
    """The Message-ID every message of a thread replies to, derived from the key alone."""
    return f"<thread-{hashlib.sha256(thread_key.encode()).hexdigest()[:32]}@{domain}>"


def render_payload(message: Message, *, sender: str, subject_prefix: str, to: list[str], cc: tuple[str, ...],
                   bcc: tuple[str, ...], domain: str, problem: str | None) -> EmailPayload:
    """``message`` as an email from ``sender`` to ``to``, ``cc`` and ``bcc``; ``domain`` names its
    thread's root; ``problem``: why it can't be sent."""
    headers: list[tuple[str, str]] = [
        ("X-Priority", X_PRIORITY[message.priority]),
        ("Importance", IMPORTANCE[message.priority]),
        ("Auto-Submitted", "auto-generated"),
    ]
    if message.thread_key:
        root = thread_root(message.thread_key, domain)
        headers += [("In-Reply-To", root), ("References", root)]
    unsubscribe = unsubscribe_link(message.labels.get(LABEL_UNSUBSCRIBE))
    if unsubscribe:
        headers += [("List-Unsubscribe", f"<{unsubscribe}>"), ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click")]
    context = {
        "title": one_line(message.title),
        "priority_label": message.priority.value.upper(),
        "colour": COLOURS[message.priority],
        "badge_text": _BADGE_TEXT.get(message.priority, "#ffffff"),
        "resolved": message.resolves,
        "body_text": _body_text(message),
        "body_html": Markup(_body_html(message)),  # noqa: S704 - rebuilt from an allow-list or escaped
        "fields": list(message.fields),
        "links": [(link.label, link.url) for link in message.links],
        "source": message.source or "",
        "sent_at": _SLOT,
        "unsubscribe_url": unsubscribe,
        "ack": _ACK_SLOT if message.priority in ACK_PRIORITIES else "",
    }
    env = _templates()
    envelope: list[str] = []
    for value in [*to, *cc, *bcc]:
        addr = split_address(value)[1]
        if addr.lower() not in (a.lower() for a in envelope):
            envelope.append(addr)
    return EmailPayload(
        subject=subject_of(subject_prefix, message.title),
        sender=sender,
        to=tuple(to),
        cc=cc,
        bcc=bcc,
        headers=tuple(headers),
        text=env.get_template("message.txt.j2").render(context),
        html=env.get_template("message.html.j2").render(context),
        problem=problem,
        recipients=tuple(envelope),
    )


def preview_payload(payload: EmailPayload) -> dict[str, Any]:
    """``payload`` as the preview shows it: the time and the acknowledge link as placeholders."""
    later = "(time of sending)"
    return {
        "subject": payload.subject,
        "from": payload.sender,
        "to": list(payload.to),
        "cc": list(payload.cc),
        "bcc": list(payload.bcc),
        "headers": dict(payload.headers),
        "text": payload.text.replace(_SLOT, later).replace(_ACK_SLOT, "\nAcknowledge: (a signed link)\n"),
        "html": payload.html.replace(_SLOT, later).replace(_ACK_SLOT, _ack_html("#")),
        **({"problem": payload.problem} if payload.problem else {}),
    }


def wants_ack(payload: EmailPayload) -> bool:
    """Whether ``payload`` has a place for an acknowledge link (a critical or high message)."""
    return _ACK_SLOT in payload.text


def build_message(payload: EmailPayload, attempt: Attempt, message_id: str, ack_link: str | None) -> EmailMessage:
    """The email as sent for ``attempt``: ``payload`` with its ``Message-ID``, its time and
    ``ack_link`` (None: no acknowledge link)."""
    created = dt.datetime.fromtimestamp(attempt.created_at, dt.UTC) if attempt.created_at > 0 else dt.datetime.now(dt.UTC)
    when = created.strftime("%Y-%m-%d %H:%M UTC")
    msg = EmailMessage(policy=_POLICY)
    msg["Subject"] = payload.subject
    msg["From"] = payload.sender
    msg["To"] = [address_header(a) for a in payload.to]
    if payload.cc:
        msg["Cc"] = [address_header(a) for a in payload.cc]
    msg["Date"] = format_datetime(created)
    msg["Message-ID"] = message_id
    for name, value in payload.headers:
        msg[name] = value
    text = payload.text.replace(_ACK_SLOT, f"\nAcknowledge: {ack_link}\n" if ack_link else "")
    markup = payload.html.replace(_ACK_SLOT, _ack_html(ack_link) if ack_link else "")
    msg.set_content(text.replace(_SLOT, when))
    msg.add_alternative(markup.replace(_SLOT, html.escape(when)), subtype="html")
    # A boundary of the delivery's own, so that a retry sends the same bytes.
    msg.set_boundary(f"==tidings-{hashlib.sha256(attempt.delivery_id.encode()).hexdigest()[:32]}==")
    return msg
