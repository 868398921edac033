"""What follows a committed task change: a message routed like any event (``source: tasks``), and
the change pushed to the trackers the task is linked to (all but the one it came from)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..message import Message, Priority
from .tasks import TaskChange

if TYPE_CHECKING:
    from ..hub import Hub

_VERBS = {"task.create": "created", "task.update": "updated", "task.delete": "deleted"}


def task_message(change: TaskChange) -> Message:
    """The message a task change routes as: labels ``source: tasks``, ``event_type: task.created`` (...),
    ``task`` (its key), ``origin`` (the integration it came from, or ``tidings``)."""
    task = change.task
    verb = _VERBS.get(change.action, change.action)
    what = ", ".join(sorted(k for k in change.changed if k != "status_name")) if change.action == "task.update" else ""
    labels: dict[str, Any] = {
        "source": "tasks", "event_type": f"task.{verb}", "task": task["key"], "task_id": task["id"],
        "status": task["category"], "origin": change.origin or "tidings",
    }
    if task.get("assignee"):
        labels["assignee"] = task["assignee"]
    return Message(
        title=f"{task['key']} {verb}: {task['title']}",
        body=(f"Changed: {what}" if what else task.get("description") or ""),
        priority=Priority(task["priority"]) if task["category"] != "done" else Priority.INFO,
        labels=labels,
        thread_key=f"task:{task['id']}",
    )


async def after_commit(hub: Hub, change: TaskChange | None) -> None:
    """Route the change's message and push it to linked trackers. Call it after the commit."""
    if change is None:
        return
    task = change.task
    key = f"{change.action}:{task['id']}:v{task.get('version', 0)}"  # a retry after a failed notify sends it once
    await hub.notify(task_message(change), project=task["project"], idempotency_key=key)
    sync = getattr(hub, "sync", None)
    if sync is not None:
        sync.local_changed(change)
