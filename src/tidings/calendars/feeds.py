"""ICS feeds in the store: made, listed, revoked, found by their token.

The feed URL's token is the credential (calendar clients can't send headers): 256 random bits
(``secrets.token_urlsafe(32)``), shown once, stored as its SHA-256 like API tokens
(``security.tokens``). A personal feed (``user_id`` set) holds the tasks of its project assigned to
that user; it stops answering when the user is disabled or leaves the project.
"""

from __future__ import annotations

import re
import secrets as pysecrets
import time
from typing import Any

from sqlalchemy import and_, func, or_, select, update

from ..audit import Actor, append
from ..ids import new_id
from ..security.tokens import TOUCH_EVERY, hash_token
from ..store.engine import Conn
from ..store.tables import audit_log, calendar_feeds, memberships, task_links, tasks, users

TOKEN = re.compile(r"^[A-Za-z0-9_-]{43}$")
"""What ``secrets.token_urlsafe(32)`` gives: anything else is no feed, without a query."""
_FEED_PATH = re.compile(r"^(/calendars/)[^/]*(\.ics)$")
_PUBLIC = (calendar_feeds.c.id, calendar_feeds.c.project, calendar_feeds.c.name, calendar_feeds.c.user_id,
           calendar_feeds.c.created_by, calendar_feeds.c.created_at, calendar_feeds.c.revoked_at,
           calendar_feeds.c.last_used_at)


def mask_path(path: str) -> str:
    """``path`` with a feed's token hidden, for logs: ``/calendars/***.ics``."""
    return _FEED_PATH.sub(r"\1***\2", path)


async def _email(conn: Conn, user_id: str | None) -> str | None:
    if user_id is None:
        return None
    return (await conn.execute(select(users.c.email).where(users.c.id == user_id))).scalar()


async def _view(conn: Conn, row: Any) -> dict[str, Any]:
    feed = dict(row._mapping)
    feed["user"] = await _email(conn, feed.pop("user_id"))
    feed["created_by"] = await _email(conn, feed["created_by"])
    return feed


async def create_feed(
    conn: Conn, actor: Actor, project: str, name: str, *, user_id: str | None, created_by: str | None,
) -> tuple[dict[str, Any], str]:
    """A new feed of ``project`` (of the tasks assigned to ``user_id``, when given) and its token:
    the only time the token exists in clear. Audited in ``conn``'s transaction."""
    token = pysecrets.token_urlsafe(32)
    fid = new_id()
    await conn.execute(calendar_feeds.insert().values(
        id=fid, token_hash=hash_token(token), project=project, user_id=user_id, name=name,
        created_by=created_by, created_at=time.time()))
    feed = await _view(conn, (await conn.execute(select(*_PUBLIC).where(calendar_feeds.c.id == fid))).one())
    await append(conn, actor, "calendar.create", target=f"calendar/{fid}", project=project,
                 after={"name": name, "user": feed["user"]})
    return feed, token


async def list_feeds(conn: Conn, project: str, *, created_by: str | None = None) -> list[dict[str, Any]]:
    """The project's live feeds, oldest first (only those ``created_by`` made, when given); no token."""
    where = [calendar_feeds.c.project == project, calendar_feeds.c.revoked_at.is_(None)]
    if created_by is not None:
        where.append(calendar_feeds.c.created_by == created_by)
    rows = await conn.execute(select(*_PUBLIC).where(*where).order_by(calendar_feeds.c.created_at))
    return [await _view(conn, r) for r in rows.all()]


