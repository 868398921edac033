"""Email over SMTP (aiosmtplib): a multipart/alternative message, text and HTML, per notification.

Security: ``starttls`` (port 587, the default) or ``tls`` (implicit TLS, port 465), with the
server's certificate verified (``ca_file`` trusts a private CA; ``verify_tls: false`` turns the
check off). ``none`` (plain SMTP, port 25) is refused unless ``allow_insecure: true``.

Headers: ``Message-ID`` is ``<{delivery id}@{domain}>``, the same on every retry of a delivery
(the idempotency key a receiving system can dedup on). Messages sharing a ``thread_key`` carry
``In-Reply-To`` and ``References`` pointing at ``<thread-{sha256(thread_key)[:32]}@{domain}>``, so
mail clients thread them without any stored state. ``X-Priority`` and ``Importance`` follow the
priority; ``Auto-Submitted: auto-generated`` keeps vacation responders quiet.

Header injection: addresses, names and the subject prefix with a line break are configuration
errors; a title's line breaks become spaces in the subject. Nothing a message carries can add a
header or a recipient, except the ``email_to`` label, which is validated like configuration.

One SMTP connection per send (connect, STARTTLS, AUTH, MAIL/RCPT/DATA, QUIT), bounded by the
integration's ``concurrency`` (4 by default) and ``timeout``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import html
import re
import secrets
import ssl
import time
from dataclasses import dataclass, field
from email.headerregistry import Address, HeaderRegistry, UnstructuredHeader
from email.message import EmailMessage
from email.policy import default as default_policy
from email.utils import format_datetime, parseaddr
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import aiosmtplib
from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup
from pydantic import Field, SecretStr, field_validator, model_validator

from ...message import Format, Message, Priority
from ...security.outbound import DestinationRefused
from ...security.redact import clip, mask
from ..base import (
    ACK_PRIORITIES,
    NO_OPTIONS,
    Addressable,
    Attempt,
    IntegrationSettings,
    Notifier,
    Outcome,
    RenderOptions,
)
from ..http import check_http_url
from ..markup import html_to_text, markdown_to_html, sanitize_html

if TYPE_CHECKING:
    from ...recipients.model import Person

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
DEFAULT_PORTS = {"starttls": 587, "tls": 465, "none": 25}
SUBJECT_MAX = 200
LABEL_TO = "email_to"
LABEL_TO_MAX = 50
"""At most this many recipients in one message's ``email_to`` label."""
LABEL_PERSON = "email_person"
"""Set on a message addressed to one recipient (their id): it goes to them alone, without cc and bcc."""
LABEL_UNSUBSCRIBE = "unsubscribe_url"
"""A one-click unsubscribe link (set when a message is addressed to a recipient): RFC 8058
``List-Unsubscribe`` headers and a line in the footer."""

_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_ADDR_SPEC = re.compile(rf"^{_ATOM}(?:\.{_ATOM})*@{_LABEL}(?:\.{_LABEL})*$")
_DOMAIN = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*$")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # any control character but tab
_HOST = re.compile(r"^(?:[A-Za-z0-9_.-]+|\[[0-9A-Fa-f:.]+\])$")


# -- addresses -------------------------------------------------------------------------------------
def split_address(value: str) -> tuple[str, str]:
    """``(display name, addr-spec)`` of ``jane@example.com`` or ``Jane Doe <jane@example.com>``;
    ValueError for anything else: line breaks, several addresses, a malformed address."""
    if _CONTROL.search(value):
        raise ValueError("an address must not contain line breaks or control characters")
    value = value.strip()
    m = re.fullmatch(r'(?:(?P<name>[^<>]*?)\s*<(?P<addr>[^<>\s]+)>|(?P<bare>[^<>\s,;]+))', value)
    if not m:
        raise ValueError(f"{value!r} is not one email address")
    addr = m.group("addr") or m.group("bare")
    name = (m.group("name") or "").strip()
    if len(name) >= 2 and name[0] == name[-1] == '"':
        name = name[1:-1]
    if not _ADDR_SPEC.match(addr) or len(addr) > 254 or len(addr.split("@")[0]) > 64:
        raise ValueError(f"{value!r} is not a valid email address")
    if any(c in name for c in '<>"\\') or (not m.group("addr") and name):
        raise ValueError(f"{value!r}: write a name as Name <address>, without quotes or brackets in it")
    # The standard library must read it the same way (no second address hiding in it).
    parsed = parseaddr(value)
    if parsed[1] != addr:
        raise ValueError(f"{value!r} is not one email address")
    return name, addr


