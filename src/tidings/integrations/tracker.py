"""The sync capability: an integration that keeps a tracker's items (issues) in task space."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .integration import Integration
from .settings import IntegrationSettings

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from ..sync.model import Page, RemoteItem
    from ..sync.settings import SyncSettings


class Tracker(Integration):
    """The sync capability (DESIGN.md "Sync"): an integration whose settings have a ``sync:`` block
    (:class:`~tidings.sync.settings.SyncSettings`) lists, reads, creates and updates items of one
    repository / Jira project, in task space (:mod:`tidings.sync.model`).

    Every method counts its HTTP requests (``model.count_call``) and raises the errors of
    :mod:`tidings.sync.model`: ``RateLimited(wait)``, ``Unavailable``, ``AuthFailed``,
    ``NotFound``, ``Rejected``. None of them writes to the store: the engine does."""

    @classmethod
    def can_sync(cls, settings: IntegrationSettings) -> bool:
        return getattr(settings, "sync", None) is not None

    @property
    def sync_settings(self) -> SyncSettings:
        return self.settings.sync  # type: ignore[attr-defined, no-any-return]

    def changes(self, since: float | None, etag: str | None) -> AsyncIterator[Page]:
        """Items updated at or after ``since`` (all when ``None``), oldest first, page by page. The
        first request is conditional on ``etag`` (the first page's ETag of the last sweep with the
        same ``since``): unchanged, it yields one ``Page(not_modified=True)``."""
        raise NotImplementedError

    def can_hold(self, name: str, value: Any) -> bool:
        """Whether this tracker can hold task-space ``value`` in field ``name`` (an assignee with no
        login here can't be written). The engine leaves such a field out of that item's sync until
        it can be carried, so it is neither written nor read back as cleared."""
        return True

    async def fetch(self, remote_id: str, etag: str | None = None) -> RemoteItem | None:
        """One item; ``None`` when ``etag`` still matches (304). Raises ``NotFound`` once deleted."""
        raise NotImplementedError

    async def create(self, fields: dict[str, Any], marker: str) -> RemoteItem:
        """A new item from task-space ``fields``, carrying ``marker`` where :meth:`find_created` looks."""
        raise NotImplementedError

    async def find_created(self, marker: str, since: float) -> RemoteItem | None:
        """The item a create with ``marker`` made at or after ``since``, if it exists (its answer was lost)."""
        raise NotImplementedError

    async def update(self, remote_id: str, changes: dict[str, Any], current: RemoteItem) -> None:
        """Write task-space ``changes`` to the item (``current`` as last read): fields in one
        request, a status change through the tracker's own means (Jira transitions)."""
        raise NotImplementedError