async def revoke_feed(
    conn: Conn, actor: Actor, project: str, feed_id: str, *, created_by: str | None = None,
) -> dict[str, Any] | None:
    """Revoke the project's live feed ``feed_id`` (only if ``created_by`` made it, when given);
    None when there is no such feed. Audited in ``conn``'s transaction."""
    where = [calendar_feeds.c.id == feed_id, calendar_feeds.c.project == project, calendar_feeds.c.revoked_at.is_(None)]
    if created_by is not None:
        where.append(calendar_feeds.c.created_by == created_by)
    row = (await conn.execute(select(*_PUBLIC).where(*where))).first()
    if row is None:
        return None
    now = time.time()
    await conn.execute(update(calendar_feeds).where(calendar_feeds.c.id == feed_id).values(revoked_at=now))
    feed = {**await _view(conn, row), "revoked_at": now}
    await append(conn, actor, "calendar.revoke", target=f"calendar/{feed_id}", project=project,
                 before={"name": feed["name"], "user": feed["user"]})
    return feed


async def feed_by_token(conn: Conn, token: str) -> dict[str, Any] | None:
    """The live feed of ``token`` (with ``email``, its user's, for a personal feed), or None: an
    unknown or revoked token, or a personal feed whose user is disabled or left the project."""
    if not TOKEN.match(token):
        return None
    row = (await conn.execute(
        select(calendar_feeds, users.c.email, users.c.disabled, users.c.site_admin, memberships.c.role)
        .select_from(calendar_feeds.outerjoin(users, users.c.id == calendar_feeds.c.user_id)
                     .outerjoin(memberships, and_(memberships.c.user_id == calendar_feeds.c.user_id,
                                                  memberships.c.project == calendar_feeds.c.project)))
        .where(calendar_feeds.c.token_hash == hash_token(token), calendar_feeds.c.revoked_at.is_(None))
    )).first()
    if row is None:
        return None
    if row.user_id is not None and (row.email is None or row.disabled or (row.role is None and not row.site_admin)):
        return None
    return dict(row._mapping)


async def feed_tasks(conn: Conn, feed: dict[str, Any]) -> list[dict[str, Any]]:
    """The feed's tasks with a due date, by number, each with ``url``: its first tracker item's."""
    where = [tasks.c.project == feed["project"], tasks.c.due.is_not(None)]
    if feed["user_id"] is not None:
        where.append(tasks.c.assignee == feed["email"])
    rows = (await conn.execute(select(tasks).where(*where).order_by(tasks.c.number))).all()
    found = [dict(r._mapping) for r in rows]
    urls: dict[str, str] = {}
    if found:
        links = await conn.execute(
            select(task_links.c.task_id, task_links.c.remote_url)
            .where(task_links.c.task_id.in_([t["id"] for t in found]), task_links.c.remote_url.is_not(None),
                   or_(task_links.c.state == "linked", task_links.c.state == "creating"))
            .order_by(task_links.c.integration))
        for link in links:
            urls.setdefault(link.task_id, link.remote_url)
    return [{**t, "url": urls.get(t["id"])} for t in found]


async def last_changed(conn: Conn, feed: dict[str, Any]) -> float:
    """When the feed's content may last have changed (its ``Last-Modified``): the feed's making,
    the last change of ANY task of the project (a task reassigned or its due date removed leaves the
    feed by a change of its own) and the project's last task deletion (from the audit trail)."""
    latest = (await conn.execute(select(func.max(tasks.c.updated_at)).where(tasks.c.project == feed["project"]))).scalar()
    deleted = (await conn.execute(
        select(audit_log.c.at).where(audit_log.c.action == "task.delete", audit_log.c.project == feed["project"])
        .order_by(audit_log.c.seq.desc()).limit(1))).scalar()
    return max(t for t in (feed["created_at"], latest, deleted) if t is not None)


def due_touch(feed: dict[str, Any], *, now: float | None = None) -> bool:
    """Whether reading ``feed`` should record it: ``last_used_at`` is written at most every ``TOUCH_EVERY``."""
    now = time.time() if now is None else now
    return feed["last_used_at"] is None or now - feed["last_used_at"] >= TOUCH_EVERY


async def touch(conn: Conn, feed: dict[str, Any], *, now: float | None = None) -> None:
    """Record that the feed was read (not an audited change)."""
    now = time.time() if now is None else now
    await conn.execute(update(calendar_feeds).where(calendar_feeds.c.id == feed["id"]).values(last_used_at=now))
