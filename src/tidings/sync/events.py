"""What follows a committed task change: a message routed like any event (``source: tasks``), and
the change pushed to the trackers the task is linked to (all but the one it came from)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import structlog

from ..message import BODY_MAX, FIELD_VALUE_MAX, TITLE_MAX, Field, Format, Link, Message, Priority
from .tasks import TaskChange, links_of

if TYPE_CHECKING:
    from ..hub import Hub

log = structlog.get_logger("tidings.sync")
_VERBS = {"task.create": "created", "task.update": "updated", "task.delete": "deleted"}
_SHOWN = (("status", "Status"), ("priority", "Priority"), ("assignee", "Assignee"), ("due", "Due"),
          ("labels", "Labels"))
"""The fields every task message carries, in this order (``status`` is the project's name)."""


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _shown(value: Any) -> str:
    if value is None or value == []:
        return "—"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


def _changes(change: TaskChange) -> str:
    """One Markdown line per field an update changed: ``**status**: todo → done``."""
    lines = []
    for name, value in change.changed.items():
        if name == "status" and "status_name" in change.changed:
            continue  # the name's line says it (its category is in the labels)
        label = "status" if name == "status_name" else name
        if name == "description":
            lines.append("**description** changed")
            continue
        old = change.before.get(name)
        lines.append(f"**{label}**: {_clip(_shown(old), 200)} → {_clip(_shown(value), 200)}")
    return "\n".join(lines)


def task_message(change: TaskChange, links: Sequence[dict[str, Any]] = ()) -> Message:
    """The message a task change routes as: labels ``source: tasks``, ``event_type: task.created``
    (``task.updated``, ``task.deleted``), ``task`` (its key), ``task_id``, ``status`` (its category),
    ``priority``, ``origin`` (the integration it came from, or ``tidings``) and ``assignee`` when
    set; the task's fields as fields; a link to each linked tracker item. One thread per task."""
    task = change.task
    verb = _VERBS.get(change.action, change.action)
    labels: dict[str, Any] = {
        "source": "tasks", "event_type": f"task.{verb}", "task": task["key"], "task_id": task["id"],
        "status": task["category"], "priority": task["priority"], "origin": change.origin or "tidings",
    }
    if task.get("assignee"):
        labels["assignee"] = task["assignee"]
    if change.action == "task.update":
        body = _changes(change)
    elif change.action == "task.create":
        body = task.get("description") or ""
    else:
        body = ""
    fields = [Field(title, _clip(_shown(task.get(name)), FIELD_VALUE_MAX)) for name, title in _SHOWN]
    urls = [Link(_clip(f"{link['integration']}: {link['remote_key'] or link['remote_url']}", 200), link["remote_url"])
            for link in links if str(link.get("remote_url") or "").startswith(("http://", "https://"))
            and len(link["remote_url"]) <= 2000]
    return Message(
        title=_clip(f"{task['key']} {verb}: {task['title']}", TITLE_MAX),
        body=_clip(body, BODY_MAX),
        format=Format.MARKDOWN,
        priority=Priority(task["priority"]) if task["category"] != "done" else Priority.INFO,
        fields=fields,
        links=urls[:20],
        labels=labels,
        thread_key=f"task:{task['id']}",
    )


async def after_commit(hub: Hub, change: TaskChange | None, links: Sequence[dict[str, Any]] | None = None) -> None:
    """Route the change's message and push it to linked trackers. Call it after the commit.
    ``links``: the task's links when the caller has them (an import just wrote the only one), else read.

    The change is committed already: a failure here is logged, not raised, so the caller still
    answers what was done (the change stands; the next sweep pushes what the sync missed)."""
    if change is None:
        return
    task = change.task
    key = f"{change.action}:{task['id']}:v{task.get('version', 0)}"  # a retry after a failed notify sends it once
    try:
        if links is None:
            links = []
            if change.action != "task.delete" and hub.store is not None:
                async with hub.store.read() as conn:
                    links = await links_of(conn, task["id"])
        await hub.notify(task_message(change, links), project=task["project"], idempotency_key=key)
    except Exception:
        log.exception("task.notify_failed", task=task["key"], project=task["project"])
    sync = getattr(hub, "sync", None)
    if sync is not None:
        try:
            sync.local_changed(change)
        except Exception:
            log.exception("task.sync_failed", task=change.task["key"], project=change.task["project"])
