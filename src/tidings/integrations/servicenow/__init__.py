"""ServiceNow incidents out (``kind: servicenow``), one per alert (:mod:`..tickets`), through the Table API.

- A new alert: ``POST /api/now/table/incident`` with ``short_description``, ``description``,
  ``impact``/``urgency`` (from the priority), ``correlation_id`` (the ledger's marker) and
  ``correlation_display: tidings``, ``assignment_group``, ``caller_id``, ``category``. The Table API
  can't address a record by correlation id: a create whose answer was lost is found with
  ``GET ?sysparm_query=correlation_id=<marker>^active=true&sysparm_limit=1`` before it is retried.
- A repeat: ``PATCH /api/now/table/incident/{sys_id}`` with ``work_notes`` (rate-limited).
- A resolving message: ``state: 6`` (Resolved), ``close_code``, ``close_notes``; a new firing after
  it: ``state: 2`` (In Progress) with a work note, or a new incident (``reopen: false``).
- Auth: Basic (``user`` + ``password``) or OAuth client credentials (``POST /oauth_token.do``), the
  token cached until shortly before it expires.
- Errors (``{"error": {"message", "detail"}, "status": "failure"}``): 401 disables the integration,
  403 (an ACL) and other 4xx are permanent with ServiceNow's reason, 429 and 5xx are retried
  (``Retry-After`` honoured), as are timeouts and resets.
"""

from __future__ import annotations

import asyncio
import base64
import time
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson

from ...message import Message
from ..base import NO_OPTIONS, Attempt, HttpNotifier, Outcome, OutcomeStatus, RenderOptions
from ..http import classify_status, connection_error, snippet
from ..tickets import Alert, Ticket, TicketFailure, TicketGone, alert_text, repeat_text, send_ticket
from .settings import ServiceNowSettings

__all__ = ["ServiceNowNotifier", "ServiceNowSettings"]

RESOLVED, IN_PROGRESS = "6", "2"
CLOSED = frozenset({"7", "8"})
"""Closed and Canceled: final states, read-only for the itil role."""
SHORT_MAX = 160
TOKEN_MARGIN = 60.0
"""A cached OAuth token is renewed this long before it expires."""


