"""What sync moves: a task's fields in *task space*, a tracker's item, and the errors trackers raise.

Trackers translate between their items and task space (status as a category, priority as a tidings
priority, assignee as a tidings user or ``<kind>:<login>``, description as Markdown), so the engine
compares and merges values of one shape whatever the tracker.
"""

from __future__ import annotations

import contextvars
import hashlib
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

CATEGORIES = ("todo", "in_progress", "done")
"""Every status maps onto one of these."""
FIELDS = ("title", "description", "status", "priority", "assignee", "labels", "due")
"""The synced fields, in task space. ``status`` is the category; ``labels`` a sorted list."""

Category = Literal["todo", "in_progress", "done"]
Direction = Literal["both", "import", "export", "off"]
Policy = Literal["newest", "local", "remote", "manual"]


def normalize(fields: dict[str, Any]) -> dict[str, Any]:
    """``fields`` in the one shape compared and hashed: labels sorted and unique, text stripped of
    trailing whitespace per line (trackers differ there), empty optional values as ``None``."""
    out: dict[str, Any] = {}
    for name, value in fields.items():
        if name == "labels":
            value = sorted({str(v) for v in value or ()})
        elif name == "description":
            value = "\n".join(line.rstrip() for line in (value or "").strip().splitlines())
        elif name == "title":
            value = (value or "").strip()
        elif name in ("assignee", "due"):
            value = value or None
        out[name] = value
    return out


def digest(fields: dict[str, Any]) -> str:
    """SHA-256 of ``fields`` normalized: what the echo guard compares."""
    return hashlib.sha256(orjson.dumps(normalize(fields), option=orjson.OPT_SORT_KEYS)).hexdigest()


@dataclass(frozen=True, slots=True)
class RemoteItem:
    """One tracker item as the engine sees it."""

    id: str
    """Stable id: the GitHub issue number, the Jira issue id."""
    key: str
    """What people read: ``owner/repo#12``, ``PROJ-12``."""
    url: str
    updated_at: float
    """The item's own updated time (epoch seconds): the sweep's high-water mark."""
    fields: dict[str, Any]
    """Task-space values of the fields this tracker carries (normalized)."""
    marker: str | None = None
    """The link id a create of ours left on it (GitHub: a comment in the body; Jira: an issue
    property), so a create whose answer was lost is found instead of made twice."""
    etag: str | None = None
    status_name: str | None = None
    """The tracker's own status name (``In Review``), for the task's ``status``."""
    deleted: bool = False


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a sweep. ``not_modified``: the tracker answered 304 (nothing changed)."""

    items: list[RemoteItem]
    etag: str | None = None
    not_modified: bool = False


@dataclass
class CallStats:
    """What one run cost; trackers add to the current run's (see :data:`current_stats`)."""

    api_calls: int = 0
    not_modified: int = 0
    rate_limit_waits: int = 0
    waited: float = 0.0


current_stats: contextvars.ContextVar[CallStats | None] = contextvars.ContextVar("tidings_sync_stats", default=None)


def count_call(*, not_modified: bool = False) -> None:
    """Trackers call this once per HTTP request they make."""
    stats = current_stats.get()
    if stats is not None:
        stats.api_calls += 1
        stats.not_modified += not_modified


def count_wait(seconds: float) -> None:
    stats = current_stats.get()
    if stats is not None:
        stats.rate_limit_waits += 1
        stats.waited += seconds


class TrackerError(Exception):
    """A tracker call failed. Subclasses say what to do about it."""


class RateLimited(TrackerError):
    """The peer asked us to wait ``wait`` seconds (``x-ratelimit-reset``, ``Retry-After``,
    secondary limits). The run waits (or stops and resumes later); the items do not fail."""

    def __init__(self, message: str, wait: float) -> None:
        super().__init__(message)
        self.wait = wait


class Unavailable(TrackerError):
    """5xx, timeout, connection refused: try again later."""


class AuthFailed(TrackerError):
    """401, or 403 that is not a rate limit: the credential is wrong or lacks a scope. The run stops."""


class NotFound(TrackerError):
    """404/410 for one item: it was deleted (or we lost access). The link is marked, the task stays."""


class Rejected(TrackerError):
    """400/422 for one item: the peer refused what we sent (with its reason). That item fails, the run goes on."""


@dataclass(frozen=True, slots=True)
class Conflict:
    field: str
    base: Any
    local: Any
    remote: Any


@dataclass
class Merged:
    """What :func:`~tidings.sync.merge.merge` decided for one item."""

    to_local: dict[str, Any] = field(default_factory=dict)
    to_remote: dict[str, Any] = field(default_factory=dict)
    conflicts: list[Conflict] = field(default_factory=list)
    base: dict[str, Any] = field(default_factory=dict)
    """The new base snapshot once both writes are done (parked fields keep their old base)."""
