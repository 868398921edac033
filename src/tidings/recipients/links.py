"""The signed links a person follows without signing in: acknowledge an alert (from an email or
a Teams card) and unsubscribe from a topic on a channel (RFC 8058 one-click). Built and checked
here, served by the server (``/l/ack/{token}``, ``/l/unsubscribe/{token}``)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from ..security.signed import Signer

ACK = "ack"
UNSUBSCRIBE = "unsubscribe"
ACK_TTL = 7 * 86400.0
UNSUBSCRIBE_TTL = 365 * 86400.0


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    recipient: str
    """recipients.id"""
    topic: str
    channel: str
    """The integration name."""


def ack_url(signer: Signer, base_url: str, message_id: str, *, now: float | None = None) -> str:
    token = signer.sign(ACK, {"m": message_id}, expires_at=(time.time() if now is None else now) + ACK_TTL)
    return f"{base_url.rstrip('/')}/l/ack/{token}"


def read_ack(signer: Signer, token: str, *, now: float | None = None) -> str:
    """The message id an ack link names; :class:`~tidings.security.signed.LinkError` otherwise."""
    return str(signer.verify(ACK, token, now=now)["m"])


def unsubscribe_url(signer: Signer, base_url: str, what: Unsubscribe, *, now: float | None = None) -> str:
    claims = {"r": what.recipient, "t": what.topic, "c": what.channel}
    token = signer.sign(UNSUBSCRIBE, claims, expires_at=(time.time() if now is None else now) + UNSUBSCRIBE_TTL)
    return f"{base_url.rstrip('/')}/l/unsubscribe/{token}"


def read_unsubscribe(signer: Signer, token: str, *, now: float | None = None) -> Unsubscribe:
    claims = signer.verify(UNSUBSCRIBE, token, now=now)
    return Unsubscribe(str(claims["r"]), str(claims["t"]), str(claims["c"]))
