"""A recipient's own preferences: on/off per (topic, channel), ``''`` meaning any. A topic the
project marks ``required`` (``projects: {slug: {topics: {NAME: {required: true}}}}``) can't be
turned off. Each change is audited in its transaction (``preference.set`` / ``preference.unset``)."""

from __future__ import annotations

import re
import time
from typing import Any

from sqlalchemy import delete, select, update

from ..audit import Actor, append
from ..config.models import NAME as INTEGRATION_NAME
from ..config.people import TOPIC, ProjectSettings
from ..store.engine import Conn
from ..store.recipient_tables import preferences
from .preferences import is_required
from .store import RecipientConflict, RecipientError

_TOPIC = re.compile(TOPIC)


def check_key(topic: str, channel: str) -> tuple[str, str]:
    """``(topic, channel)`` if each is ``''`` (any) or a well-formed topic / integration name."""
    if topic and not _TOPIC.match(topic):
        raise RecipientError(f"topic {topic!r}: lower-case letters, digits, '.', '-' and '_' (at most 64); '' for any")
    if channel and not INTEGRATION_NAME.match(channel):
        raise RecipientError(f"channel {channel!r}: an integration's name; '' for any")
    return topic, channel


def _view(row: Any) -> dict[str, Any]:
    return {"topic": row.topic, "channel": row.channel, "enabled": row.enabled,
            "updated_at": row.updated_at, "updated_by": row.updated_by}


async def list_preferences(conn: Conn, recipient_id: str) -> list[dict[str, Any]]:
    q = select(preferences).where(preferences.c.recipient_id == recipient_id).order_by(
        preferences.c.topic, preferences.c.channel)
    return [_view(r) for r in await conn.execute(q)]


def _target(recipient: dict[str, Any], topic: str, channel: str) -> str:
    return f"recipient/{recipient['project']}/{recipient['name']}/preference/{topic or '*'}/{channel or '*'}"


async def set_preference(conn: Conn, recipient: dict[str, Any], topic: str, channel: str, enabled: bool, *,
                         actor: Actor, settings: ProjectSettings | None, by: str | None = None) -> dict[str, Any]:
    """Turn (topic, channel) on or off for ``recipient``; ``changed`` says whether it did (the
    same value again changes and audits nothing: a replayed unsubscribe link)."""
    check_key(topic, channel)
    if not enabled and is_required(topic, settings):
        raise RecipientConflict(f"topic {topic!r} is required in project {recipient['project']}: it can't be turned off")
    key = (preferences.c.recipient_id == recipient["id"], preferences.c.topic == topic, preferences.c.channel == channel)
    old = (await conn.execute(select(preferences).where(*key))).first()
    if old is not None and old.enabled == enabled:
        return {**_view(old), "changed": False}
    now = time.time()
    row = {"enabled": enabled, "updated_at": now, "updated_by": (by or actor.name or actor.kind)[:200]}
    if old is None:
        await conn.execute(preferences.insert().values(recipient_id=recipient["id"], topic=topic, channel=channel, **row))
    else:
        await conn.execute(update(preferences).where(*key).values(**row))
    await append(conn, actor, "preference.set", target=_target(recipient, topic, channel), project=recipient["project"],
                 before={"enabled": old.enabled} if old is not None else None, after={"enabled": enabled})
    return {"topic": topic, "channel": channel, **row, "changed": True}


async def unset_preference(conn: Conn, recipient: dict[str, Any], topic: str, channel: str, *,
                           actor: Actor) -> bool:
    """Forget the recipient's choice for (topic, channel): the next level decides again. False
    when there was none."""
    check_key(topic, channel)
    key = (preferences.c.recipient_id == recipient["id"], preferences.c.topic == topic, preferences.c.channel == channel)
    old = (await conn.execute(select(preferences).where(*key))).first()
    if old is None:
        return False
    await conn.execute(delete(preferences).where(*key))
    await append(conn, actor, "preference.unset", target=_target(recipient, topic, channel),
                 project=recipient["project"], before={"enabled": old.enabled})
    return True
