"""The calendar capability: one all-day event per task, written to and read back from a calendar."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .integration import Integration
from .outcome import Outcome

if TYPE_CHECKING:
    from collections.abc import AsyncIterator


@dataclass(frozen=True, slots=True)
class CalendarEvent:
    """One task's event as every calendar gets it (provider-neutral): all day on ``date``."""

    task_id: str
    project: str
    summary: str
    description: str
    date: str
    """YYYY-MM-DD; the event ends the next day (exclusive)."""
    reminders: tuple[int, ...] | None = None
    """Minutes before the start; None: the calendar's default reminders."""


@dataclass(frozen=True, slots=True)
class EventRef:
    """An event we wrote, as the calendar names it: its id (None while a create's answer is not
    known), its etag for ``If-Match``, and the task it belongs to (from our private property)."""

    event_id: str | None
    etag: str | None = None
    task_id: str | None = None
    creates: int = 0
    """Events made for the task so far: a new one after a delete needs a new create key."""


class CalendarFailure(Exception):
    """A calendar call that failed, classified: raise it with the :class:`Outcome` the send answers."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(outcome.error)
        self.outcome = outcome


class Calendar(Integration):
    """The calendar capability: one event per task, which we create or update, delete, and list
    (only events carrying our private property: never anyone else's). Each method raises
    :class:`CalendarFailure` for a failed call and aiohttp's errors for a failed connection."""

    async def upsert(self, event: CalendarEvent, known: EventRef | None) -> EventRef:
        """Create the task's event, or update it in place (``known``: where it was last written)."""
        raise NotImplementedError

    async def delete(self, ref: EventRef) -> None:
        """Delete the event; one already gone is fine."""
        raise NotImplementedError

    def list_ours(self) -> AsyncIterator[EventRef]:
        """Every event of this calendar that carries our private property for this project, page by page."""
        raise NotImplementedError
