"""``kind: servicenow`` settings: the instance, Basic or OAuth client-credentials auth, the incident's fields."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, model_validator

from ...message import Priority
from ...units import Duration
from ..base import IntegrationSettings
from ..http import HttpUrl
from ..tickets import TicketPolicy

IMPACT_URGENCY: dict[Priority, tuple[int, int]] = {
    Priority.CRITICAL: (1, 1), Priority.HIGH: (1, 2), Priority.MEDIUM: (2, 2), Priority.LOW: (2, 3),
    Priority.INFO: (3, 3),
}
"""tidings priority -> (impact, urgency); ServiceNow's default priority lookup makes them P1..P5."""


class ServiceNowSettings(IntegrationSettings):
    kind: Literal["servicenow"]
    instance_url: HttpUrl = Field(..., description="the instance (https://example.service-now.com)")
    user: str | None = Field(None, max_length=200, description="the integration user, for Basic auth")
    password: SecretStr | None = Field(None, description="its password (write it as ${vault:NAME})")
    client_id: str | None = Field(
        None, max_length=200, description="an OAuth application's client id (System OAuth > Application Registry):"
        " with client_secret, OAuth client credentials instead of Basic auth",
    )
    client_secret: SecretStr | None = Field(None, description="that application's client secret")
    table: str = Field("incident", pattern=r"^[a-z][a-z0-9_]{0,79}$", description="the Table API table")
    assignment_group: str | None = Field(None, max_length=100, description="sys_id or name of the assignment group")
    caller_id: str | None = Field(None, max_length=100, description="sys_id or user name of the caller")
    category: str | None = Field(None, max_length=100, description="the incident category (software, network...)")
    close_code: str = Field("Solution provided", min_length=1, max_length=100,
                            description="close_code of an incident tidings resolves")
    priorities: dict[Priority, tuple[int, int]] = Field(
        default_factory=lambda: dict(IMPACT_URGENCY),
        description="tidings priority -> [impact, urgency], each 1 (high) to 3 (low)",
    )
    comment_every: Duration = Field(900.0, ge=0, description="at most one work note per this long for an alert's repeats;"
                                    " 0: one per repeat")
    reopen: bool = Field(True, description="a new firing of a resolved alert reopens its incident (false: a new one)")

    outbound = ("instance_url",)

    @model_validator(mode="after")
    def _auth(self) -> ServiceNowSettings:
        basic = self.user is not None or self.password is not None
        oauth = self.client_id is not None or self.client_secret is not None
        if basic == oauth:
            raise ValueError("set user + password (Basic auth) or client_id + client_secret (OAuth client credentials)")
        if basic and not (self.user and self.password):
            raise ValueError("Basic auth needs both user and password")
        if oauth and not (self.client_id and self.client_secret):
            raise ValueError("OAuth client credentials need both client_id and client_secret")
        for p, pair in self.priorities.items():
            if len(pair) != 2 or not all(1 <= v <= 3 for v in pair):
                raise ValueError(f"priorities.{p}: impact and urgency are each 1, 2 or 3")
        object.__setattr__(self, "priorities", {**IMPACT_URGENCY, **self.priorities})
        return self

    @property
    def policy(self) -> TicketPolicy:
        return TicketPolicy(comment_every=self.comment_every, reopen=self.reopen)
