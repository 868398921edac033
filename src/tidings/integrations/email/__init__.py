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
import ssl
import time
from email.headerregistry import Address
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any

import aiosmtplib

from ...message import Message
from ...security.redact import mask_in
from ..base import NO_OPTIONS, Addressable, Attempt, Notifier, Outcome, RenderOptions
from .addresses import split_address
from .render import EmailPayload, build_message, preview_payload, render_payload, subject_of, thread_root, wants_ack
from .settings import EmailSettings
from .smtp import SMTP_ERRORS, failure, quit_politely, refusals, tls_context

if TYPE_CHECKING:
    from ...recipients.model import Person

LABEL_TO = "email_to"
LABEL_TO_MAX = 50
"""At most this many recipients in one message's ``email_to`` label."""
LABEL_PERSON = "email_person"
"""Set on a message addressed to one recipient (their id): it goes to them alone, without cc and bcc."""


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
        cc, bcc = ((), ()) if message.labels.get(LABEL_PERSON) else (tuple(s.cc), tuple(s.bcc))
        return render_payload(message, sender=self._sender, subject_prefix=s.subject_prefix, to=to, cc=cc, bcc=bcc,
                              domain=self.domain, problem=problem)

    def preview(self, payload: EmailPayload) -> dict[str, Any]:
        return preview_payload(payload)

    def message_id(self, attempt: Attempt) -> str:
        """Stable across retries: the delivery id is the idempotency key."""
        return f"<{attempt.delivery_id}@{self.domain}>"

    def build(self, payload: EmailPayload, attempt: Attempt) -> EmailMessage:
        """The email as sent for ``attempt``."""
        link = self._ack_link(attempt) if wants_ack(payload) else None
        return build_message(payload, attempt, self.message_id(attempt), link)

    def _ack_link(self, attempt: Attempt) -> str | None:
        """The signed acknowledge link, issued when the delivery was created (a retry sends the same one)."""
        make = self.context.ack_link
        issued = attempt.created_at if attempt.created_at > 0 else time.time()
        return make(attempt.message_id, issued, "email") if make is not None else None

    # -- sending ---------------------------------------------------------------------------------
    def _tls_context(self) -> ssl.SSLContext:
        if self._tls is None:
            self._tls = tls_context(self.settings)
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
                await quit_politely(smtp)
        except SMTP_ERRORS as exc:
            return self._failure(exc).masking(self._secrets)
        message_id = str(msg["Message-ID"])
        if not refused:
            return Outcome.delivered(message_id)
        # Some recipients were refused, the others accepted the mail: it is delivered (a retry
        # would mail the others twice); the refusals are listed with the Message-ID.
        listed = refusals(refused)
        total = len(payload.recipients)
        return Outcome.delivered(message_id, warning=mask_in(f"refused {len(refused)} of {total}: {listed}", self._secrets))

    async def test(self) -> Outcome:
        """Connect, STARTTLS or TLS, authenticate, QUIT: checks everything but sends no mail."""
        try:
            async with asyncio.timeout(self.effective_timeout):
                smtp = await self._connect()
                await quit_politely(smtp)
        except SMTP_ERRORS as exc:
            return self._failure(exc).masking(self._secrets)
        how = {"starttls": "STARTTLS", "tls": "TLS", "none": "no TLS"}[self.settings.security]
        who = f", authenticated as {self.settings.username}" if self.settings.username else ""
        return Outcome.delivered(f"{self.settings.host}:{self.port} ({how}{who})")

    def _failure(self, exc: BaseException) -> Outcome:
        return failure(exc, f"{self.settings.host}:{self.port}")


__all__ = ["EmailNotifier", "EmailPayload", "EmailSettings", "split_address", "subject_of", "thread_root"]
