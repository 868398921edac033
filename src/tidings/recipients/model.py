"""What planning reads about a project's people: each recipient with their addresses, own quiet
hours and preferences, and the groups. Loaded whole per project (a project has tens to hundreds
of people), kept in memory by :class:`~tidings.recipients.directory.Directory`."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import select

from ..config.people import QuietHours
from ..store.engine import Conn
from ..store.recipient_tables import preferences, recipient_group_members, recipient_groups, recipients


@dataclass(frozen=True, slots=True)
class Person:
    id: str
    project: str
    name: str
    display_name: str
    timezone: str = "UTC"
    email: str | None = None
    slack_user: str | None = None
    teams_url: str | None = None
    """A ``${vault:...}`` reference, resolved only when sending."""
    user_id: str | None = None
    quiet_hours: QuietHours | None = None
    prefs: dict[tuple[str, str], bool] = field(default_factory=dict)
    """(topic or '', channel or '') -> on/off: the person's own choices."""


@dataclass(frozen=True, slots=True)
class People:
    """One project's recipients and groups, by name."""

    project: str
    persons: dict[str, Person] = field(default_factory=dict)
    groups: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Group name -> its members' names, in their order."""

    def by_id(self, recipient_id: str) -> Person | None:
        return next((p for p in self.persons.values() if p.id == recipient_id), None)

    def resolve(self, handles: Iterable[str]) -> list[Person]:
        """The people ``@name`` handles name (a person, or a group's members), each once, in order;
        unknown handles name nobody."""
        out: dict[str, Person] = {}
        for handle in handles:
            name = handle.removeprefix("@")
            names = self.groups.get(name, (name,) if name in self.persons else ())
            for n in names:
                if n in self.persons:
                    out.setdefault(n, self.persons[n])
        return list(out.values())


async def load_people(conn: Conn, project: str) -> People:
    rows = (await conn.execute(select(recipients).where(recipients.c.project == project))).all()
    prefs: dict[str, dict[tuple[str, str], bool]] = {}
    if rows:
        q = select(preferences).where(preferences.c.recipient_id.in_([r.id for r in rows]))
        for p in await conn.execute(q):
            prefs.setdefault(p.recipient_id, {})[(p.topic, p.channel)] = p.enabled
    persons = {
        r.name: Person(
            r.id, r.project, r.name, r.display_name, r.timezone, r.email, r.slack_user, r.teams_url, r.user_id,
            QuietHours.model_validate(r.quiet_hours) if r.quiet_hours else None, prefs.get(r.id, {}),
        )
        for r in rows
    }
    by_id = {p.id: p.name for p in persons.values()}
    groups: dict[str, list[str]] = {}
    q = (
        select(recipient_groups.c.name, recipient_group_members.c.recipient_id)
        .select_from(recipient_groups.outerjoin(recipient_group_members))
        .where(recipient_groups.c.project == project)
        .order_by(recipient_groups.c.name, recipient_group_members.c.position)
    )
    for g in await conn.execute(q):
        members = groups.setdefault(g.name, [])
        if g.recipient_id in by_id:
            members.append(by_id[g.recipient_id])
    return People(project, persons, {k: tuple(v) for k, v in groups.items()})