def check_address(value: str) -> str:
    split_address(value)
    return value.strip()


def _address_header(value: str) -> Address:
    name, addr = split_address(value)
    user, _, domain = addr.rpartition("@")
    return Address(display_name=name, username=user, domain=domain)


def _no_line_breaks(value: str, what: str) -> str:
    if _CONTROL.search(value):
        raise ValueError(f"{what} must not contain line breaks or control characters")
    return value


class EmailSettings(IntegrationSettings):
    outbound = ("host",)
    kind: Literal["email"]
    host: str = Field(min_length=1, max_length=253, description="the SMTP server")
    port: int | None = Field(None, ge=1, le=65535, description="default: 587 starttls, 465 tls, 25 none")
    security: Literal["starttls", "tls", "none"] = Field(
        "starttls", description="starttls (587), tls (implicit TLS, 465), none (plain; needs allow_insecure)"
    )
    allow_insecure: bool = Field(False, description="allow security: none (mail and password in clear text)")
    username: str | None = Field(None, min_length=1)
    password: SecretStr | None = None
    from_address: str = Field(description="the envelope sender and From address")
    from_name: str = Field("", max_length=200)
    to: list[str] = Field(min_length=1, max_length=100)
    cc: list[str] = Field(default_factory=list, max_length=100)
    bcc: list[str] = Field(default_factory=list, max_length=100)
    verify_tls: bool = Field(True, description="verify the server's certificate and host name")
    ca_file: str | None = Field(None, description="PEM file of CA certificates to trust (a private CA)")
    domain: str | None = Field(None, description="domain of Message-IDs and EHLO; default: from_address's domain")
    subject_prefix: str = Field("", max_length=100)
    allowed_domains: list[str] = Field(
        default_factory=list, description="if set, email_to labels may only name addresses in these domains"
    )

    @field_validator("host")
    @classmethod
    def _host(cls, v: str) -> str:
        if not _HOST.match(v):
            raise ValueError("a host name or IP address (no scheme, port or spaces)")
        return v

    @field_validator("from_address")
    @classmethod
    def _from(cls, v: str) -> str:
        name, addr = split_address(v)
        if name:
            raise ValueError("the address alone; put the name in from_name")
        return addr

    @field_validator("to", "cc", "bcc")
    @classmethod
    def _addresses(cls, v: list[str]) -> list[str]:
        return [check_address(a) for a in v]

    @field_validator("from_name", "subject_prefix")
    @classmethod
    def _header_text(cls, v: str) -> str:
        return _no_line_breaks(v, "a header value")

    @field_validator("username")
    @classmethod
    def _username(cls, v: str | None) -> str | None:
        return v if v is None else _no_line_breaks(v, "username")

    @field_validator("password")
    @classmethod
    def _password(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and _CONTROL.search(v.get_secret_value()):
            raise ValueError("must not contain line breaks or control characters")
        return v

    @field_validator("domain")
    @classmethod
    def _domain(cls, v: str | None) -> str | None:
        if v is not None and not _DOMAIN.match(v):
            raise ValueError(f"{v!r} is not a domain name")
        return v

    @field_validator("allowed_domains")
    @classmethod
    def _allowed(cls, v: list[str]) -> list[str]:
        for d in v:
            if not _DOMAIN.match(d):
                raise ValueError(f"{d!r} is not a domain name")
        return [d.lower() for d in v]

    @field_validator("ca_file")
    @classmethod
    def _ca_file(cls, v: str | None) -> str | None:
        if v is not None and not Path(v).is_file():
            raise ValueError(f"no such file: {v}")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> EmailSettings:
        if self.security == "none" and not self.allow_insecure:
            raise ValueError(
                "security: none sends mail (and any password) in clear text; use starttls or tls, "
                "or set allow_insecure: true (e.g. for a relay on localhost)"
            )
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password go together: set both or neither")
        return self

    @property
    def effective_port(self) -> int:
        return self.port or DEFAULT_PORTS[self.security]

    @property
    def effective_domain(self) -> str:
        return self.domain or self.from_address.rpartition("@")[2]


# -- the payload -----------------------------------------------------------------------------------
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
_ACK_SLOT = f"\u2060tidings-ack-{secrets.token_hex(8)}\u2060"
"""Where a critical or high message's acknowledge link goes, filled in when sent (it names the message)."""
"""Where the delivery's time goes: rendering is pure, the time belongs to the delivery."""


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
    if not value or len(value) > 900 or any(c in value for c in "<>\"'") or _CONTROL.search(value):
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


class EmailNotifier(Notifier, Addressable):
    kind = "email"
    Settings = EmailSettings
    unsubscribe = True
    concurrency = 4
    timeout = 30.0
    settings: EmailSettings

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        s = self.settings
        self.domain = s.effective_domain
        self.port = s.effective_port
        self._sender = str(Address(display_name=s.from_name, addr_spec=s.from_address))
        self._secrets = sorted(set(s.secret_values()), key=len, reverse=True)
        self._tls: ssl.SSLContext | None = None

    # -- addressing a person ---------------------------------------------------------------------
    def reaches(self, person: Person) -> bool:
        allowed = self.settings.allowed_domains
        return bool(person.email) and (not allowed or person.email.rpartition("@")[2].lower() in allowed)  # type: ignore[union-attr]

    def address(self, message: Message, person: Person) -> Message | None:
        """To the person's mailbox alone (``email_to``; no cc or bcc)."""
        if not self.reaches(person):
            return None
        return message.model_copy(update={"labels": {**message.labels, LABEL_TO: str(person.email), LABEL_PERSON: person.id}})

    # -- rendering -------------------------------------------------------------------------------
    def recipients_for(self, message: Message) -> tuple[list[str], str | None]:
        """``to`` for this message: its ``email_to`` label (comma-separated) replaces the
        integration's ``to``; ``cc`` and ``bcc`` always apply. An invalid label is a problem."""
        label = message.labels.get(LABEL_TO)
        if label is None or not label.strip():
            return list(self.settings.to), None
        found: list[str] = []
        for part in label.split(","):
            if not part.strip():
                continue
            try:
                _, addr = split_address(part)
            except ValueError as exc:
                return [], f"label {LABEL_TO}: {exc}"
            allowed = self.settings.allowed_domains
            if allowed and addr.rpartition("@")[2].lower() not in allowed:
                return [], f"label {LABEL_TO}: {addr} is not in allowed_domains ({', '.join(allowed)})"
            found.append(part.strip())
        if not found:
            return [], f"label {LABEL_TO}: no address in it"
        if len(found) > LABEL_TO_MAX:
            return [], f"label {LABEL_TO}: at most {LABEL_TO_MAX} addresses"
        return found, None

    def render(self, message: Message, options: RenderOptions = NO_OPTIONS) -> EmailPayload:
        s = self.settings
        to, problem = self.recipients_for(message)
        headers: list[tuple[str, str]] = [
            ("X-Priority", X_PRIORITY[message.priority]),
            ("Importance", IMPORTANCE[message.priority]),
            ("Auto-Submitted", "auto-generated"),
        ]
        if message.thread_key:
            root = thread_root(message.thread_key, self.domain)
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
        cc, bcc = ((), ()) if message.labels.get(LABEL_PERSON) else (tuple(s.cc), tuple(s.bcc))
        envelope: list[str] = []
        for value in [*to, *cc, *bcc]:
            addr = split_address(value)[1]
            if addr.lower() not in (a.lower() for a in envelope):
                envelope.append(addr)
        return EmailPayload(
            subject=subject_of(s.subject_prefix, message.title),
            sender=self._sender,
            to=tuple(to),
            cc=cc,
            bcc=bcc,
            headers=tuple(headers),
            text=env.get_template("message.txt.j2").render(context),
            html=env.get_template("message.html.j2").render(context),
            problem=problem,
            recipients=tuple(envelope),
        )

    def preview(self, payload: EmailPayload) -> dict[str, Any]:
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

    def message_id(self, attempt: Attempt) -> str:
        """Stable across retries: the delivery id is the idempotency key."""
        return f"<{attempt.delivery_id}@{self.domain}>"

    def build(self, payload: EmailPayload, attempt: Attempt) -> EmailMessage:
        """The email as sent for ``attempt``."""
        created = dt.datetime.fromtimestamp(attempt.created_at, dt.UTC) if attempt.created_at > 0 else dt.datetime.now(dt.UTC)
        when = created.strftime("%Y-%m-%d %H:%M UTC")
        msg = EmailMessage(policy=_POLICY)
        msg["Subject"] = payload.subject
        msg["From"] = payload.sender
        msg["To"] = [_address_header(a) for a in payload.to]
        if payload.cc:
            msg["Cc"] = [_address_header(a) for a in payload.cc]
        msg["Date"] = format_datetime(created)
        msg["Message-ID"] = self.message_id(attempt)
        for name, value in payload.headers:
            msg[name] = value
        link = self._ack_link(attempt) if _ACK_SLOT in payload.text else None
        text = payload.text.replace(_ACK_SLOT, f"\nAcknowledge: {link}\n" if link else "")
        markup = payload.html.replace(_ACK_SLOT, _ack_html(link) if link else "")
        msg.set_content(text.replace(_SLOT, when))
        msg.add_alternative(markup.replace(_SLOT, html.escape(when)), subtype="html")
        # A boundary of the delivery's own, so that a retry sends the same bytes.
        msg.set_boundary(f"==tidings-{hashlib.sha256(attempt.delivery_id.encode()).hexdigest()[:32]}==")
        return msg

    def _ack_link(self, attempt: Attempt) -> str | None:
        """The signed acknowledge link, issued when the delivery was created (a retry sends the same one)."""
        make = self.context.ack_link
        issued = attempt.created_at if attempt.created_at > 0 else time.time()
        return make(attempt.message_id, issued, "email") if make is not None else None

    # -- sending ---------------------------------------------------------------------------------
    def _tls_context(self) -> ssl.SSLContext:
        if self._tls is None:
            ctx = ssl.create_default_context(cafile=self.settings.ca_file)
            if not self.settings.verify_tls:
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            self._tls = ctx
        return self._tls

    async def _connect(self) -> aiosmtplib.SMTP:
        s = self.settings
        tls = s.security != "none"
        # Connect to an address the outbound guard checked; the host name still names the
        # server for TLS (SNI and certificate verification).
        sock = await self.destinations.connect(s.host, self.port)
        smtp = aiosmtplib.SMTP(
            hostname=s.host,
            sock=sock,
            use_tls=s.security == "tls",
            start_tls=s.security == "starttls",
            tls_context=self._tls_context() if tls else None,
            timeout=self.effective_timeout,
            local_hostname=self.domain,
        )
        try:
            await smtp.connect()
        except BaseException:
            sock.close()
            raise
        try:
            if s.username is not None and s.password is not None:
                await smtp.login(s.username, s.password.get_secret_value())
        except BaseException:
            smtp.close()
            raise
        return smtp

    async def send(self, payload: EmailPayload, attempt: Attempt) -> Outcome:
        if payload.problem:
            return Outcome.permanent(payload.problem)
        try:
            msg = self.build(payload, attempt)
        except (ValueError, TypeError) as exc:
            return Outcome.permanent(f"could not build the email: {exc}")
        try:
            async with asyncio.timeout(self.effective_timeout):
                smtp = await self._connect()
                try:
                    refused, _reply = await smtp.send_message(
                        msg, sender=self.settings.from_address, recipients=list(payload.recipients)
                    )
                except BaseException:
                    smtp.close()
                    raise
                await _quit(smtp)
        except (aiosmtplib.SMTPException, OSError, TimeoutError, DestinationRefused) as exc:  # SSLError: OSError
            return self._scrub(self._failure(exc))
        message_id = str(msg["Message-ID"])
        if not refused:
            return Outcome.delivered(message_id)
        # Some recipients were refused, the others accepted the mail: it is delivered (a retry
        # would mail the others twice); the refusals are listed with the Message-ID.
        listed = "; ".join(f"{rcpt}: {r.code} {_one_line(r.message)}" for rcpt, r in refused.items())
        total = len(payload.recipients)
        return Outcome.delivered(message_id, warning=self._scrub_text(f"refused {len(refused)} of {total}: {listed}"))

    async def test(self) -> Outcome:
        """Connect, STARTTLS or TLS, authenticate, QUIT: checks everything but sends no mail."""
        try:
            async with asyncio.timeout(self.effective_timeout):
                smtp = await self._connect()
                await _quit(smtp)
        except (aiosmtplib.SMTPException, OSError, TimeoutError, DestinationRefused) as exc:
            return self._scrub(self._failure(exc))
        how = {"starttls": "STARTTLS", "tls": "TLS", "none": "no TLS"}[self.settings.security]
        who = f", authenticated as {self.settings.username}" if self.settings.username else ""
        return Outcome.delivered(f"{self.settings.host}:{self.port} ({how}{who})")

    def _failure(self, exc: BaseException) -> Outcome:
        where = f"{self.settings.host}:{self.port}"
        if isinstance(exc, DestinationRefused):
            return Outcome.permanent(str(exc))
        if cert := _find(exc, ssl.SSLCertVerificationError):
            reason = getattr(cert, "verify_message", "") or str(cert)
            return Outcome.permanent(
                f"TLS certificate verification failed for {where}: {reason} "
                "(set ca_file to trust a private CA, or verify_tls: false)"
            )
        if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
            listed = "; ".join(f"{r.recipient}: {r.code} {_one_line(r.message)}" for r in exc.recipients)
            text = f"every recipient was refused: {listed}"
            if exc.recipients and all(r.code >= 500 for r in exc.recipients):
                return Outcome.permanent(text)
            return Outcome.retry(text)
        if isinstance(exc, aiosmtplib.SMTPResponseException):
            what = {
                aiosmtplib.SMTPAuthenticationError: "authentication failed",
                aiosmtplib.SMTPSenderRefused: "sender refused",
                aiosmtplib.SMTPDataError: "message refused",
                aiosmtplib.SMTPHeloError: "EHLO refused",
                aiosmtplib.SMTPConnectResponseError: "server refused the connection",
            }.get(type(exc), "SMTP error")
            text = f"{what}: {exc.code} {_one_line(exc.message)}"
            if 400 <= exc.code < 500 or exc.code < 0:
                return Outcome.retry(text)
            return Outcome.permanent(text)
        if isinstance(exc, aiosmtplib.SMTPNotSupported) or (
            type(exc) is aiosmtplib.SMTPException and "not supported" in str(exc)
        ):  # no STARTTLS, no AUTH: the server is not set up the way the settings say
            return Outcome.permanent(f"{where}: {_one_line(str(exc))}")
        if isinstance(exc, TimeoutError):
            return Outcome.retry(f"timed out talking to {where}")
        if tls_error := _find(exc, ssl.SSLError):
            if getattr(tls_error, "reason", None) in ("WRONG_VERSION_NUMBER", "UNKNOWN_PROTOCOL"):
                return Outcome.permanent(
                    f"{where} does not speak TLS on connect: {tls_error} (security: starttls uses port 587)"
                )
            return Outcome.retry(f"TLS handshake with {where} failed: {tls_error}")
        return Outcome.retry(f"could not talk to {where}: {type(exc).__name__}: {_one_line(str(exc)) or 'no detail'}")

    def _scrub_text(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, mask(secret))
        return text

    def _scrub(self, outcome: Outcome) -> Outcome:
        if not outcome.error:
            return outcome
        return Outcome(outcome.status, outcome.remote_id, outcome.retry_after, self._scrub_text(outcome.error), outcome.disable,
                       outcome.http_status)


async def _quit(smtp: aiosmtplib.SMTP) -> None:
    """QUIT politely; the mail is already accepted, so a failure here changes nothing."""
    try:
        await smtp.quit()
    except (aiosmtplib.SMTPException, OSError, TimeoutError):
        smtp.close()


def _find(exc: BaseException, kind: type[BaseException]) -> Any:
    """``exc`` or the first exception of ``kind`` in its cause/context chain."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, kind):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _one_line(text: str) -> str:
    return clip(re.sub(r"\s+", " ", text).strip(), 300)


__all__ = ["EmailNotifier", "EmailPayload", "EmailSettings", "split_address", "subject_of", "thread_root"]
