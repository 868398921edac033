"""Tasks from Slack: the slash command's ``task`` verbs and the clicks of the task buttons.

- ``task new <title>``, ``task done <key>``, ``task assign <key> <who>`` change a task. They are
  checked at once (a mistake is answered with the usage and not stored), stored as
  ``command.task``, answered "on it" within Slack's 3 s and done from the stored row, like
  ``ack``; the result is posted to the command's ``response_url``.
- ``task list [open|mine|all]`` only reads: answered at once, ephemeral, at most
  :data:`LIST_MAX` tasks.
- *Mark done* and *Assign to me* on a task's message (:mod:`.task_blocks`) are stored as
  ``block_actions.tidings_task``, answered 200 at once, and done from the stored row; the
  message is then edited (``chat.update`` in bot mode, else through the click's
  ``response_url``).

Who acts: the integration's ``users`` setting maps a Slack user id to a tidings user's email.
There is no lookup by the Slack profile's email: that would need a call to Slack inside the 3 s,
and a profile email is whatever its owner typed. The mapped user's role in the integration's
project decides, through :func:`~tidings.accounts.principal.authorize` (``task:read`` to list,
``task:write`` to change). An unlinked Slack user, a user without the permission and a button
naming a task of another project are refused, and each refusal is audited (``access.denied``,
outcome ``denied``). Changes are audited by :mod:`tidings.sync.tasks` as the mapped user with
auth method ``slack`` (the request id is the stored event's), then routed by
:func:`~tidings.sync.events.after_commit`.

With ``slash_command: /task`` (or ``/tasks``) the word ``task`` may be left out
(``/task new Fix the login``); the other commands still answer (``/task status``).
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import select

from ...accounts.principal import Forbidden, Principal, authorize
from ...accounts.users import AccountError, get_user, normalize_email, principal_for
from ...audit import Actor
from ...audit.chain import append
from ...store.engine import Conn
from ...store.tables import audit_log
from ...sync.events import after_commit
from ...sync.tasks import (
    StaleTask,
    TaskChange,
    TaskError,
    check_fields,
    get_task,
    get_task_by_id,
    list_tasks,
    update_task,
)
from ...sync.tasks import create_task as create_task_row
from ..base import OutcomeStatus
from ..receiver import Inbound, InboundEvent, InboundRequest, Rejected, Reply, body_digest
from .blocks import escape, fit
from .inbound import EMPTY, SlackReceiver, _ephemeral, mention_of, slack_actor, unescape, who
from .task_blocks import TASK_ACTION, clicked_attachments, parse_action

if TYPE_CHECKING:
    from ...hub import Hub

TASK_COMMANDS = ("/task", "/tasks")
"""Slash command names under which the word ``task`` may be left out."""
VERBS = ("new", "list", "done", "assign")
LIST_SCOPES = ("open", "mine", "all")
LIST_MAX = 20
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,30}$")
_KEY = re.compile(r"^(?:(?:[Tt]-)?[0-9]{1,9}|[0-9a-fA-F-]{36})$")
_WORD = re.compile(r"\s*(\S*)\s*(.*)", re.S)
_MENTION = re.compile(r"^<@([UW][A-Z0-9]{2,30})(?:\|[^>]*)?>$")
_MAILTO = re.compile(r"^<mailto:([^|>]+)(?:\|[^>]*)?>$")
_LOGIN = re.compile(r"^[a-z][a-z0-9_-]{0,30}:[^\s<>@]{1,200}$")
NOBODY = ("nobody", "none", "-")
Answer = Callable[["Hub"], Awaitable[Reply]]


class TaskCommandError(ValueError):
    """A task command that can't be read; its text says why (shown to the Slack user, escaped)."""


def _word(text: str) -> tuple[str, str]:
    m = _WORD.match(text)
    assert m is not None
    return m.group(1), m.group(2).strip()


def task_text(command: str, text: str) -> tuple[str, str] | None:
    """(verb, the rest) when a slash command's text is a task command, else ``None``. The verb
    is ``help`` for a bare ``task``; under a command in :data:`TASK_COMMANDS` the word ``task``
    may be left out."""
    first, rest = _word(unescape(text))
    if first.lower() in ("task", "tasks"):
        verb, rest = _word(rest)
        return verb.lower() or "help", rest
    if command in TASK_COMMANDS and first.lower() in VERBS:
        return first.lower(), rest
    return None


