"""Pushing task due dates to calendars: what Google Calendar and Outlook integrations share.

A calendar integration is a notifier: a route ``match: {source: tasks}`` sends it every task message,
and the outbox makes the push durable, retried, rate-limited and ordered per task (one thread per
task). :meth:`CalendarPush.render` keeps only which task; :meth:`CalendarPush.send` reads the task as
it is *now*, so a late retry never writes an older state, and then creates or updates its event, or
deletes it. The task's event follows the ICS feed's rules (``calendars/ics.py``): all day on the due
date, summary ``T-12 title``; a task that is done (cancelled ones too), deleted, without a due date,
or outside the integration's filter has no event.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Literal

import aiohttp
import orjson
from pydantic import Field, SecretStr, field_validator, model_validator

from ..integrations.base import (
    NO_OPTIONS,
    Attempt,
    Calendar,
    CalendarEvent,
    CalendarFailure,
    ConnectableSettings,
    HttpNotifier,
    Outcome,
    RenderOptions,
    not_connected_outcome,
)
from ..integrations.http import connection_error, parse_retry_after, snippet
from ..message import Message
from ..security.redact import clip
from ..sync.tasks import get_task_by_id, links_of
from . import state

REMINDER_MAX = 40320
"""Four weeks in minutes: the longest reminder Google Calendar takes."""
DESCRIPTION_MAX = 8000


class CalendarSettings(ConnectableSettings):
    """What every calendar kind takes besides where its calendar is."""

    outbound = ("api_url",)
    token: SecretStr | None = Field(
        None, description="a bearer token (${vault:NAME}); with `oauth: true` the connection's token fills it")
    tasks: Literal["all", "assigned"] = Field(
        "all", description="all: every task of the project with a due date; assigned: those assigned to `assignee`"
                           " (a personal calendar)")
    assignee: str | None = Field(None, description="with tasks: assigned, the person (email or <kind>:<login>)")
    labels: list[str] = Field(default_factory=list, description="only tasks carrying one of these labels (empty: any)")
    reminders: list[int] | None = Field(
        None, description="minutes before the day starts; [] for none; leave out for the calendar's defaults")

    @field_validator("reminders")
    @classmethod
    def _reminders(cls, v: list[int] | None) -> list[int] | None:
        if v is not None:
            if len(v) > 5:
                raise ValueError("at most 5 reminders")
            if any(m < 0 or m > REMINDER_MAX for m in v):
                raise ValueError(f"reminders are minutes from 0 to {REMINDER_MAX} (four weeks)")
        return v

    @model_validator(mode="after")
    def _who_and_how(self) -> CalendarSettings:
        if self.tasks == "assigned" and not self.assignee:
            raise ValueError("tasks: assigned needs assignee (whose tasks)")
        if self.tasks == "all" and self.assignee:
            raise ValueError("assignee is only for tasks: assigned")
        if not self.oauth and self.token is None:
            raise ValueError("set token (a bearer token, best as ${vault:NAME}) or oauth: true")
        return self


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    headers: Any
    data: Any
    raw: bytes


def wanted(task: dict[str, Any] | None, settings: CalendarSettings) -> bool:
    """Whether ``task`` has an event on a calendar so configured."""
    if task is None or not task.get("due") or task["category"] == "done":
        return False
    if settings.tasks == "assigned" and (task.get("assignee") or "").lower() != (settings.assignee or "").lower():
        return False
    return not settings.labels or bool(set(settings.labels) & set(task.get("labels") or ()))


def event_of(task: dict[str, Any], links: list[dict[str, Any]], settings: CalendarSettings) -> CalendarEvent:
    """The event of a wanted task: the ICS feed's summary, the tracker links then the description."""
    urls = [link["remote_url"] for link in links
            if str(link.get("remote_url") or "").startswith(("http://", "https://"))
            and link.get("state") in ("linked", "creating")]
    text = "\n".join(urls)
    if task.get("description"):
        text = f"{text}\n\n{task['description']}" if text else task["description"]
    return CalendarEvent(
        task_id=task["id"], project=task["project"], summary=f"T-{task['number']} {task['title']}"[:1000],
        description=text[:DESCRIPTION_MAX], date=task["due"],
        reminders=tuple(settings.reminders) if settings.reminders is not None else None,
    )


def digest(event: CalendarEvent) -> str:
    return hashlib.sha256(orjson.dumps(asdict(event), option=orjson.OPT_SORT_KEYS)).hexdigest()


def next_day(date: str) -> str:
    return (dt.date.fromisoformat(date) + dt.timedelta(days=1)).isoformat()


