"""Configuration revisions: immutable, validated documents, numbered 1, 2, ...; ``config_state``
points at the current one.

:func:`commit` is the one way a revision is made (the API, the CLI, a file import, a rollback): in
the caller's transaction it locks the pointer, checks ``expected`` (``If-Match``), validates,
stores the revision, appends its audit entry, holds the deliveries of integrations it removes and
resumes those of integrations it brings back, moves the pointer and (PostgreSQL) notifies every
process listening on :data:`CHANNEL`. Processes follow the pointer (``config/live.py``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from sqlalchemy import select, text, update
from sqlalchemy.dialects import postgresql, sqlite

from ..audit import SYSTEM, Actor, append
from ..errors import NotFound, TidingsError
from ..store.engine import Conn
from ..store.tables import config_revisions, config_state
from .document import Document, digest, normalize, project_part, with_project_part

CHANNEL = "tidings_config"
"""The PostgreSQL ``NOTIFY`` channel a commit announces its revision number on."""
Source = Literal["file", "api", "cli", "ui"]
SOURCES = ("file", "api", "cli", "ui")


@dataclass(frozen=True)
class Revision:
    number: int
    created_at: float
    author: str
    source: str
    comment: str | None
    document: Document
    digest: str
    parent: int | None
    audit_seq: int | None

    @property
    def etag(self) -> str:
        return f'"{self.number}"'

    def summary(self) -> dict[str, Any]:
        """Everything but the document."""
        return {
            "number": self.number, "created_at": self.created_at, "author": self.author, "source": self.source,
            "comment": self.comment, "digest": self.digest, "parent": self.parent, "audit_seq": self.audit_seq,
        }


class StaleRevision(TidingsError):
    """``If-Match`` named a revision the edited part has changed since (HTTP 412)."""

    def __init__(self, current: Revision | None, expected: int | str | None) -> None:
        super().__init__(f"the configuration changed since revision {expected}: it is at revision "
                         f"{current.number if current else 0}; read it again and re-apply your change")
        self.current = current


class ReadOnlyConfig(TidingsError):
    """``server.config_source: file``: only the file changes the configuration (HTTP 409)."""


@dataclass(frozen=True)
class State:
    current: int
    file_digest: str | None
    file_document: Document | None


def _revision(row: Any) -> Revision:
    return Revision(row.number, row.created_at, row.author, row.source, row.comment, orjson.loads(row.document),
                    row.digest, row.parent, row.audit_seq)


async def current(conn: Conn) -> Revision | None:
    """The current revision, or None before the first."""
    row = (await conn.execute(
        select(config_revisions).join(config_state, config_state.c.current == config_revisions.c.number)
    )).first()
    return _revision(row) if row is not None else None


async def current_number(conn: Conn) -> int:
    """The current revision's number (0 before the first): one tiny query, for pollers."""
    return int((await conn.execute(select(config_state.c.current).where(config_state.c.id == 1))).scalar() or 0)


async def get(conn: Conn, number: int) -> Revision:
    row = (await conn.execute(select(config_revisions).where(config_revisions.c.number == number))).first()
    if row is None:
        raise NotFound(f"no configuration revision {number}")
    return _revision(row)


async def history(conn: Conn, *, limit: int = 50, before: int | None = None) -> list[Revision]:
    """Revisions newest first (``before``: older than that number)."""
    q = select(config_revisions).order_by(config_revisions.c.number.desc()).limit(limit)
    if before is not None:
        q = q.where(config_revisions.c.number < before)
    return [_revision(r) for r in await conn.execute(q)]


async def read_state(conn: Conn) -> State | None:
    """The pointer as it is (None before the first revision), without locking it."""
    row = (await conn.execute(select(config_state).where(config_state.c.id == 1))).first()
    return _state(row) if row is not None else None


def _state(row: Any) -> State:
    return State(row.current, row.file_digest, orjson.loads(row.file_document) if row.file_document else None)