def check_task(verb: str, rest: str) -> dict[str, Any]:
    """A task command's arguments, checked: ``title``; ``scope``; ``key`` (and ``who``: ``me``,
    ``nobody``, ``slack:U…`` or an email or ``kind:login``). Raises :class:`TaskCommandError`."""
    if _CONTROL.search(rest):
        raise TaskCommandError("the text has a control character (such as NUL): type it again without it")
    words = rest.split()
    if verb == "new":
        title = " ".join(words)
        if not title:
            raise TaskCommandError("give the new task a title")
        try:
            check_fields({"title": title})
        except TaskError as exc:
            raise TaskCommandError(str(exc)) from None
        return {"title": title}
    if verb == "list":
        if len(words) > 1 or (words and words[0].lower() not in LIST_SCOPES):
            raise TaskCommandError(f"list takes one of {', '.join(LIST_SCOPES)} (or nothing: open)")
        return {"scope": words[0].lower() if words else "open"}
    if not words or not _KEY.match(words[0]):
        raise TaskCommandError(f"{verb} takes a task key, such as T-12")
    if verb == "done":
        if len(words) != 1:
            raise TaskCommandError("done takes one task key")
        return {"key": words[0]}
    if len(words) != 2:
        raise TaskCommandError("assign takes a task key and who: @someone, an email, me or nobody")
    return {"key": words[0], "who": _assignee(words[1])}


def _assignee(word: str) -> str:
    if word.lower() in ("me", *NOBODY):
        return word.lower() if word.lower() == "me" else "nobody"
    if m := _MENTION.match(word):
        return "slack:" + m.group(1)
    if m := _MAILTO.match(word):
        word = m.group(1)
    if "@" in word and not word.startswith("@"):
        try:
            return normalize_email(word)
        except AccountError as exc:
            raise TaskCommandError(str(exc)) from None
    if _LOGIN.match(word):
        return word
    if word.startswith("@"):
        raise TaskCommandError(f"can't tell who {word} is: Slack sent the name as text. Turn on \"Escape channels, "
                               "users, and links\" in the slash command's settings, or give an email")
    raise TaskCommandError(f"who is {word}? Give @someone, an email, me or nobody")


async def _done_by(conn: Conn, event: InboundEvent, action: str, project: str) -> dict[str, Any] | None:
    """The task an earlier attempt of this stored event already changed (its audit entry names
    it), so a retried event does not create or change twice. (Entries since the event arrived:
    the time index keeps it a short range.)"""
    target = (await conn.execute(select(audit_log.c.target).where(
        audit_log.c.at >= event.received_at - 60, audit_log.c.request_id == event.id, audit_log.c.action == action,
        audit_log.c.project == project,
    ).limit(1))).scalar()
    return await get_task(conn, project, target) if target else None


def _target(verb: str, args: dict[str, Any]) -> str:
    """What an audit entry of a task command names: ``slack task done T-12``."""
    return " ".join(["slack task", verb, *(str(args[k]) for k in ("key", "scope") if k in args)])


def _plain(text: str | None, limit: int = 80) -> str | None:
    return _CONTROL.sub("", text)[:limit] if text else None


