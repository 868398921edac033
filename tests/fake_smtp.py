"""A real SMTP server for tests (aiosmtpd, in its own thread) on 127.0.0.1, with a self-signed
certificate made by :func:`make_certificate`:

    server = SmtpServer(certs, security="starttls")   # or "tls" (SMTPS), or "none"
    server.start(); ...; server.stop()

STARTTLS is required before MAIL (``require_starttls``), AUTH only after TLS, and only
``USER``/``PASSWORD`` pass (others get 535). What it accepted is in ``server.mails``, parsed with
``email.policy.default``; every message offered in DATA (accepted or not) in ``server.seen``.
Script trouble with ``server.data_replies`` (answers to DATA, e.g. ``"451 4.3.0 try later"``),
``server.refuse`` (address -> RCPT answer) and ``server.delay``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import email.policy
import ipaddress
import ssl
from collections import deque
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from peer import free_port

USER = "tidings"
PASSWORD = "correct horse battery staple"


@dataclass(frozen=True)
class Certificate:
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.cert, self.key)
        return ctx


def make_certificate(directory: Path) -> Certificate:
    """A self-signed certificate for ``localhost`` and ``127.0.0.1``, valid for a month."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "smtp-cert.pem", directory / "smtp-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return Certificate(cert_path, key_path)


@dataclass
class Mail:
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes
    tls: bool
    authenticated: bool

    @property
    def message(self) -> EmailMessage:
        parsed: EmailMessage = email.message_from_bytes(self.raw, policy=email.policy.default)  # type: ignore[assignment]
        return parsed


class _Handler:
    def __init__(self, server: SmtpServer) -> None:
        self.server = server

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]) -> str:
        if address in self.server.refuse:
            return self.server.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.server.delay:
            await asyncio.sleep(self.server.delay)
        self.server.seen.append(envelope.content)
        reply = self.server.data_replies.popleft() if self.server.data_replies else None
        if reply:
            return reply
        # session.ssl is set by STARTTLS; an SMTPS session is TLS from its first byte.
        tls = session.ssl is not None or server.transport.get_extra_info("ssl_object") is not None
        self.server.mails.append(
            Mail(envelope.mail_from, list(envelope.rcpt_tos), envelope.content, tls, bool(session.authenticated))
        )
        return "250 2.0.0 Message accepted"


class SmtpServer:
    def __init__(self, certs: Certificate | None, security: str = "starttls", auth: bool = True) -> None:
        self.port = free_port()
        self.mails: list[Mail] = []
        self.seen: list[bytes] = []  # every message offered in DATA, accepted or not
        self.refuse: dict[str, str] = {}
        self.data_replies: deque[str | None] = deque()
        self.delay = 0.0
        self.logins: list[tuple[str, bool]] = []
        kwargs: dict[str, Any] = {"hostname": "127.0.0.1", "port": self.port, "ready_timeout": 10.0}
        if auth:
            kwargs["authenticator"] = self._authenticate
        if security == "starttls":
            assert certs is not None
            kwargs.update(tls_context=certs.server_context(), require_starttls=True, auth_require_tls=True)
        elif security == "tls":
            assert certs is not None
            # aiosmtpd doesn't count implicit TLS for auth_require_tls: the whole session is TLS anyway.
            kwargs.update(ssl_context=certs.server_context(), auth_require_tls=False)
        else:
            kwargs.update(auth_require_tls=False)
        self.controller = Controller(_Handler(self), **kwargs)

    def _authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        ok = auth_data.login == USER.encode() and auth_data.password == PASSWORD.encode()
        self.logins.append((auth_data.login.decode(), ok))
        return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535 itself

    def start(self) -> SmtpServer:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()
