"""An in-memory tracker for engine tests: items in a dict, calls counted (``model.count_call``), errors
scripted per method, ETag/304 on ``changes`` and ``fetch``, and creates whose answer is lost."""

from __future__ import annotations

import hashlib
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import Field

from tidings.integrations.base import IntegrationSettings, Tracker
from tidings.sync.model import FIELDS, NotFound, Page, RemoteItem, Unavailable, count_call, normalize
from tidings.sync.settings import SyncSettings

DEFAULTS: dict[str, Any] = {"title": "", "description": "", "status": "todo", "priority": "medium",
                            "assignee": None, "labels": [], "due": None}
STATUS_NAMES = {"todo": "Open", "in_progress": "In Progress", "done": "Closed"}


class FakeSettings(IntegrationSettings):
    kind: Literal["fake"] = "fake"
    sync: SyncSettings = Field(default_factory=SyncSettings)


@dataclass
class Stored:
    id: str
    fields: dict[str, Any]
    updated_at: float
    created_at: float
    marker: str | None = None
    version: int = 1
    deleted: bool = False
    gone: bool = False
    """Deleted for good: ``fetch`` answers 404 and sweeps no longer list it."""
    history: list[dict[str, Any]] = field(default_factory=list)


class FakeTracker(Tracker):
    kind = "fake"
    Settings = FakeSettings

    def __init__(self, name: str = "fake", settings: FakeSettings | None = None, *,
                 carries: tuple[str, ...] = FIELDS, page_size: int = 3, **sync: Any) -> None:
        super().__init__(name, settings or FakeSettings(sync=SyncSettings(**sync)), None)  # type: ignore[arg-type]
        self.items: dict[str, Stored] = {}
        self.carries = carries
        self.logins: set[str] | None = None
        """Assignees this tracker has a login for (``None``: every one), as :meth:`can_hold` answers."""
        self.page_size = page_size
        self.calls: Counter[str] = Counter()
        self.script: dict[str, list[BaseException | None]] = defaultdict(list)
        self.lose_creates = 0
        """How many of the next creates make their item and then fail as if the answer was lost."""
        self._clock = 0.0

    def can_hold(self, name: str, value: Any) -> bool:
        return name != "assignee" or not value or self.logins is None or value in self.logins

    # -- what a test does on the tracker's side ---------------------------------------------------

    def fail(self, method: str, *errors: BaseException | None) -> None:
        """The next calls of ``method`` (``changes`` counts each page) raise these in turn; ``None`` lets one through."""
        self.script[method].extend(errors)

    def now(self) -> float:
        self._clock = max(time.time(), self._clock + 0.001)
        return self._clock

    def add(self, **fields: Any) -> str:
        """An item somebody created on the tracker."""
        item_id = str(len(self.items) + 1)
        now = self.now()
        self.items[item_id] = Stored(item_id, self._full(fields), now, now)
        return item_id

    def edit(self, item_id: str, **fields: Any) -> None:
        """Somebody edited the item on the tracker."""
        stored = self.items[item_id]
        stored.fields = self._full({**stored.fields, **fields})
        stored.version += 1
        stored.updated_at = self.now()

    def delete(self, item_id: str, *, listed: bool = False) -> None:
        """The item is deleted: ``fetch`` answers 404; ``listed``: sweeps see it as ``deleted``."""
        stored = self.items[item_id]
        stored.deleted, stored.gone = True, not listed
        stored.version += 1
        stored.updated_at = self.now()

    def item(self, item_id: str) -> RemoteItem:
        s = self.items[item_id]
        return RemoteItem(
            id=s.id, key=f"{self.name}#{s.id}", url=f"https://tracker.invalid/{self.name}/{s.id}",
            updated_at=s.updated_at, fields=normalize({k: s.fields[k] for k in self.carries}), marker=s.marker,
            etag=f'"{s.id}-{s.version}"', status_name=STATUS_NAMES[s.fields["status"]], deleted=s.deleted,
        )

    @property
    def writes(self) -> int:
        return self.calls["create"] + self.calls["update"]

    def live(self) -> list[Stored]:
        return [s for s in self.items.values() if not s.deleted]

    # -- the Tracker capability ---------------------------------------------------------------------

    async def changes(self, since: float | None, etag: str | None) -> AsyncIterator[Page]:  # type: ignore[override]
        chosen = sorted((s for s in self.items.values() if not s.gone and (since is None or s.updated_at >= since)),
                        key=lambda s: (s.updated_at, int(s.id)))
        chunks = [chosen[i:i + self.page_size] for i in range(0, len(chosen), self.page_size)] or [[]]
        for n, chunk in enumerate(chunks):
            self._enter("changes")
            page_etag = '"' + hashlib.sha256(repr((since, [(s.id, s.version) for s in chunk])).encode()).hexdigest()[:16] + '"'
            if n == 0 and etag is not None and etag == page_etag:
                count_call(not_modified=True)
                yield Page([], page_etag, not_modified=True)
                return
            count_call()
            yield Page([self.item(s.id) for s in chunk], page_etag)

    async def fetch(self, remote_id: str, etag: str | None = None) -> RemoteItem | None:
        self._enter("fetch")
        stored = self.items.get(remote_id)
        if stored is None or stored.deleted:
            count_call()
            raise NotFound(f"{self.name}#{remote_id}: 404 Not Found")
        item = self.item(remote_id)
        if etag is not None and etag == item.etag:
            count_call(not_modified=True)
            return None
        count_call()
        return item

    async def create(self, fields: dict[str, Any], marker: str) -> RemoteItem:
        self._enter("create")
        count_call()
        item_id = self.add(**{k: v for k, v in fields.items() if k in self.carries})
        self.items[item_id].marker = marker
        if self.lose_creates:
            self.lose_creates -= 1
            raise Unavailable("the connection was reset before the answer came")
        return self.item(item_id)

    async def find_created(self, marker: str, since: float) -> RemoteItem | None:
        self._enter("find_created")
        count_call()
        for s in self.items.values():
            if s.marker == marker and s.created_at >= since and not s.gone:
                return self.item(s.id)
        return None

    async def update(self, remote_id: str, changes: dict[str, Any], current: RemoteItem) -> None:
        self._enter("update")
        count_call()
        stored = self.items.get(remote_id)
        if stored is None or stored.deleted:
            raise NotFound(f"{self.name}#{remote_id}: 404 Not Found")
        stored.history.append(dict(changes))
        self.edit(remote_id, **{k: v for k, v in changes.items() if k in self.carries})

    # -- helpers ----------------------------------------------------------------------------------

    def _enter(self, method: str) -> None:
        self.calls[method] += 1
        if self.script[method]:
            error = self.script[method].pop(0)
            if error is not None:
                count_call()
                raise error

    def _full(self, fields: dict[str, Any]) -> dict[str, Any]:
        return normalize({**DEFAULTS, **fields})
