"""The task buttons on a task's message in Slack (*Mark done*, *Assign to me*, *Open*), and the
message as it reads after a click.

A task change routes as a message with the labels ``source: tasks``, ``task`` (its key),
``task_id`` and ``status`` (its category; see :func:`tidings.sync.events.task_message`). Such a
message gets an actions block whose action ids carry the task id:
``tidings_task:done:<id>`` and ``tidings_task:assign:<id>`` (Slack wants action ids unique
within a message, at most 255 characters); each button's value is the id too. A click is only
a claim: the receiver checks the signed request, the clicking user and the task's project
before it changes anything (:mod:`.tasks`).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

from slack_sdk.models.blocks import ActionsBlock, ButtonElement, PlainTextObject

from ...message import Message
from .blocks import BLOCKS_MAX, date_token, edited_attachments, escape

TASK_ACTION = "tidings_task"
VERBS = ("done", "assign", "open")
_TASK_ID = re.compile(r"^[0-9a-fA-F-]{36}$")
_TASK_KEY = re.compile(r"^T-[0-9]{1,9}$")
LINES = {"done": "Marked done by", "assign": "Assigned to"}
"""The start of the context line each click leaves (a later click of the same kind replaces it)."""


def action_id(verb: str, task_id: str) -> str:
    return f"{TASK_ACTION}:{verb}:{task_id}"


def parse_action(value: str) -> tuple[str, str] | None:
    """(verb, task id) from a task button's action id; ``None`` when it isn't one."""
    prefix, _, rest = value.partition(":")
    verb, _, task_id = rest.partition(":")
    if prefix != TASK_ACTION or verb not in VERBS or not _TASK_ID.match(task_id):
        return None
    return verb, task_id


def is_task_message(message: Message) -> bool:
    return message.labels.get("source") == "tasks" and bool(_TASK_ID.match(str(message.labels.get("task_id", ""))))


def open_url(template: str, project: str, key: str, task_id: str) -> str:
    """``task_url`` with ``{project}``, ``{key}`` and ``{id}`` filled in (each URL-quoted)."""
    return (template.replace("{project}", quote(project, safe=""))
            .replace("{key}", quote(key, safe="")).replace("{id}", quote(task_id, safe="")))


def add_task_buttons(attachment: dict[str, Any], message: Message, *, project: str, task_url: str | None) -> None:
    """Add, in place, the task buttons to a rendered task message's attachment (before its
    divider and context line): *Mark done* unless the task is done, *Assign to me*, and *Open*
    when ``task_url`` is set."""
    task_id = str(message.labels["task_id"])
    buttons = []
    if message.labels.get("status") != "done":
        buttons.append(ButtonElement(text=PlainTextObject(text="Mark done", emoji=True),
                                     action_id=action_id("done", task_id), value=task_id, style="primary"))
    buttons.append(ButtonElement(text=PlainTextObject(text="Assign to me", emoji=True),
                                 action_id=action_id("assign", task_id), value=task_id))
    key = str(message.labels.get("task", ""))
    if task_url and _TASK_KEY.match(key):
        buttons.append(ButtonElement(text=PlainTextObject(text="Open", emoji=True),
                                     url=open_url(task_url, project, key, task_id), action_id=action_id("open", task_id)))
    blocks: list[dict[str, Any]] = attachment["blocks"]
    at = len(blocks)
    while at > 0 and blocks[at - 1]["type"] in ("divider", "context"):
        at -= 1
    blocks.insert(at, ActionsBlock(elements=buttons).to_dict())
    if len(blocks) > BLOCKS_MAX and at > 1:  # cannot happen within the text budget; keep the buttons
        del blocks[at - 1]


def clicked_attachments(
    shown: list[dict[str, Any]], verb: str, task: dict[str, Any], by: str, at: float,
) -> tuple[str | None, list[dict[str, Any]]]:
    """The clicked message after the change: no *Mark done* once the task is done, and who did
    what in its context line (``by`` is a mention from the signed request)."""
    when = date_token(at, "{date_short_pretty} at {time}")
    if verb == "done":
        line = f"✔️ {LINES['done']} {by} {when}"
    else:
        line = f"👤 {LINES['assign']} {escape(str(task.get('assignee') or 'nobody'))} by {by} {when}"
    done = action_id("done", task["id"])

    def drop(element: dict[str, Any]) -> bool:
        return task["category"] == "done" and element.get("action_id") == done

    return edited_attachments(shown, line, LINES[verb], drop)
