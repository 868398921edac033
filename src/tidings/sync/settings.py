"""The ``sync:`` block of a tracker integration: one mapping between its repository / Jira project
and the integration's project's tasks."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ..units import Duration
from .model import Direction, Policy

FieldName = Literal["title", "description", "status", "priority", "assignee", "labels", "due"]


class SyncSettings(BaseModel):
    """What every tracker's mapping has; GitHub and Jira add where (repository, Jira project) and
    how their values map (labels for priority, priority names, transitions)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    enabled: bool = Field(True, description="false: keep the mapping but run nothing (plan still works)")
    interval: Duration = Field(300.0, ge=5, description="how often a sweep repairs what webhooks missed")
    conflict: Policy = Field(
        "newest",
        description="a field changed on both sides: newest wins, local (the task) wins, remote wins, or manual"
        " (parked for a person; nothing is overwritten meanwhile)",
    )
    create: Direction = Field(
        "both",
        description="new items: both ways, import (new remote items become tasks), export (new tasks become"
        " remote items) or off (only items already linked sync)",
    )
    fields: dict[FieldName, Direction] = Field(
        default_factory=dict, description="direction per field (both, import, export, off); default both"
    )
    assignees: dict[str, str] = Field(
        default_factory=dict,
        description="tidings user (email) -> the login / account id on this tracker; others are kept as"
        " '<kind>:<login>'",
    )
    overlap: Duration = Field(120.0, ge=0, description="each sweep re-reads this much before its mark")
    max_wait: Duration = Field(
        60.0, ge=0, description="a rate-limit wait up to this long is waited out in the run; a longer one ends"
        " the run, which resumes where it stopped once the limit resets",
    )

    def direction(self, name: str) -> Direction:
        return self.fields.get(name, "both")  # type: ignore[call-overload, no-any-return]
