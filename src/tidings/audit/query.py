"""Reading the trail for people: filtered, newest first, a page at a time."""

from __future__ import annotations

import re
import time
from collections.abc import Collection
from typing import Any

from sqlalchemy import or_, select

from ..errors import TidingsError
from ..store.engine import Conn
from ..store.pages import newest_first
from ..store.tables import audit_log

ACTION_FILTER = r"^[a-z0-9_]+(?:\.[a-z0-9_]+)*(?:\.\*)?$"
"""An action (``silence.create``) or every action under a prefix (``silence.*``)."""
_ACTION = re.compile(ACTION_FILTER)
FIELDS = tuple(c.name for c in audit_log.columns)


class AuditQueryError(TidingsError, ValueError):
    """A filter that can't be applied (a malformed action pattern)."""


def entry(row: Any) -> dict[str, Any]:
    return {name: getattr(row, name) for name in FIELDS}


async def list_entries(
    conn: Conn,
    *,
    actor: str | None = None,
    action: str | None = None,
    project: str | None = None,
    projects: Collection[str] | None = None,
    since: float | None = None,
    limit: int = 50,
    before: int | None = None,
    now: float | None = None,
) -> dict[str, Any]:
    """Entries newest first, ``limit`` at a time (pass ``next`` as ``before``).

    ``actor`` matches the actor's name, id or token id; ``action`` is exact or ends in ``.*``;
    ``since`` is seconds back from now. ``projects`` limits what may be seen at all (None: every
    entry, site-wide ones included; otherwise only entries of these projects)."""
    query = select(audit_log)
    if actor:
        query = query.where(or_(audit_log.c.actor_name == actor, audit_log.c.actor_id == actor,
                                audit_log.c.token_id == actor))
    if action:
        if not _ACTION.match(action):
            raise AuditQueryError(f"action {action!r}: write e.g. silence.create, or silence.* for all of them")
        if action.endswith(".*"):
            prefix = action[:-1].replace("_", r"\_")
            query = query.where(audit_log.c.action.like(prefix + "%", escape="\\"))
        else:
            query = query.where(audit_log.c.action == action)
    if project is not None:
        query = query.where(audit_log.c.project == project)
    if projects is not None:
        query = query.where(audit_log.c.project.in_(list(projects)))
    if since is not None:
        if since <= 0:
            raise AuditQueryError("since must be a positive duration")
        query = query.where(audit_log.c.at >= (time.time() if now is None else now) - since)
    return await newest_first(conn, query, audit_log.c.seq, limit=limit, before=before, item=entry)