async def lock_state(conn: Conn) -> State:
    """The pointer, locked for this transaction (made on first use; SQLite's write transaction
    already holds the database lock)."""
    ins = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(config_state)
    await conn.execute(ins.values(id=1, current=0, updated_at=time.time()).on_conflict_do_nothing(index_elements=["id"]))
    q = select(config_state).where(config_state.c.id == 1)
    if conn.dialect.name == "postgresql":
        q = q.with_for_update()
    return _state((await conn.execute(q)).one())


async def commit(
    conn: Conn,
    document: Document,
    *,
    actor: Actor = SYSTEM,
    source: Source = "api",
    comment: str | None = None,
    expected: int | Literal["*"] | None = "*",
    scope: str | None = None,
    validate: Callable[[Document], object] | None = None,
    action: str = "config.revision",
    now: float | None = None,
) -> tuple[Revision, bool]:
    """Make ``document`` the current revision, in ``conn``'s transaction; (the revision, whether
    it is new). A document equal to the current one makes no revision.

    ``expected``: the revision the writer read (``If-Match``; 0: none yet); ``"*"`` or None:
    whatever is current. A revision whose ``scope`` part (a project; None: everything) differs
    from the current one's is stale: :class:`StaleRevision`. With a ``scope``, only that
    project's part of ``document`` is taken, onto the current revision: a writer that read an
    older revision never undoes what changed meanwhile in other projects. ``validate`` raises
    :class:`~tidings.errors.ConfigError` for an invalid document, before anything is stored."""
    from ..delivery.queries import hold_deliveries, resume_held

    now = time.time() if now is None else now
    document = normalize(document)
    state = await lock_state(conn)
    head = await get(conn, state.current) if state.current else None
    if expected is not None and expected != "*" and (head.number if head else 0) != expected:
        if head is None or not isinstance(expected, int) or expected < 1:
            raise StaleRevision(head, expected)
        try:
            base = await get(conn, expected)
        except NotFound:
            raise StaleRevision(head, expected) from None
        if project_part(base.document, scope) != project_part(head.document, scope):
            raise StaleRevision(head, expected)
    if scope is not None and head is not None:
        document = with_project_part(head.document, project_part(document, scope), scope)
    if validate is not None:
        validate(document)
    new_digest = digest(document)
    if head is not None and head.digest == new_digest:
        return head, False
    number = (head.number if head else 0) + 1
    old = head.document["integrations"] if head else {}
    new = document["integrations"]
    removed, added = sorted(set(old) - set(new)), sorted(set(new) - set(old))
    entry = await append(
        conn, actor, action, target=f"config/revision/{number}", project=scope,
        after={"revision": number, "source": source, "comment": comment, "parent": head.number if head else None,
               "integrations_added": added, "integrations_removed": removed,
               "integrations_changed": sorted(n for n in set(old) & set(new) if old[n] != new[n]),
               "routes_changed": bool(head) and head.document["routes"] != document["routes"]},
        at=now,
    )
    await conn.execute(config_revisions.insert().values(
        number=number, created_at=now, author=_author(actor), source=source, comment=comment,
        document=orjson.dumps(document).decode(), digest=new_digest, parent=head.number if head else None,
        audit_seq=entry["seq"],
    ))
    if removed:
        await hold_deliveries(conn, removed, f"held: integration removed in configuration revision {number}", now)
    if added:
        await resume_held(conn, added, now)
    await conn.execute(update(config_state).where(config_state.c.id == 1).values(current=number, updated_at=now))
    if conn.dialect.name == "postgresql":
        await conn.execute(text("SELECT pg_notify(:channel, :payload)"), {"channel": CHANNEL, "payload": str(number)})
    revision = Revision(number, now, _author(actor), source, comment, document, new_digest,
                        head.number if head else None, entry["seq"])
    return revision, True


async def record_file(conn: Conn, file_document: Document, now: float | None = None) -> None:
    """Remember ``file_document`` as the file's last import (what its next change is merged against)."""
    document = normalize(file_document)
    await conn.execute(update(config_state).where(config_state.c.id == 1).values(
        file_digest=digest(document), file_document=orjson.dumps(document).decode(),
        updated_at=time.time() if now is None else now,
    ))


def _author(actor: Actor) -> str:
    return actor.name or actor.id or actor.kind