class CalendarPush(HttpNotifier, Calendar):
    """A calendar reached over HTTP with a bearer token; subclasses speak the provider's API."""

    settings: CalendarSettings
    Settings: ClassVar[type[CalendarSettings]] = CalendarSettings

    # -- what the outbox carries -------------------------------------------------------------
    def render(self, message: Message, options: RenderOptions = NO_OPTIONS) -> dict[str, Any]:
        """Which task, and what happened to it: the state pushed is read at send time."""
        labels = message.labels
        if labels.get("source") != "tasks" or not labels.get("task_id"):
            return {"task_id": None, "event_type": labels.get("event_type")}
        return {"task_id": str(labels["task_id"]), "event_type": labels.get("event_type")}

    async def send(self, payload: dict[str, Any], attempt: Attempt) -> Outcome:
        task_id = payload.get("task_id")
        if not task_id:
            return Outcome.permanent("not a task message: a calendar takes the messages of `source: tasks`")
        if (missing := self.not_connected()) is not None:
            return missing
        try:
            return await self.push(task_id)
        except CalendarFailure as failure:
            return failure.outcome
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return connection_error(exc)

    async def push(self, task_id: str) -> Outcome:
        """Make the calendar show the task as it is now."""
        store = self.context.store
        async with store.read() as conn:
            task = await get_task_by_id(conn, task_id)
            links = await links_of(conn, task_id) if task is not None else []
            row = await state.get(conn, self.name, task_id)
        if task is not None and task["project"] != self.project:
            return Outcome.permanent(f"task {task['key']} is of project {task['project']}, not {self.project}")
        if not wanted(task, self.settings):
            if row is None or row["state"] == "deleted":
                return Outcome.delivered()
            await self.delete(state.ref(row))
            async with store.write() as conn:
                await state.deleted(conn, self.name, task_id)
            return Outcome.delivered(row["remote_id"])
        assert task is not None
        event = event_of(task, links, self.settings)
        written = digest(event)
        if row is not None and row["state"] == "present" and row["written_hash"] == written:
            return Outcome.delivered(row["remote_id"])
        if row is None or row["state"] in ("deleted", "missing"):
            async with store.write() as conn:  # before the create: a lost answer finds it next time
                row = await state.creating(conn, self.name, task, self.first_id(task_id))
        ref = await self.upsert(event, state.ref(row))
        async with store.write() as conn:
            await state.present(conn, self.name, task_id, ref, written)
        return Outcome.delivered(ref.event_id)

    def first_id(self, task_id: str) -> str | None:
        """The event id known before a create (Google's: ours); None when the calendar gives it."""
        return None

    # -- HTTP ----------------------------------------------------------------------------
    def not_connected(self) -> Outcome | None:
        if self.settings.token is not None:
            return None
        return not_connected_outcome(self.name)

    async def call(self, method: str, url: str, *, json: Any = None, params: dict[str, str] | None = None,
                   headers: dict[str, str] | None = None) -> Answer:
        token = self.settings.token.get_secret_value() if self.settings.token else ""
        session = self._session or await self.session()
        sent = {"Authorization": f"Bearer {token}", **(headers or {})}
        async with session.request(method, url, json=json, params=params, headers=sent, allow_redirects=False) as resp:
            raw = await resp.read()
            try:
                data = orjson.loads(raw) if raw else None
            except orjson.JSONDecodeError:
                data = None
            return Answer(resp.status, resp.headers, data, raw)

    def failure(self, answer: Answer, what: str) -> CalendarFailure:
        """A failed answer classified: 401 disables (connect again), 429/5xx and the provider's
        rate-limit refusals are retried (with ``Retry-After``), anything else is permanent."""
        detail = f"{what}: HTTP {answer.status}"
        text = snippet(answer.raw)
        if text:
            detail += f": {text}"
        if answer.status == 401:
            how = (f"connect again: open /oauth/{self.name}/start or run `tidings connect {self.name}`"
                   if self.settings.oauth else "check the integration's token")
            if self.settings.oauth:  # a person connects again: this push waits, held, nothing lost
                return CalendarFailure(Outcome.held(f"oauth connection needs re-auth ({clip(detail, 300)}); {how}"))
            return CalendarFailure(Outcome.permanent(f"the token was refused ({clip(detail, 300)}); {how}", disable=True))
        if answer.status in (408, 425, 429) or answer.status >= 500 or self.rate_limited(answer):
            return CalendarFailure(Outcome.retry(detail, parse_retry_after(answer.headers.get("Retry-After"))))
        return CalendarFailure(Outcome.permanent(detail))

    def rate_limited(self, answer: Answer) -> bool:
        """Whether a refusal (a 403) is a rate limit rather than a missing permission."""
        return False

    async def test(self) -> Outcome:
        """Read the calendar (nothing is written)."""
        if (missing := self.not_connected()) is not None:
            return missing
        try:
            answer = await self.call("GET", self.probe_url())
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return connection_error(exc)
        if answer.status == 200:
            return Outcome.delivered()
        return self.failure(answer, "reading the calendar").outcome

    def probe_url(self) -> str:
        """What :meth:`test` reads: a URL the integration's scopes allow reading."""
        raise NotImplementedError