class ServiceNowNotifier(HttpNotifier):
    kind = "servicenow"
    Settings = ServiceNowSettings
    settings: ServiceNowSettings
    concurrency = 4
    live_state = ("_token", "_token_lock")
    _token: tuple[str, float] | None = None
    _token_lock: asyncio.Lock | None = None

    # -- rendering -----------------------------------------------------------------------------
    def render(self, message: Message, options: RenderOptions = NO_OPTIONS) -> dict[str, Any]:
        s = self.settings
        impact, urgency = s.priorities[message.priority]
        fields: dict[str, Any] = {
            "short_description": _clip(message.title, SHORT_MAX),
            "description": alert_text(message),
            "impact": str(impact),
            "urgency": str(urgency),
            "correlation_display": "tidings",
        }
        for name in ("assignment_group", "caller_id", "category"):
            if (value := getattr(s, name)) is not None:
                fields[name] = value
        return {"incident": fields, "close_notes": _clip(f"{message.title}\n\n{message.body}".strip(), 4000)}

    async def send(self, payload: dict[str, Any], attempt: Attempt) -> Outcome:
        return await send_ticket(self, store=self.context.store, integration=self.name, project=self.project,
                                 payload=payload, attempt=attempt, policy=self.settings.policy,
                                 timeout=self.effective_timeout)

    async def test(self) -> Outcome:
        """Read one incident (``sysparm_limit=1``): credentials and the table ACL checked, nothing written."""
        try:
            await self._call("GET", "", params={"sysparm_limit": "1", "sysparm_fields": "sys_id"})
        except TicketFailure as exc:
            return exc.outcome
        return Outcome.delivered()

    # -- the ledger's backend ------------------------------------------------------------------
    async def find_ticket(self, marker: str) -> Ticket | None:
        answer = await self._call("GET", "", params={
            "sysparm_query": f"correlation_id={marker}^active=true", "sysparm_limit": "1",
            "sysparm_fields": "sys_id,number,state",
        })
        rows = answer.get("result") if isinstance(answer, dict) else None
        return self._ticket(rows[0]) if isinstance(rows, list) and rows else None

    async def create_ticket(self, payload: dict[str, Any], alert: Alert, marker: str) -> Ticket:
        answer = await self._call("POST", "", body={**payload["incident"], "correlation_id": marker})
        return self._ticket((answer or {}).get("result"))

    async def comment_ticket(self, ticket: Ticket, payload: dict[str, Any], alert: Alert, repeats: int) -> None:
        await self._call("PATCH", f"/{quote(ticket.remote_id, safe='')}",
                         body={"work_notes": repeat_text(alert.message, repeats)})

    async def resolve_ticket(self, ticket: Ticket, payload: dict[str, Any], alert: Alert, repeats: int) -> None:
        notes = payload["close_notes"]
        if repeats:
            notes = f"{notes}\n\n(The alert fired {repeats} more times since the last work note.)"
        await self._call("PATCH", f"/{quote(ticket.remote_id, safe='')}", body={
            "state": RESOLVED, "close_code": self.settings.close_code, "close_notes": notes,
        })

    async def reopen_ticket(self, ticket: Ticket, payload: dict[str, Any], alert: Alert) -> None:
        current = await self._call("GET", f"/{quote(ticket.remote_id, safe='')}", params={"sysparm_fields": "state"})
        if str(((current or {}).get("result") or {}).get("state")) in CLOSED:
            raise TicketGone(f"{ticket.key} is closed")  # closed or canceled incidents are not reopened: a new one
        await self._call("PATCH", f"/{quote(ticket.remote_id, safe='')}", body={
            "state": IN_PROGRESS, "work_notes": f"The alert fired again after it was resolved: {alert.message.title}",
        })

    def _ticket(self, record: Any) -> Ticket:
        if not isinstance(record, dict) or not record.get("sys_id"):
            raise TicketFailure(Outcome.retry("ServiceNow answered without the incident's sys_id"))
        sys_id = str(record["sys_id"])
        base = self.settings.instance_url.rstrip("/")
        return Ticket(sys_id, str(record.get("number") or sys_id),
                      f"{base}/nav_to.do?uri={self.settings.table}.do?sys_id={sys_id}")

    # -- HTTP ----------------------------------------------------------------------------------
    def session_headers(self) -> dict[str, str]:
        return {**super().session_headers(), "Accept": "application/json"}

    async def _call(self, method: str, path: str, *, params: dict[str, str] | None = None,
                    body: dict[str, Any] | None = None, fresh: bool = False) -> Any:
        s = self.settings
        url = f"{s.instance_url.rstrip('/')}/api/now/table/{s.table}{path}"
        headers = {"Authorization": await self._authorization(fresh)}
        if body is not None:
            headers["Content-Type"] = "application/json"
        session = await self.session()
        try:
            async with session.request(method, url, params=params, headers=headers,
                                       data=orjson.dumps(body) if body is not None else None) as resp:
                raw = await resp.read()
                status, answer_headers = resp.status, resp.headers
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise TicketFailure(connection_error(exc)) from None
        if status == 401 and s.client_id and not fresh:
            return await self._call(method, path, params=params, body=body, fresh=True)  # the token may have expired
        if status == 404 and path:
            raise TicketGone(f"ServiceNow has no {s.table} {path.lstrip('/')} any more")
        if 200 <= status < 300:
            try:
                return orjson.loads(raw) if raw else None
            except orjson.JSONDecodeError:
                raise TicketFailure(Outcome.retry(f"ServiceNow answered {status} with a body that is not JSON")) from None
        raise TicketFailure(_failure(status, answer_headers, raw, f"{method} {s.table}"))

    async def _authorization(self, fresh: bool) -> str:
        s = self.settings
        if not s.client_id:
            assert s.user and s.password
            pair = f"{s.user}:{s.password.get_secret_value()}".encode()
            return "Basic " + base64.b64encode(pair).decode()
        if self._token_lock is None:
            self._token_lock = asyncio.Lock()
        async with self._token_lock:
            if fresh or self._token is None or self._token[1] <= time.monotonic():
                self._token = await self._fetch_token()
            return f"Bearer {self._token[0]}"

    async def _fetch_token(self) -> tuple[str, float]:
        s = self.settings
        assert s.client_id and s.client_secret
        session = await self.session()
        form = {"grant_type": "client_credentials", "client_id": s.client_id,
                "client_secret": s.client_secret.get_secret_value()}
        try:
            async with session.post(f"{s.instance_url.rstrip('/')}/oauth_token.do", data=form) as resp:
                raw = await resp.read()
                status, answer_headers = resp.status, resp.headers
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise TicketFailure(connection_error(exc)) from None
        if status in (400, 401):
            raise TicketFailure(Outcome.permanent(
                f"ServiceNow refused the client credentials ({status}: {snippet(raw, 200)})", disable=True))
        if status != 200:
            raise TicketFailure(classify_status(status, answer_headers, snippet(raw, 200)))
        try:
            answer = orjson.loads(raw)
            token, expires = str(answer["access_token"]), float(answer.get("expires_in") or 1800)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            raise TicketFailure(Outcome.retry("ServiceNow's token answer has no access_token")) from None
        return token, time.monotonic() + max(0.0, expires - TOKEN_MARGIN)


def _failure(status: int, headers: Any, raw: bytes, what: str) -> Outcome:
    """ServiceNow's ``{"error": {"message", "detail"}, "status": "failure"}`` as an Outcome."""
    reason = _reason(raw)
    detail = f"ServiceNow answered {what} with {status}" + (f": {reason}" if reason else "")
    if status == 401:
        return Outcome.permanent(detail + " (check the user and password, or the OAuth client)", disable=True)
    if status == 403:
        return Outcome.permanent(detail + " (the user lacks a role or an ACL refuses: itil, or incident read/write)")
    outcome = classify_status(status, headers)
    if outcome.status is OutcomeStatus.RETRY:
        return Outcome.retry(detail, outcome.retry_after)
    return Outcome.permanent(detail)


def _reason(raw: bytes) -> str:
    try:
        body = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        return snippet(raw, 200) if raw else ""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return snippet(raw, 200)
    parts = [str(error.get(k)) for k in ("message", "detail") if error.get(k)]
    return snippet(" — ".join(parts).encode(), 500)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