class SlackTaskReceiver(SlackReceiver):
    """:class:`~.inbound.SlackReceiver` with the task verbs and the task buttons."""

    handlers = {
        **SlackReceiver.handlers,
        "command.task": "_command_task",
        f"block_actions.{TASK_ACTION}": "_task_button",
    }
    ignored = SlackReceiver.ignored | {f"block_actions.{TASK_ACTION}_open"}  # a URL button: Slack opens it

    # -- the request -------------------------------------------------------------------------
    def _identify_command(self, request: InboundRequest, form: dict[str, str]) -> Inbound:
        if form.get("command", "").lower() == self.settings.slash_command:
            parsed = task_text(self.settings.slash_command, form.get("text", ""))
            if parsed is not None:
                return self._identify_task(request, form, *parsed)
        return super()._identify_command(request, form)

    def _identify_task(self, request: InboundRequest, form: dict[str, str], verb: str, rest: str) -> Inbound:
        if verb not in VERBS:
            unknown = "" if verb == "help" else f"Unknown task command `{escape(verb)}`.\n"
            return Inbound("command.help", "", _ephemeral(unknown + self._task_help()), store=False)
        try:
            args = check_task(verb, rest)
        except TaskCommandError as exc:
            return Inbound("command.task", "", _ephemeral(escape(str(exc)) + "\n" + self._task_usage(verb)), store=False)
        user = form.get("user_id", "")
        by = who(user if _USER_ID.match(user) else None, _plain(form.get("user_name")))
        request_id = _plain(form.get("trigger_id"), 64) or body_digest(request.body)[:64]
        target = _target(verb, args)
        if user not in self.settings.users:
            refusal = self._unlinked(user)
            return Inbound("command.task", "", _ephemeral(refusal), store=False,
                           answer=self._refuse(user, by, request_id, target, refusal))
        if verb == "list":
            slow = _ephemeral("That took too long to look up; try again in a moment.")
            return Inbound("command.task", "", slow, store=False, answer=self._list(user, by, request_id, args["scope"]))
        if not form.get("response_url"):
            raise Rejected(400, "a slash command without response_url")
        trigger = form.get("trigger_id")
        key = f"command:{trigger}" if trigger else body_digest(request.body)
        if verb == "new":
            on_it = f"Creating “{fit(args['title'], 200)}”…"
        else:
            on_it = f"Marking `{args['key']}` done…" if verb == "done" else f"Assigning `{args['key']}`…"
        return Inbound("command.task", key, _ephemeral(on_it))

    def _identify_interaction(self, request: InboundRequest, raw: str) -> Inbound:
        inbound = super()._identify_interaction(request, raw)
        if not inbound.event_type.startswith(f"block_actions.{TASK_ACTION}:"):
            return inbound
        action = orjson.loads(raw)["actions"][0]
        parsed = parse_action(str(action.get("action_id")))
        if parsed is None:
            raise Rejected(400, f"a task button's action_id is {TASK_ACTION}:<done|assign|open>:<task id>")
        verb, task_id = parsed
        if verb == "open":
            return Inbound(f"block_actions.{TASK_ACTION}_open", inbound.delivery_key, EMPTY)
        if action.get("value") != task_id:
            raise Rejected(400, "a task button's value is the task id its action_id names")
        return Inbound(f"block_actions.{TASK_ACTION}", inbound.delivery_key, EMPTY)

    # -- texts -------------------------------------------------------------------------------
    def _task_command(self) -> str:
        c = escape(self.settings.slash_command)
        return c if self.settings.slash_command in TASK_COMMANDS else f"{c} task"

    def _help(self) -> str:
        return super()._help() + "\n" + self._task_help()

    def _task_help(self) -> str:
        t = self._task_command()
        return "\n".join([
            "*Tasks* (in the slash command, as the tidings user your Slack user is linked to):",
            f"• `{t} new &lt;title&gt;`: a new task",
            f"• `{t} list [open|mine|all]`: the project's open tasks (`mine`: yours), newest first",
            f"• `{t} done &lt;key&gt;`: mark a task done, e.g. `{t} done T-12`",
            f"• `{t} assign &lt;key&gt; &lt;@someone|email|me|nobody&gt;`: assign a task",
        ])

    def _task_usage(self, verb: str) -> str:
        t = self._task_command()
        return "Usage: " + {
            "new": f"`{t} new &lt;title&gt;`",
            "list": f"`{t} list [open|mine|all]`",
            "done": f"`{t} done &lt;key&gt;`, e.g. `{t} done T-12`",
            "assign": f"`{t} assign &lt;key&gt; &lt;@someone|email|me|nobody&gt;`",
        }[verb]

    def _unlinked(self, user: str) -> str:
        shown = f"`{escape(user)}`" if _USER_ID.match(user) else "your Slack user id"
        return (f"Your Slack user is not linked to a tidings user: ask an owner of the project to add {shown} to "
                f"`users` in the `{escape(self.name)}` integration's settings. Nothing was changed.")

    # -- who acts ----------------------------------------------------------------------------
    async def _acting(
        self, hub: Hub, user: str | None, by: str, permission: str, request_id: str, target: str,
    ) -> tuple[Principal | None, str]:
        """The principal the Slack user acts as, when it may do ``permission`` in this integration's
        project; else ``None`` and the refusal to show, audited."""
        email = self.settings.users.get(user or "")
        principal = None
        if email is None:
            why = self._unlinked(user or "")
        else:
            async with hub.require_store().read() as conn:
                found = await get_user(conn, email)
                if found is not None and not found.disabled:
                    principal = await principal_for(conn, found, auth_method="slack")
            if principal is None:
                why = (f"Your Slack user is linked to {escape(email)}, which is not an active tidings user: ask an "
                       "owner of the project. Nothing was changed.")
            else:
                try:
                    return authorize(principal, permission, self.project), ""
                except Forbidden:
                    role = principal.role_in(self.project)
                    why = (f"You ({escape(principal.name)}) may not do that: it needs the permission `{permission}` in "
                           f"project `{escape(self.project)}`, and your role there is {role or 'none'}. "
                           "Nothing was changed.")
        known = user if user and _USER_ID.match(user) else None
        actor = self._actor(principal, request_id) if principal else slack_actor(known, by, request_id)
        async with hub.require_store().write() as conn:
            await append(conn, actor, "access.denied", target=target, project=self.project,
                         after={"permission": permission, "slack_user": known, "via": self.name}, outcome="denied")
        return None, why

    @staticmethod
    def _actor(principal: Principal, request_id: str) -> Actor:
        return Actor("user", id=principal.user_id, name=principal.name, auth_method="slack", request_id=request_id)

    def _refuse(self, user: str, by: str, request_id: str, target: str, refusal: str) -> Answer:
        async def answer(hub: Hub) -> Reply:
            _, why = await self._acting(hub, user, by, "task:write", request_id, target)
            return _ephemeral(why or refusal)

        return answer

    # -- task list ---------------------------------------------------------------------------
    def _list(self, user: str, by: str, request_id: str, scope: str) -> Answer:
        async def answer(hub: Hub) -> Reply:
            principal, why = await self._acting(hub, user, by, "task:read", request_id, _target("list", {"scope": scope}))
            if principal is None:
                return _ephemeral(why)
            async with hub.require_store().read() as conn:
                page = await list_tasks(conn, self.project, status=None if scope == "all" else "open",
                                        assignee=principal.name if scope == "mine" else None, limit=LIST_MAX,
                                        with_total=True)
            return _ephemeral(self._listing(page["items"], page["total"], scope))

        return answer

    def _listing(self, found: list[dict[str, Any]], total: int, scope: str) -> str:
        what = {"open": "Open tasks", "mine": "Your open tasks", "all": "Tasks"}[scope]
        if not found:
            none = {"open": "No open tasks", "mine": "You have no open tasks", "all": "No tasks"}[scope]
            return f"{none} in project `{escape(self.project)}`."
        lines = [f"*{what} in project `{escape(self.project)}`* ({total})"]
        for task in found:
            line = f"• `{task['key']}` {fit(task['title'], 200)} · {escape(task['status'])}"
            if task.get("assignee") and scope != "mine":
                line += f" · {escape(str(task['assignee']))}"
            lines.append(line)
        if total > len(found):
            lines.append(f"_…and {total - len(found)} more (`tidings task list` shows them all)_")
        return "\n".join(lines)

    # -- processing --------------------------------------------------------------------------
    async def _command_task(self, event: InboundEvent, hub: Hub) -> dict[str, Any]:
        form = event.form()
        parsed = task_text(self.settings.slash_command, form.get("text", ""))
        if parsed is None or parsed[0] not in VERBS or parsed[0] == "list":
            return {"status": "ignored", "reason": "not a task change (the settings changed meanwhile)"}
        verb, rest = parsed
        user = form.get("user_id", "")
        by = who(user if _USER_ID.match(user) else None, _plain(form.get("user_name")))
        try:
            args = check_task(verb, rest)
        except TaskCommandError as exc:
            text, result = escape(str(exc)), {"status": "processed", "outcome": "refused"}
        else:
            text, result = await self._change(hub, event, verb, args, user, by)
        await self._respond(form["response_url"], text)
        return result

    async def _change(
        self, hub: Hub, event: InboundEvent, verb: str, args: dict[str, Any], user: str, by: str,
    ) -> tuple[str, dict[str, Any]]:
        """Do a task command as the mapped user; (text, result)."""
        target = _target(verb, args)
        principal, why = await self._acting(hub, user, by, "task:write", event.id, target)
        if principal is None:
            return why, {"status": "processed", "outcome": "denied"}
        values: dict[str, Any] = {}
        if verb == "done":
            values = {"status": "done"}
        elif verb == "assign":
            who_ = args["who"]
            if who_.startswith("slack:"):
                mapped = self.settings.users.get(who_[6:])
                if mapped is None:
                    return (f"<@{who_[6:]}> is not linked to a tidings user (`users` in the integration's settings): "
                            "give an email instead. Nothing was changed.", {"status": "processed", "outcome": "refused"})
                who_ = mapped
            values = {"assignee": principal.name if who_ == "me" else None if who_ == "nobody" else who_}
        actor = self._actor(principal, event.id)
        change: TaskChange | None = None
        try:
            async with hub.require_store().write() as conn:
                # An earlier attempt of this event that did the work (its audit entry says so) is not repeated.
                task = await _done_by(conn, event, "task.create" if verb == "new" else "task.update", self.project)
                changed = task is not None
                if task is None and verb == "new":
                    change = await create_task_row(conn, self.project, {"title": args["title"]}, actor=actor)
                elif task is None:
                    task = await get_task(conn, self.project, args["key"])
                    if task is not None:
                        change = await update_task(conn, task, values, actor=actor)
                if change is not None:
                    task, changed = change.task, True
        except StaleTask:
            raise  # changed meanwhile: the event is retried from a fresh read
        except TaskError as exc:
            return escape(str(exc)), {"status": "processed", "outcome": "refused"}
        if task is None:
            return (f"No task `{escape(args['key'])}` in project `{escape(self.project)}`.",
                    {"status": "processed", "outcome": "not_found"})
        await after_commit(hub, change)
        result = {"status": "processed", "outcome": "changed" if changed else "unchanged",
                  "task": task["key"], "task_id": task["id"]}
        title = fit(task["title"], 200)
        if verb == "new":
            return f"🆕 Created `{task['key']}`: {title}", result
        if verb == "done":
            return (f"✔️ `{task['key']}` is done: {title}" if changed else f"`{task['key']}` was already done."), result
        assignee = escape(str(task["assignee"])) if task["assignee"] else "nobody"
        return (f"👤 `{task['key']}` is assigned to {assignee}: {title}" if changed
                else f"`{task['key']}` was already assigned to {assignee}."), result

    async def _task_button(self, event: InboundEvent, hub: Hub) -> dict[str, Any]:
        payload = orjson.loads(event.form()["payload"])
        verb, task_id = parse_action(payload["actions"][0]["action_id"]) or ("", "")
        user_info = payload.get("user") or {}
        user = str(user_info.get("id") or "")
        by = who(user if _USER_ID.match(user) else None, _plain(user_info.get("username") or user_info.get("name")))
        url = payload.get("response_url")
        principal, why = await self._acting(hub, user, by, "task:write", event.id, f"task/{task_id}")
        if principal is None:
            await self._tell(url, why)
            return {"status": "processed", "outcome": "denied", "task_id": task_id}
        actor = self._actor(principal, event.id)
        values = {"status": "done"} if verb == "done" else {"assignee": principal.name}
        change = None
        done = False
        async with hub.require_store().write() as conn:
            task = await get_task_by_id(conn, task_id)
            elsewhere = task is not None and task["project"] != self.project
            if elsewhere:
                await append(conn, actor, "access.denied", target=f"task/{task_id}", project=self.project,
                             after={"reason": "a button naming a task of another project", "via": self.name},
                             outcome="denied")
            elif task is not None:
                earlier = await _done_by(conn, event, "task.update", self.project)
                change = None if earlier else await update_task(conn, task, values, actor=actor)
                task = earlier or (change.task if change else task)
                done = earlier is not None or change is not None
        if task is None or elsewhere:
            await self._tell(url, f"No such task in project `{escape(self.project)}`. Nothing was changed.")
            return {"status": "processed", "outcome": "refused" if elsewhere else "not_found", "task_id": task_id}
        await after_commit(hub, change)
        if not done:
            state = "done" if verb == "done" else f"assigned to {escape(str(task['assignee']))}"
            await self._tell(url, f"`{task['key']}` was already {state}.")
            return {"status": "processed", "outcome": "unchanged", "task": task["key"]}
        updated = await self._show_click(payload, verb, task, by)
        return {"status": "processed", "outcome": "changed", "task": task["key"], "updated": updated}

    async def _tell(self, url: Any, text: str) -> None:
        if isinstance(url, str) and url:
            await self._respond(url, text)

    async def _show_click(self, payload: dict[str, Any], verb: str, task: dict[str, Any], by: str) -> str | None:
        """Edit the clicked message: ``chat.update`` with a bot token (pasted or the connection's),
        else through the click's ``response_url``. Where it was edited, or ``None``."""
        shown = (payload.get("message") or {}).get("attachments")
        if not isinstance(shown, list) or not shown:
            return None
        title, attachments = clicked_attachments(shown, verb, task, mention_of(by), time.time())
        text = title or task["key"]
        container = payload.get("container") or {}
        channel = container.get("channel_id") or (payload.get("channel") or {}).get("id")
        ts = container.get("message_ts") or (payload.get("message") or {}).get("ts")
        if self.settings.connected and channel and ts:
            body = {"channel": channel, "ts": ts, "text": text, "attachments": attachments}
            outcome, _ = await self._call("chat.update", body, time.monotonic() + self.effective_timeout)
            if outcome.status is OutcomeStatus.RETRY:
                raise RuntimeError(f"chat.update: {outcome.error}")  # retried; the change is not made twice
            return f"{channel}:{ts}" if outcome.ok else None
        url = payload.get("response_url")
        if not isinstance(url, str) or not url:
            return None
        await self._post_response(url, {"replace_original": True, "text": text, "attachments": attachments})
        return "response_url"
