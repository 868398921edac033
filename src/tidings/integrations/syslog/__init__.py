"""Syslog (RFC 5424) over UDP, TCP and TLS, as plain text with structured data, ArcSight CEF or
QRadar LEEF 2.0: so that any syslog receiver, QRadar and ArcSight get native events.

Severity follows the priority (critical 2 crit, high 3 err, medium 4 warning, low 5 notice, info 6
info), the facility is a setting. ``rfc5424`` messages carry the message's ids, project, priority,
thread and dedup keys in ``[tidings@32473 ...]`` and its labels in ``[labels@32473 ...]``, the text
as UTF-8 with a BOM; ``cef`` and ``leef`` put the same in their extension, as the MSG of an RFC
5424 message. See docs/syslog.md for the tables, and :mod:`.transport` for what each transport
can promise (TCP/TLS at least once, UDP nothing).
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from ... import __version__
from ...message import Message
from ...security.outbound import DestinationRefused
from ..base import NO_OPTIONS, RETIRE_GRACE, Attempt, BatchNotifier, IntegrationSettings, Outcome, RenderOptions
from .formats import (
    FACILITIES,
    NIL,
    SEVERITY,
    SLOT_DELIVERY,
    SLOT_ID,
    SLOT_LEEF_TIME,
    SLOT_MS,
    Product,
    SyslogPayload,
    cef,
    event_id,
    frame,
    header_field,
    leef,
    sd_elements,
    text_of,
)
from .transport import Connection, TlsOptions, TlsSetupError

DEFAULT_PORTS = {"udp": 514, "tcp": 514, "tls": 6514}
DEFAULT_MAX_LENGTH = {"udp": 2048, "tcp": 8192, "tls": 8192}
CLIENT_CERT_REFUSED = {
    "TLSV13_ALERT_CERTIFICATE_REQUIRED": "it requires a client certificate (set tls_cert_file and tls_key_file)",
    "SSLV3_ALERT_HANDSHAKE_FAILURE": "handshake failure (does it require a client certificate? set tls_cert_file and tls_key_file)",
    "SSLV3_ALERT_BAD_CERTIFICATE": "it does not accept our client certificate",
    "SSLV3_ALERT_CERTIFICATE_UNKNOWN": "it does not accept our client certificate",
    "TLSV1_ALERT_UNKNOWN_CA": "it does not trust the CA of our client certificate",
    "TLSV1_ALERT_ACCESS_DENIED": "access denied",
}
_HOST_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_:[]")


def _existing_file(value: str | None) -> str | None:
    if value is not None and not Path(value).is_file():
        raise ValueError(f"no such file: {value}")
    return value


class SyslogSettings(IntegrationSettings):
    outbound = ("host",)
    kind: Literal["syslog"]
    host: str = Field(min_length=1, max_length=253, description="the syslog receiver (name or IP address)")
    port: int | None = Field(None, ge=1, le=65535, description="default: 6514 for tls, 514 for tcp and udp")
    transport: Literal["tls", "tcp", "udp"] = Field(
        "tls", description="tls (RFC 5425), tcp (RFC 6587) or udp (best effort: nothing confirms a datagram)"
    )
    framing: Literal["octet-counting", "lf"] = Field(
        "octet-counting", description="tcp only: octet-counting (LEN SP MSG) or lf (non-transparent, MSG LF)"
    )
    format: Literal["rfc5424", "cef", "leef"] = Field("rfc5424", description="what MSG holds")
    facility: Literal[tuple(FACILITIES)] = Field("local0", description="syslog facility (local0..local7, user, ...)")  # type: ignore[valid-type]
    hostname: str | None = Field(None, max_length=255, description="HOSTNAME; default: this machine's name")
    app_name: str = Field("tidings", min_length=1, max_length=48, description="APP-NAME")
    procid: str | None = Field(None, max_length=128, description="PROCID; default: the process id")
    max_length: int | None = Field(
        None, ge=480, le=1_048_576,
        description="longest syslog message in bytes (MSG is cut to fit); default 2048 for udp, 8192 otherwise",
    )
    vendor: str = Field("tidings", min_length=1, max_length=100, description="CEF/LEEF vendor")
    product: str = Field("tidings", min_length=1, max_length=100, description="CEF/LEEF product")
    product_version: str | None = Field(None, max_length=50, description="CEF/LEEF version; default tidings' version")
    leef_delimiter: str = Field("^", min_length=1, max_length=1,
                                description="LEEF 2.0 attribute delimiter: one character (a tab, or any but a letter,"
                                " digit, space, '=', '\\', '|' or a control character, up to U+FFFF)")
    tls_ca_file: str | None = Field(None, description="PEM file of CA certificates to trust (a private CA)")
    tls_cert_file: str | None = Field(None, description="client certificate (PEM), for receivers that require one")
    tls_key_file: str | None = Field(None, description="the client certificate's private key (PEM)")
    tls_key_password: SecretStr | None = Field(None, description="password of an encrypted tls_key_file")
    tls_verify: bool = Field(True, description="verify the receiver's certificate")
    tls_verify_hostname: bool = Field(True, description="check the certificate names the host (or tls_server_name)")
    tls_server_name: str | None = Field(None, max_length=253, description="name sent (SNI) and verified; default: host")

    @field_validator("host")
    @classmethod
    def _host(cls, v: str) -> str:
        if not set(v) <= _HOST_CHARS:
            raise ValueError("a host name or IP address (no scheme, port or spaces)")
        return v

    _files = field_validator("tls_ca_file", "tls_cert_file", "tls_key_file")(_existing_file)

    @field_validator("leef_delimiter")
    @classmethod
    def _delimiter(cls, v: str) -> str:
        if v != "\t" and (v in "=\\| \x7f" or v.isalnum() or ord(v) < 0x20 or ord(v) > 0xFFFF):
            raise ValueError("one character: a tab, or any but a letter, digit, space, '=', '\\', '|' or a control"
                             " character, up to U+FFFF (QRadar reads a declared x + 1 to 4 hex digits)")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> SyslogSettings:
        if self.transport != "tcp" and self.framing == "lf":
            raise ValueError("framing: lf is for transport: tcp only (TLS syslog is always octet-counting, RFC 5425)")
        if self.transport != "tls" and any((self.tls_ca_file, self.tls_cert_file, self.tls_key_file, self.tls_server_name)):
            raise ValueError("tls_* settings need transport: tls")
        if self.tls_key_file and not self.tls_cert_file:
            raise ValueError("tls_key_file needs tls_cert_file")
        return self

    @property
    def effective_port(self) -> int:
        return self.port or DEFAULT_PORTS[self.transport]

    @property
    def effective_max_length(self) -> int:
        return self.max_length or DEFAULT_MAX_LENGTH[self.transport]


_LATER = {SLOT_ID: "(message id)", SLOT_DELIVERY: "(delivery id)", SLOT_MS: "(time of sending)",
          SLOT_LEEF_TIME: "(time of sending)"}


class SyslogNotifier(BatchNotifier):
    """Sends what its lane has queued, up to :attr:`max_batch` messages, in one write (TCP/TLS:
    frames back to back, as a receiver reads them anyway). With a ``rate_limit`` it sends one
    message at a time: the limit counts messages (a SIEM's events per second), not writes."""

    kind = "syslog"
    Settings = SyslogSettings
    concurrency = 4
    timeout = 10.0
    max_batch = 100
    settings: SyslogSettings

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        s = self.settings
        self.hostname = header_field(s.hostname or socket.gethostname(), 255)
        self.procid = header_field(s.procid or str(os.getpid()), 128)
        self.product = Product(s.vendor, s.product, s.product_version or __version__)
        password = s.tls_key_password.get_secret_value() if s.tls_key_password else None
        tls = TlsOptions(s.tls_ca_file, s.tls_cert_file, s.tls_key_file, password, s.tls_verify,
                         s.tls_verify_hostname, s.tls_server_name)
        self.connection = Connection(s.host, s.effective_port, s.transport, s.framing, self.destinations,
                                     self.effective_timeout, tls)

    def reconfigure(self, settings: IntegrationSettings) -> None:
        """New settings, a new connection for the next send; the old one closes once its sends are over."""
        old = self.connection
        super().reconfigure(settings)
        if old is not self.connection:
            async def retire() -> None:
                await asyncio.sleep(RETIRE_GRACE)
                await old.close()

            asyncio.get_running_loop().create_task(retire(), name=f"tidings-retire-{self.name}")

    # -- rendering -------------------------------------------------------------------------------
    def render(self, message: Message, options: RenderOptions = NO_OPTIONS) -> SyslogPayload:
        s = self.settings
        pri = FACILITIES[s.facility] * 8 + SEVERITY[message.priority]
        header = f"{self.hostname} {header_field(s.app_name, 48)} {self.procid} {header_field(event_id(message), 32)}"
        if s.format == "rfc5424":
            own, labels = sd_elements(message, s.project)
            return SyslogPayload(pri, header, own + labels, text_of(message), bom=True, escaped=False, sd_short=own)
        if s.format == "cef":
            msg = cef(message, s.project, self.hostname, self.product)
        else:
            msg = leef(message, s.project, self.hostname, self.product, s.leef_delimiter)
        return SyslogPayload(pri, header, NIL, msg, bom=False, escaped=s.format == "cef")

    def frame(self, payload: SyslogPayload, attempt: Attempt) -> bytes:
        """The syslog message sent for ``attempt`` (the same bytes on every retry)."""
        return frame(payload, attempt.created_at, attempt.message_id, attempt.delivery_id,
                     self.settings.effective_max_length, one_line=self.connection.one_line)

    def preview(self, payload: SyslogPayload) -> dict[str, Any]:
        shown = payload
        for slot, later in _LATER.items():
            shown = replace(shown, sd=shown.sd.replace(slot, later), sd_short=shown.sd_short.replace(slot, later),
                            msg=shown.msg.replace(slot, later))
        text = frame(shown, 0.0, "", "", self.settings.effective_max_length, one_line=self.connection.one_line).decode()
        ts = text.split(" ", 2)
        return {
            "transport": self.settings.transport,
            "format": self.settings.format,
            "message": " ".join([ts[0], "(time of sending)", ts[2]]).replace("\ufeff", ""),
        }

    # -- sending ---------------------------------------------------------------------------------
    @property
    def effective_max_batch(self) -> int:
        return 1 if self.effective_rate_limit else self.max_batch

    async def send_batch(self, payloads: list[SyslogPayload], attempts: list[Attempt]) -> list[Outcome]:
        try:
            await self.connection.send_many([self.frame(p, a) for p, a in zip(payloads, attempts, strict=True)])
        except (OSError, TimeoutError, DestinationRefused, ValueError, TlsSetupError) as exc:  # ssl.SSLError is an OSError
            return [self._failure(exc)] * len(payloads)
        return [Outcome.delivered()] * len(payloads)

    async def test(self) -> Outcome:
        """Open a connection (TLS: with the handshake and certificate check) and close it; sends nothing."""
        fresh = Connection(self.connection.host, self.connection.port, self.connection.transport,
                           self.connection.framing, self.destinations, self.effective_timeout, self.connection.tls)
        try:
            what = await fresh.check()
        except (OSError, TimeoutError, DestinationRefused, ValueError, TlsSetupError) as exc:
            return self._failure(exc)
        return Outcome.delivered(what)

    async def close(self) -> None:
        await self.connection.close()
        await super().close()

    def _failure(self, exc: BaseException) -> Outcome:
        s = self.settings
        where = f"{s.host}:{s.effective_port}"
        if isinstance(exc, DestinationRefused | TlsSetupError):
            return Outcome.permanent(str(exc))
        if isinstance(exc, ssl.SSLCertVerificationError):
            reason = exc.verify_message or str(exc)
            return Outcome.permanent(
                f"TLS certificate verification failed for {where}: {reason} "
                "(set tls_ca_file to trust a private CA, tls_server_name for another name, or tls_verify: false)"
            )
        if isinstance(exc, ssl.SSLError) and exc.reason in CLIENT_CERT_REFUSED:
            return Outcome.permanent(
                f"{where} refused the TLS connection: {CLIENT_CERT_REFUSED[exc.reason]} ({exc.reason})"
            )
        if isinstance(exc, ssl.SSLError):
            if exc.reason in ("WRONG_VERSION_NUMBER", "UNKNOWN_PROTOCOL", "RECORD_LAYER_FAILURE"):
                return Outcome.permanent(f"{where} does not speak TLS: {exc} (transport: tcp for plain syslog)")
            return Outcome.retry(f"TLS with {where} failed: {exc.reason or exc}")
        if isinstance(exc, TimeoutError):
            return Outcome.retry(f"timed out talking to {where}")
        if isinstance(exc, ConnectionRefusedError):
            return Outcome.retry(f"{where} refused the connection (is the syslog receiver running?)")
        if isinstance(exc, socket.gaierror):
            return Outcome.retry(f"could not resolve {s.host}: {exc.strerror or exc}")
        name = type(exc).__name__
        return Outcome.retry(f"could not send to {where}: {name}: {exc}" if str(exc) else f"could not send to {where}: {name}")


__all__ = ["SyslogNotifier", "SyslogPayload", "SyslogSettings"]
