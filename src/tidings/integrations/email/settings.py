"""What an email integration is configured with: the SMTP server and how to reach it (security,
credentials, trust), the sender and the recipients."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from ..base import IntegrationSettings
from .addresses import CONTROL, DOMAIN, check_address, no_line_breaks, split_address

DEFAULT_PORTS = {"starttls": 587, "tls": 465, "none": 25}
_HOST = re.compile(r"^(?:[A-Za-z0-9_.-]+|\[[0-9A-Fa-f:.]+\])$")


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
        return no_line_breaks(v, "a header value")

    @field_validator("username")
    @classmethod
    def _username(cls, v: str | None) -> str | None:
        return v if v is None else no_line_breaks(v, "username")

    @field_validator("password")
    @classmethod
    def _password(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and CONTROL.search(v.get_secret_value()):
            raise ValueError("must not contain line breaks or control characters")
        return v

    @field_validator("domain")
    @classmethod
    def _domain(cls, v: str | None) -> str | None:
        if v is not None and not DOMAIN.match(v):
            raise ValueError(f"{v!r} is not a domain name")
        return v

    @field_validator("allowed_domains")
    @classmethod
    def _allowed(cls, v: list[str]) -> list[str]:
        for d in v:
            if not DOMAIN.match(d):
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
