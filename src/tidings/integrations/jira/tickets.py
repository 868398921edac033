"""Jira issues out (the ``tickets:`` block of ``kind: jira``): one issue per alert (:mod:`..tickets`).

- A new alert: ``POST /rest/api/3/issue`` with the project, issue type, summary, an ADF description
  (body, fields and links: :func:`.adf.markdown_to_adf`), the priority mapped by name, the labels and a
  marker label ``tidings-<marker>`` (also the issue property ``tidings-alert``). A create whose answer
  was lost is found by ``POST /rest/api/3/search/jql`` on that label before it is retried.
- A repeat: ``POST /issue/{id}/comment`` (rate-limited by ``comment_every``).
- A resolving message: a comment, then a transition into a status of the Done category (``GET
  /issue/{id}/transitions``, ``to.statusCategory.key == "done"``); a new firing after it: a transition
  out of Done (``reopen: true``) or a new issue.
- Errors, through :meth:`.tracker.JiraTracker.call`: 401/403 disable the integration, 400 is permanent
  with Jira's ``errorMessages``/``errors``, 429/503 are retried after ``Retry-After``, 5xx, timeouts
  and resets retried.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from ...message import Message
from ...sync.model import AuthFailed, NotFound, RateLimited, TrackerError, Unavailable
from ..base import NO_OPTIONS, Attempt, Integration, IntegrationSettings, Notifier, Outcome, RenderOptions
from ..tickets import Alert, Ticket, TicketFailure, TicketGone, alert_text, repeat_text, send_ticket
from .adf import markdown_to_adf

if TYPE_CHECKING:
    from .settings import JiraSettings
    from .ticket_settings import JiraTickets

API = "/rest/api/3"
MARKER_PREFIX = "tidings-"
ALERT_PROPERTY = "tidings-alert"
SUMMARY_MAX = 255


class JiraTicketing(Notifier):
    """The sending side of ``kind: jira`` (mixed into :class:`~tidings.integrations.jira.JiraReceiver`,
    whose :class:`~.tracker.JiraTracker` makes the REST calls)."""

    settings: JiraSettings
    concurrency = 4

    @classmethod
    def can_send(cls, settings: IntegrationSettings) -> bool:
        return getattr(settings, "tickets", None) is not None

    @property
    def tickets(self) -> JiraTickets:
        assert self.settings.tickets is not None
        return self.settings.tickets

    def render(self, message: Message, options: RenderOptions = NO_OPTIONS) -> dict[str, Any]:
        t = self.tickets
        fields: dict[str, Any] = {
            "project": {"key": t.project},
            "issuetype": {"name": t.issue_type},
            "summary": _clip(" ".join(message.title.split()), SUMMARY_MAX),
            "description": markdown_to_adf(alert_text(message, markdown=True)),
            "labels": list(t.labels),
        }
        if name := t.priorities.get(message.priority):
            fields["priority"] = {"name": name}
        return {"fields": fields}

    async def send(self, payload: dict[str, Any], attempt: Attempt) -> Outcome:
        return await send_ticket(self, store=self.context.store, integration=self.name, project=self.project,
                                 payload=payload, attempt=attempt, policy=self.tickets,
                                 timeout=self.effective_timeout)

    async def test(self) -> Outcome:
        """``GET /myself``: the site and the credentials, nothing created."""
        if self.settings.tickets is None:
            return await Integration.test(self)
        try:
            await self._jira("GET", f"{API}/myself")
        except TicketFailure as exc:
            return exc.outcome
        return Outcome.delivered()

    # -- the ledger's backend ------------------------------------------------------------------
    async def find_ticket(self, marker: str) -> Ticket | None:
        jql = f'project = "{self.tickets.project}" AND labels = "{MARKER_PREFIX}{marker}"'
        answer = await self._jira("POST", f"{API}/search/jql", body={"jql": jql, "fields": ["status"], "maxResults": 1})
        issues = answer.get("issues") if isinstance(answer, dict) else None
        return self._ticket_of(issues[0]) if isinstance(issues, list) and issues else None

    async def create_ticket(self, payload: dict[str, Any], alert: Alert, marker: str) -> Ticket:
        fields = dict(payload["fields"])
        fields["labels"] = [*fields.get("labels", []), f"{MARKER_PREFIX}{marker}"]
        body = {"fields": fields, "properties": [{"key": ALERT_PROPERTY, "value": {"marker": marker, "alert": alert.key}}]}
        return self._ticket_of(await self._jira("POST", f"{API}/issue", body=body))

    async def comment_ticket(self, ticket: Ticket, payload: dict[str, Any], alert: Alert, repeats: int) -> None:
        await self._ticket_comment(ticket, repeat_text(alert.message, repeats))

    async def resolve_ticket(self, ticket: Ticket, payload: dict[str, Any], alert: Alert, repeats: int) -> None:
        more = f" (it fired {repeats} more times since the last comment)" if repeats else ""
        await self._ticket_comment(ticket, f"Resolved{more}: {alert.message.title}")
        await self._ticket_move(ticket, done=True)

    async def reopen_ticket(self, ticket: Ticket, payload: dict[str, Any], alert: Alert) -> None:
        await self._ticket_move(ticket, done=False)
        await self._ticket_comment(ticket, f"The alert fired again after it was resolved: {alert.message.title}")

    # -- helpers -------------------------------------------------------------------------------
    async def _ticket_comment(self, ticket: Ticket, text: str) -> None:
        await self._jira("POST", f"{API}/issue/{quote(ticket.remote_id, safe='')}/comment",
                         body={"body": markdown_to_adf(text)})

    async def _ticket_move(self, ticket: Ticket, *, done: bool) -> None:
        """A transition into (``done``) or out of the Done category, the configured status preferred."""
        offered = await self._offered(ticket.remote_id)  # type: ignore[attr-defined]
        fitting = [t for t in offered if (t["category"] == "done") == done]
        preferred = ((self.tickets.done_status if done else self.tickets.reopen_status) or "").lower()
        choice = next((t for t in fitting if t["to"].lower() == preferred), None)
        if choice is None and not done:
            choice = next((t for t in fitting if t["category"] == "todo"), None)
        choice = choice or (fitting[0] if fitting else None)
        if choice is None:
            issue = await self._jira("GET", f"{API}/issue/{quote(ticket.remote_id, safe='')}", params={"fields": "status"})
            status = ((issue or {}).get("fields") or {}).get("status") or {}
            if ((status.get("statusCategory") or {}).get("key") == "done") == done:
                return  # someone moved it there already
            names = ", ".join(f"{t['name']} → {t['to']}" for t in offered) or "none"
            raise TicketFailure(Outcome.permanent(
                f"{ticket.key}: no transition {'into' if done else 'out of'} the Done category (offered: {names})"))
        await self._jira("POST", f"{API}/issue/{quote(ticket.remote_id, safe='')}/transitions",
                         body={"transition": {"id": choice["id"]}})

    def _ticket_of(self, issue: Any) -> Ticket:
        if not isinstance(issue, dict) or not issue.get("id"):
            raise TicketFailure(Outcome.retry("Jira answered without the issue's id"))
        key = str(issue.get("key") or issue["id"])
        site = getattr(self, "_site", None)  # with oauth: true, the connected site (JiraTracker.site)
        base = (self.settings.base_url or (site[1] if site else "")).rstrip("/")
        return Ticket(str(issue["id"]), key, f"{base}/browse/{key}" if base else None)

    async def _jira(self, method: str, path: str, *, body: Any = None, params: dict[str, str] | None = None) -> Any:
        """:meth:`JiraTracker.call`, its errors as the Outcome a send answers."""
        try:
            return await self.call(method, path, body=body, params=params)  # type: ignore[attr-defined]
        except RateLimited as exc:
            raise TicketFailure(Outcome.retry(str(exc), exc.wait)) from None
        except AuthFailed as exc:
            raise TicketFailure(Outcome.permanent(str(exc), disable=True)) from None
        except Unavailable as exc:
            raise TicketFailure(Outcome.retry(str(exc))) from None
        except NotFound as exc:
            if path.startswith(f"{API}/issue/"):
                raise TicketGone(str(exc)) from None  # deleted (or moved out of reach): a firing opens a new one
            raise TicketFailure(Outcome.permanent(str(exc))) from None
        except TrackerError as exc:
            raise TicketFailure(Outcome.permanent(str(exc))) from None


def _clip(text: str, limit: int) -> str:
    text = re.sub(r"[\r\n]+", " ", text)
    return text if len(text) <= limit else text[: limit - 1] + "…"
