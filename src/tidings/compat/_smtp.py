"""Mailing one message with the standard library's blocking ``smtplib``, for code that runs in a
worker thread of its own (the alert dispatcher). The email itself (headers, text and HTML parts)
is built by tidings' email channel; only the SMTP conversation happens here, so that the usual
testing technique, patching ``smtplib.SMTP`` (or ``smtplib.SMTP_SSL``), sees every call.
"""

from __future__ import annotations

import smtplib
import ssl
import time
from email.message import EmailMessage

from ..integrations.email import EmailNotifier


class SmtpFailure(Exception):
    """A send that failed; ``retryable`` tells whether trying again may help."""

    def __init__(self, text: str, retryable: bool) -> None:
        super().__init__(text)
        self.retryable = retryable


def send_once(notifier: EmailNotifier, msg: EmailMessage, recipients: list[str], timeout: float) -> dict[str, str]:
    """Connect (TLS or STARTTLS as the settings say), log in, send ``msg``, QUIT. Returns the
    refused recipients (address -> answer) when some, not all, were refused. Raises SmtpFailure."""
    s = notifier.settings
    where = f"{s.host}:{notifier.port}"
    context = notifier._tls_context() if s.security != "none" else None  # the channel's trust settings
    # The outbound guard, as far as smtplib lets it: a metadata name or a literal address it refuses
    # (the facades allow everything else, like the libraries they replace).
    if reason := notifier.destinations.host_refusal(s.host):
        raise SmtpFailure(reason, False)
    try:
        if s.security == "tls":
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(s.host, notifier.port, local_hostname=notifier.domain,
                                                  timeout=timeout, context=context)
        else:
            smtp = smtplib.SMTP(s.host, notifier.port, local_hostname=notifier.domain, timeout=timeout)
        try:
            if s.security == "starttls":
                smtp.starttls(context=context)
            if s.username is not None and s.password is not None:
                smtp.login(s.username, s.password.get_secret_value())
            refused = smtp.send_message(msg, from_addr=s.from_address, to_addrs=recipients)
        finally:
            try:
                smtp.quit()
            except (smtplib.SMTPException, OSError):
                smtp.close()
    except ssl.SSLCertVerificationError as exc:
        raise SmtpFailure(f"TLS certificate verification failed for {where}: {exc.verify_message}", False) from None
    except smtplib.SMTPRecipientsRefused as exc:
        listed = "; ".join(f"{rcpt}: {code} {_text(answer)}" for rcpt, (code, answer) in exc.recipients.items())
        retry = any(code < 500 for code, _ in exc.recipients.values())
        raise SmtpFailure(f"every recipient was refused: {listed}", retry) from None
    except smtplib.SMTPResponseException as exc:
        raise SmtpFailure(f"{where} answered {exc.smtp_code} {_text(exc.smtp_error)}", 400 <= exc.smtp_code < 500) from None
    except smtplib.SMTPNotSupportedError as exc:
        raise SmtpFailure(f"{where}: {exc}", False) from None
    except (smtplib.SMTPException, OSError) as exc:  # refused, reset, timed out, TLS trouble
        raise SmtpFailure(f"could not talk to {where}: {type(exc).__name__}: {exc}", True) from None
    return {rcpt: f"{code} {_text(answer)}" for rcpt, (code, answer) in refused.items()}


def send_within(notifier: EmailNotifier, msg: EmailMessage, recipients: list[str], *, seconds: float,
                attempts: int, first_delay: float) -> dict[str, str]:
    """:func:`send_once`, retried (doubling the delay) on retryable failures while ``seconds`` last."""
    deadline = time.monotonic() + seconds
    delay = first_delay
    for number in range(1, attempts + 1):
        try:
            return send_once(notifier, msg, recipients, timeout=max(0.5, deadline - time.monotonic()))
        except SmtpFailure as exc:
            if not exc.retryable or number >= attempts or time.monotonic() + delay >= deadline:
                raise
        time.sleep(delay)
        delay *= 2
    raise AssertionError("unreachable")  # pragma: no cover


def _text(answer: bytes | str) -> str:
    text = answer.decode("utf-8", "replace") if isinstance(answer, bytes) else str(answer)
    return " ".join(text.split())


__all__ = ["SmtpFailure", "send_once", "send_within"]
