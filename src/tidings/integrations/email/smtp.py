"""The SMTP side of a send: the TLS context the settings ask for, a polite QUIT, and what a failed
conversation means (:func:`failure`: retry or permanent, with the server's answer on one line)."""

from __future__ import annotations

import re
import ssl
from typing import Any

import aiosmtplib

from ...security.outbound import DestinationRefused
from ...security.redact import clip
from ..base import Outcome
from .settings import EmailSettings

SMTP_ERRORS = (aiosmtplib.SMTPException, OSError, TimeoutError, DestinationRefused)  # SSLError: OSError
"""What a conversation with the server may raise; :func:`failure` reads each."""


def tls_context(settings: EmailSettings) -> ssl.SSLContext:
    """The server's certificate verified, against ``ca_file`` when set, unless ``verify_tls: false``."""
    ctx = ssl.create_default_context(cafile=settings.ca_file)
    if not settings.verify_tls:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


async def quit_politely(smtp: aiosmtplib.SMTP) -> None:
    """QUIT politely; the mail is already accepted, so a failure here changes nothing."""
    try:
        await smtp.quit()
    except (aiosmtplib.SMTPException, OSError, TimeoutError):
        smtp.close()


def failure(exc: BaseException, where: str) -> Outcome:
    """What ``exc``, raised talking to the server at ``where`` (``host:port``), means for the send."""
    if isinstance(exc, DestinationRefused):
        return Outcome.permanent(str(exc))
    if cert := _find(exc, ssl.SSLCertVerificationError):
        reason = getattr(cert, "verify_message", "") or str(cert)
        return Outcome.permanent(
            f"TLS certificate verification failed for {where}: {reason} "
            "(set ca_file to trust a private CA, or verify_tls: false)"
        )
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        listed = "; ".join(f"{r.recipient}: {r.code} {reply_line(r.message)}" for r in exc.recipients)
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
        text = f"{what}: {exc.code} {reply_line(exc.message)}"
        if 400 <= exc.code < 500 or exc.code < 0:
            return Outcome.retry(text)
        return Outcome.permanent(text)
    if isinstance(exc, aiosmtplib.SMTPNotSupported) or (
        type(exc) is aiosmtplib.SMTPException and "not supported" in str(exc)
    ):  # no STARTTLS, no AUTH: the server is not set up the way the settings say
        return Outcome.permanent(f"{where}: {reply_line(str(exc))}")
    if isinstance(exc, TimeoutError):
        return Outcome.retry(f"timed out talking to {where}")
    if tls_error := _find(exc, ssl.SSLError):
        if getattr(tls_error, "reason", None) in ("WRONG_VERSION_NUMBER", "UNKNOWN_PROTOCOL"):
            return Outcome.permanent(
                f"{where} does not speak TLS on connect: {tls_error} (security: starttls uses port 587)"
            )
        return Outcome.retry(f"TLS handshake with {where} failed: {tls_error}")
    return Outcome.retry(f"could not talk to {where}: {type(exc).__name__}: {reply_line(str(exc)) or 'no detail'}")


def refusals(refused: dict[str, aiosmtplib.SMTPResponse]) -> str:
    """The recipients a server refused, with its answer to each."""
    return "; ".join(f"{rcpt}: {r.code} {reply_line(r.message)}" for rcpt, r in refused.items())


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


def reply_line(text: str) -> str:
    return clip(re.sub(r"\s+", " ", text).strip(), 300)
