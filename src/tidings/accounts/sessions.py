"""Server-side sessions for the UI: a row per sign-in (revocable), idle and absolute timeouts,
and a CSRF token per session. The cookie carries 256 random bits; the row keeps their SHA-256."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from sqlalchemy import select, update

from ..audit import Actor, append
from ..store.engine import Conn
from ..store.tables import sessions, users
from .users import User, _user

IDLE = 12 * 3600.0
"""A session unused this long ends."""
ABSOLUTE = 7 * 86400.0
"""A session ends this long after sign-in, used or not."""
TOUCH_EVERY = 60.0
"""``last_seen_at`` is written at most this often per session (a read is not a write)."""


@dataclass(frozen=True, slots=True)
class Session:
    id: str
    user: User
    csrf: str
    expires_at: float


def _digest(cookie: str) -> str:
    return hashlib.sha256(cookie.encode()).hexdigest()


async def start_session(conn: Conn, actor: Actor, user: User, *, now: float | None = None) -> tuple[str, Session]:
    """Create a session for a signed-in user; returns the cookie value (only here) and the session."""
    now = time.time() if now is None else now
    cookie = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    sid = _digest(cookie)
    await conn.execute(sessions.insert().values(
        id=sid, user_id=user.id, csrf=csrf, created_at=now, last_seen_at=now, expires_at=now + ABSOLUTE,
        ip=actor.ip, user_agent=(actor.user_agent or "")[:500] or None,
    ))
    await append(conn, actor, "auth.login", target=f"user/{user.email}", after={"session": sid[:12]})
    return cookie, Session(sid, user, csrf, now + ABSOLUTE)


async def find_session(conn: Conn, cookie: str, *, now: float | None = None) -> Session | None:
    """The live session of a cookie (None when unknown, revoked, idle too long, past its end, or its
    user disabled); refreshes ``last_seen_at`` when it is older than :data:`TOUCH_EVERY`."""
    now = time.time() if now is None else now
    sid = _digest(cookie)
    row = (await conn.execute(
        select(sessions.c.csrf, sessions.c.expires_at, sessions.c.last_seen_at, sessions.c.revoked_at, users)
        .join(users, users.c.id == sessions.c.user_id).where(sessions.c.id == sid)
    )).first()
    if row is None or row.revoked_at is not None or row.disabled:
        return None
    if now > row.expires_at or now - row.last_seen_at > IDLE:
        return None
    if now - row.last_seen_at > TOUCH_EVERY:
        await conn.execute(update(sessions).where(sessions.c.id == sid).values(last_seen_at=now))
    return Session(sid, _user(row), row.csrf, row.expires_at)


def csrf_ok(session: Session, token: str | None) -> bool:
    return bool(token) and hmac.compare_digest(session.csrf, token or "")


async def end_session(conn: Conn, actor: Actor, cookie: str) -> bool:
    sid = _digest(cookie)
    result = await conn.execute(
        update(sessions).where(sessions.c.id == sid, sessions.c.revoked_at.is_(None)).values(revoked_at=time.time())
    )
    if result.rowcount:
        await append(conn, actor, "auth.logout", target=f"session/{sid[:12]}")
    return bool(result.rowcount)


async def end_user_sessions(conn: Conn, user_id: str) -> int:
    """Revoke every session of a user (disabled, password changed)."""
    result = await conn.execute(update(sessions).where(
        sessions.c.user_id == user_id, sessions.c.revoked_at.is_(None)).values(revoked_at=time.time()))
    return result.rowcount or 0
