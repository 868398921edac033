"""The ``tickets:`` block of ``kind: jira``: open one Jira issue per alert (:mod:`.tickets`)."""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from ...message import Priority
from ..tickets import TicketPolicy

PROJECT_KEY = r"^[A-Z][A-Z0-9_]{0,254}$"
TICKET_PRIORITIES: dict[Priority, str] = {
    Priority.CRITICAL: "Highest", Priority.HIGH: "High", Priority.MEDIUM: "Medium", Priority.LOW: "Low",
    Priority.INFO: "Lowest",
}


class JiraTickets(TicketPolicy):
    """Where and how alerts become issues."""

    project: str = Field(..., pattern=PROJECT_KEY, description="the Jira project key issues are created in (OPS)")
    issue_type: str = Field("Task", min_length=1, max_length=255, description="the issue type (Task, Bug, Incident...)")
    priorities: dict[Priority, str] = Field(
        default_factory=lambda: dict(TICKET_PRIORITIES),
        description="tidings priority -> Jira priority name (critical=Highest, high=High, medium=Medium, low=Low,"
        " info=Lowest); an empty name leaves the priority to Jira's default",
    )
    labels: list[str] = Field(default_factory=lambda: ["tidings"], max_length=20,
                              description="labels every issue gets (no spaces)")
    done_status: str | None = Field(None, max_length=255,
                                    description="the Done-category status preferred when several can be reached")
    reopen_status: str | None = Field(None, max_length=255,
                                      description="the status a reopened issue moves to (default: any not Done)")

    @field_validator("priorities")
    @classmethod
    def _all_priorities(cls, v: dict[Priority, str]) -> dict[Priority, str]:
        return {**TICKET_PRIORITIES, **{p: name.strip() for p, name in v.items()}}

    @field_validator("labels")
    @classmethod
    def _labels(cls, v: list[str]) -> list[str]:
        for label in v:
            if not label or len(label) > 255 or re.search(r"\s", label):
                raise ValueError(f"{label!r}: a Jira label has no spaces and 1-255 characters")
        return v
