"""The people of every project, in memory, so that planning a message never queries for them.

Like :class:`~tidings.silences.Silences`: loaded at start, reloaded when this process changes a
recipient, a group or a preference (:meth:`Directory.reload`), and every ``refresh`` seconds (a
change made by another worker applies here within that time)."""

from __future__ import annotations

import asyncio

import structlog
from sqlalchemy import select

from ..background import Background, Loads
from ..store.engine import Store
from ..store.tables import projects
from .model import People, Person, load_people

log = structlog.get_logger("tidings.recipients")


class Directory(Background):
    task_name = "tidings-recipients"

    def __init__(self, store: Store, *, refresh: float = 5.0) -> None:
        self.store = store
        self.refresh = refresh
        self._people: dict[str, People] = {}
        self._by_id: dict[str, Person] = {}
        self._loads = Loads()

    def people(self, project: str) -> People:
        """The recipients and groups of ``project`` (empty when it has none). No I/O."""
        return self._people.get(project) or People(project)

    def person(self, recipient_id: str) -> Person | None:
        """The recipient with this id, of any project. No I/O."""
        return self._by_id.get(recipient_id)

    async def load(self) -> None:
        """(Re)load every project's people."""
        load = self._loads.begin()
        async with self.store.read() as conn:
            slugs = [r.slug for r in await conn.execute(select(projects.c.slug))]
            loaded = {slug: await load_people(conn, slug) for slug in slugs}
        if self._loads.show(load):
            self._set(loaded)

    async def reload(self, project: str) -> None:
        """Reload one project's people (after this process changed them)."""
        load = self._loads.begin()
        async with self.store.read() as conn:
            people = await load_people(conn, project)
        if self._loads.show(load):
            self._set({**self._people, project: people})

    def _set(self, loaded: dict[str, People]) -> None:
        self._people = {k: v for k, v in loaded.items() if v.persons or v.groups}
        self._by_id = {p.id: p for people in self._people.values() for p in people.persons.values()}

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.refresh)
            try:
                await self.load()
            except Exception as exc:  # keep the last known people; try again later
                log.warning("recipients.reload_failed", error=f"{type(exc).__name__}: {exc}")
