"""Jira Cloud as a sync :class:`~tidings.integrations.base.Tracker` (REST v3, ``email`` + API token,
or an OAuth 2.0 (3LO) connection: ``Authorization: Bearer`` through Atlassian's gateway,
``{api_url}/ex/jira/{cloud id}/rest/api/3/...``, the cloud id and site from the connection).

What Jira does that shapes this module (DESIGN.md "Facts from the platforms"):

- Search is ``POST /rest/api/3/search/jql`` paged with ``nextPageToken`` until ``isLast``; it
  answers only ids unless ``fields`` are named, and carries no ETag, so a sweep is never a 304.
- JQL times have minute precision and are read in the *API user's* time zone: a sweep asks for
  ``updated >= "<its mark floored to the minute, in that zone>"`` (zone from ``/myself``, asked once).
- Status changes only through transitions, whose ids differ per workflow: the transitions from a
  status are looked up once per (issue type, status) and cached; a target is any transition into
  a status of the wanted category (``sync.status_names`` says which one when several do).
- Descriptions are ADF documents (a plain string is refused): see :mod:`.adf`.
- A create carries the issue property ``tidings = {"link": marker}``; a create whose answer was
  lost is found again by :meth:`JiraTracker.find_created`, never made twice.
"""

from __future__ import annotations

import base64
import datetime
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any
from urllib.parse import quote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import aiohttp
import orjson

from ...message import Priority
from ...sync.model import (
    AuthFailed,
    NotFound,
    Page,
    RateLimited,
    Rejected,
    RemoteItem,
    TrackerError,
    Unavailable,
    count_call,
    normalize,
)
from ..base import HttpClient, IntegrationSettings, Tracker, not_connected
from ..http import parse_retry_after
from .adf import adf_to_markdown, markdown_to_adf

if TYPE_CHECKING:
    from .settings import JiraSettings, JiraSync

API = "/rest/api/3"
FIELDS = ["summary", "description", "status", "priority", "assignee", "labels", "duedate", "updated", "issuetype"]
PROPERTY = "tidings"
"""The issue property a create of ours leaves: ``{"link": marker}``."""
PAGE = 100
CATEGORY = {"new": "todo", "indeterminate": "in_progress", "done": "done"}
RATE_LIMIT_DEFAULT = 10.0
"""A 429 without ``Retry-After`` waits this long (Jira asks clients to back off)."""
KIND_CACHE = 100_000

class JiraTracker(HttpClient, Tracker):
    """The REST side of ``kind: jira``; :class:`~tidings.integrations.jira.JiraReceiver` is both."""

    settings: JiraSettings
    _zone: datetime.tzinfo | None = None
    _transitions: dict[tuple[str, str, str], list[dict[str, Any]]] | None = None
    """(project, issue type id, status name) -> the transitions Jira offers from that status."""
    _kinds: dict[str, str] | None = None
    """Issue id -> issue type id, as last read (which workflow an issue follows)."""
    _read_priorities: tuple[JiraSync, dict[str, Priority]] | None = None
    _site: tuple[str, str] | None = None
    """With ``oauth: true``: (the REST base through Atlassian's gateway, the site's URL), from the
    connection row (it doesn't change while connected: a new connection reconfigures, which forgets it)."""

    @property
    def sync(self) -> JiraSync:
        assert self.settings.sync is not None
        return self.settings.sync

    # -- HTTP ----------------------------------------------------------------------------------
    def session_headers(self) -> dict[str, str]:
        return {**super().session_headers(), "Accept": "application/json"}

    def reconfigure(self, settings: IntegrationSettings) -> None:
        """New settings (and session); the account's zone and the connection's site are asked again
        (the site may have changed)."""
        super().reconfigure(settings)
        self._zone = None
        self._site = None

    async def site(self) -> tuple[str, str]:
        """Where REST calls go and issues are browsed: ``base_url``, or with ``oauth: true`` the
        gateway URL of the connected site (``{api_url}/ex/jira/{cloud_id}``) and its site URL."""
        settings = self.settings
        if not settings.oauth:
            assert settings.base_url
            base = settings.base_url.rstrip("/")
            return base, base
        if self._site is None:
            from ...oauth import connections
            from ...oauth.providers import provider

            async with self.context.store.read() as conn:
                row = await connections.get(conn, self.name)
            extra = (row or {}).get("extra") or {}
            cloud_id = extra.get("cloud_id") if isinstance(extra, dict) else None
            if row is None or not isinstance(cloud_id, str) or not cloud_id:
                raise AuthFailed(not_connected(self.name) if row is None else
                                 "the Atlassian connection names no Jira site (cloud_id): connect again")
            api = provider("atlassian", self.context.oauth.get("atlassian")).api_url.rstrip("/")
            site_url = str(extra.get("site_url") or settings.base_url or "").rstrip("/")
            self._site = (f"{api}/ex/jira/{quote(cloud_id, safe='')}", site_url)
        return self._site

    def _credential(self) -> str:
        settings = self.settings
        if settings.oauth:
            if settings.api_token is None:
                raise AuthFailed(not_connected(self.name))
            return f"Bearer {settings.api_token.get_secret_value()}"
        assert settings.email and settings.api_token
        pair = f"{settings.email}:{settings.api_token.get_secret_value()}".encode()
        return f"Basic {base64.b64encode(pair).decode()}"

    async def call(self, method: str, path: str, *, body: Any = None, params: dict[str, str] | None = None) -> Any:
        """One REST request, counted, with the credential of the moment (a rotated token applies at
        once); the parsed answer, or a :mod:`~tidings.sync.model` error."""
        credential = self._credential()
        base, _ = await self.site()
        session = await self.session()
        count_call()
        url = base + path
        data = orjson.dumps(body) if body is not None else None
        headers = {"Authorization": credential}
        if data is not None:
            headers["Content-Type"] = "application/json"
        try:
            async with session.request(method, url, data=data, params=params, headers=headers) as resp:
                raw = await resp.read()
                status, answer_headers = resp.status, resp.headers
        except TimeoutError:
            raise Unavailable(f"Jira did not answer {method} {path} in time") from None
        except aiohttp.ClientError as exc:
            raise Unavailable(f"Jira unreachable ({type(exc).__name__}: {exc})") from None
        if 200 <= status < 300:
            if not raw:
                return None
            try:
                return orjson.loads(raw)
            except orjson.JSONDecodeError:
                raise Unavailable(f"Jira answered {method} {path} with {status} and a body that is not JSON") from None
        raise _error(status, answer_headers, raw, f"{method} {path}", connection=self.settings.oauth)

    # -- reading -------------------------------------------------------------------------------
    async def zone(self) -> datetime.tzinfo:
        """The API user's time zone: JQL dates are read in it."""
        if self._zone is None:
            me = await self.call("GET", f"{API}/myself")
            try:
                self._zone = ZoneInfo(str((me or {}).get("timeZone") or "UTC"))
            except (ZoneInfoNotFoundError, ValueError):
                self._zone = datetime.UTC
        return self._zone

    async def jql_time(self, when: float) -> str:
        """``when`` floored to the minute in the user's zone, as JQL writes it (so ``>=`` overlaps)."""
        moment = datetime.datetime.fromtimestamp(when, await self.zone())
        return moment.strftime('"%Y/%m/%d %H:%M"')

    def _scope(self, *, filtered: bool = True) -> str:
        jql = f'project = "{self.sync.project}"'
        if filtered and self.sync.jql:
            jql += f" AND ({self.sync.jql})"
        return jql

    async def search(self, jql: str) -> AsyncIterator[list[dict[str, Any]]]:
        """The issues ``jql`` finds, a page (of up to 100) at a time, with our fields and property."""
        token: str | None = None
        while True:
            body: dict[str, Any] = {"jql": jql, "fields": FIELDS, "properties": [PROPERTY], "maxResults": PAGE}
            if token:
                body["nextPageToken"] = token
            answer = await self.call("POST", f"{API}/search/jql", body=body)
            issues = answer.get("issues") if isinstance(answer, dict) else None
            yield [i for i in issues or [] if isinstance(i, dict)]
            token = answer.get("nextPageToken") if isinstance(answer, dict) else None
            if not token or answer.get("isLast", True):
                return

    async def changes(self, since: float | None, etag: str | None) -> AsyncIterator[Page]:  # type: ignore[override]
        """Issues updated at or after ``since`` (floored to its minute), oldest first."""
        jql = self._scope()
        if since is not None:
            jql += f" AND updated >= {await self.jql_time(since)}"
        async for issues in self.search(jql + " ORDER BY updated ASC"):
            yield Page([self.item(i) for i in issues])

    async def fetch(self, remote_id: str, etag: str | None = None) -> RemoteItem | None:
        issue = await self.call(
            "GET", f"{API}/issue/{quote(remote_id, safe='')}", params={"fields": ",".join(FIELDS), "properties": PROPERTY}
        )
        return self.item(issue)

    async def find_created(self, marker: str, since: float) -> RemoteItem | None:
        """Issues of the project created since ``since`` (the user's filter left out: our issue
        may not match it), newest first, until one carries ``marker``."""
        jql = f"{self._scope(filtered=False)} AND created >= {await self.jql_time(since)} ORDER BY created DESC"
        async for issues in self.search(jql):
            for issue in issues:
                if _marker(issue) == marker:
                    return self.item(issue)
        return None

    def item(self, issue: Any) -> RemoteItem:
        """A Jira issue (REST v3 shape) in task space."""
        if not isinstance(issue, dict) or not issue.get("id"):
            raise Unavailable("Jira answered an issue without an id")
        fields = issue.get("fields") if isinstance(issue.get("fields"), dict) else {}
        status = fields.get("status") if isinstance(fields.get("status"), dict) else {}
        category = status.get("statusCategory") if isinstance(status.get("statusCategory"), dict) else {}
        issue_id, key = str(issue["id"]), str(issue.get("key") or issue["id"])
        kinds = self._kinds if self._kinds is not None else {}
        if isinstance(fields.get("issuetype"), dict):
            if len(kinds) >= KIND_CACHE:
                kinds.clear()
            kinds[issue_id] = str(fields["issuetype"].get("id") or fields["issuetype"].get("name"))
            self._kinds = kinds
        assignee = fields.get("assignee") if isinstance(fields.get("assignee"), dict) else None
        values = {
            "title": str(fields.get("summary") or ""),
            "description": adf_to_markdown(fields.get("description")) if isinstance(fields.get("description"), dict)
            else str(fields.get("description") or ""),
            "status": CATEGORY.get(str(category.get("key")), "todo"),
            "priority": self._priority(fields.get("priority")).value,
            "assignee": self._person(assignee),
            "labels": [str(v) for v in fields.get("labels") or []],
            "due": fields.get("duedate") or None,
        }
        return RemoteItem(
            id=issue_id,
            key=key,
            url=f"{self._browse()}/browse/{key}",
            updated_at=_epoch(fields.get("updated")),
            fields=normalize(values),
            marker=_marker(issue),
            status_name=str(status.get("name") or "") or None,
        )

    def _browse(self) -> str:
        """The site issues are shown on (the connection's once :meth:`site` read it)."""
        if self.settings.oauth and self._site is not None and self._site[1]:
            return self._site[1]
        return (self.settings.base_url or "").rstrip("/")

    def _priority(self, value: Any) -> Priority:
        from . import DEFAULT_PRIORITY_MAP

        name = str(value.get("name") or "").strip().lower() if isinstance(value, dict) else ""
        if not name:
            return self.settings.default_priority
        if self._read_priorities is None or self._read_priorities[0] is not self.sync:
            self._read_priorities = (self.sync, {n.lower(): p for p, n in reversed(list(self.sync.priorities.items()))})
        written = self._read_priorities[1]
        return (self.settings.priority_map.get(name) or written.get(name) or DEFAULT_PRIORITY_MAP.get(name)
                or self.settings.default_priority)

    def _person(self, user: dict[str, Any] | None) -> str | None:
        account = str(user.get("accountId") or "") if user else ""
        if not account:
            return None
        email = next((e for e, a in self.sync.assignees.items() if a == account), None)
        return email or f"jira:{account}"

    def can_hold(self, name: str, value: Any) -> bool:
        """An assignee needs a Jira account; Jira refuses a label with a space in it (GitHub's
        ``good first issue``): such labels leave the item's labels out of sync until they change."""
        if name == "labels":
            return not any(any(c.isspace() for c in str(x)) for x in value or [])
        if name != "assignee" or not value:
            return True
        return str(value).startswith("jira:") or value in self.sync.assignees

    # -- writing -------------------------------------------------------------------------------
    def jira_fields(self, values: dict[str, Any], *, create: bool = False) -> dict[str, Any]:
        """Task-space ``values`` (but status) as Jira ``fields``. An assignee with no Jira account
        (not in ``sync.assignees``, not ``jira:<id>``) leaves the issue unassigned."""
        out: dict[str, Any] = {}
        for name, value in values.items():
            if name == "title":
                out["summary"] = value
            elif name == "description":
                if value or not create:
                    out["description"] = markdown_to_adf(value) if value else None
            elif name == "priority":
                out["priority"] = {"name": self.sync.priorities[Priority(value)]}
            elif name == "assignee":
                account = self.sync.assignees.get(value) if value else None
                if account is None and isinstance(value, str) and value.startswith("jira:"):
                    account = value.removeprefix("jira:")
                if account or not create:
                    out["assignee"] = {"accountId": account} if account else None
            elif name == "labels":
                out["labels"] = list(value or [])
            elif name == "due":
                if value or not create:
                    out["duedate"] = value or None
        return out

    async def create(self, fields: dict[str, Any], marker: str) -> RemoteItem:
        sync = self.sync
        body = {
            "fields": {"project": {"key": sync.project}, "issuetype": {"name": sync.issue_type},
                       **self.jira_fields({k: v for k, v in fields.items() if k != "status"}, create=True)},
            "properties": [{"key": PROPERTY, "value": {"link": marker}}],
        }
        created = await self.call("POST", f"{API}/issue", body=body)
        if not isinstance(created, dict) or not created.get("id"):
            raise Unavailable("Jira answered the create without the new issue's id")
        item = await self.fetch(str(created["id"]))
        assert item is not None
        wanted = fields.get("status")
        if wanted and wanted != item.fields.get("status"):
            await self.transition(item, wanted)
            item = await self.fetch(item.id)
            assert item is not None
        return item

    async def update(self, remote_id: str, changes: dict[str, Any], current: RemoteItem) -> None:
        values = self.jira_fields({k: v for k, v in changes.items() if k != "status"})
        if values:
            await self.call("PUT", f"{API}/issue/{quote(remote_id, safe='')}", body={"fields": values})
        wanted = changes.get("status")
        if wanted and wanted != current.fields.get("status"):
            await self.transition(current, wanted)

    async def transition(self, item: RemoteItem, category: str) -> None:
        """Move ``item`` into a status of ``category`` with one transition Jira offers from its
        status. None offered (a workflow that needs steps between): :class:`Rejected` saying so."""
        kind = (self._kinds or {}).get(item.id)
        key = (self.sync.project, kind, item.status_name or "") if kind else None
        cache = self._transitions if self._transitions is not None else {}
        self._transitions = cache
        cached = cache.get(key) if key else None
        offered = cached if cached is not None else await self._offered(item.id)
        if key and cached is None:
            cache[key] = offered
        choice = self._choose(offered, category)
        if choice is None:
            names = ", ".join(f"{t['name']} → {t['to']} ({t['category']})" for t in offered) or "none"
            raise Rejected(
                f"{item.key}: no transition from {item.status_name or 'its status'!r} to a status of category "
                f"{category} in its workflow (offered: {names}); move it in Jira or add that transition"
            )
        path = f"{API}/issue/{quote(item.id, safe='')}/transitions"
        try:
            await self.call("POST", path, body={"transition": {"id": choice["id"]}})
        except Rejected:
            if cached is None or key is None:
                raise
            del cache[key]  # the workflow changed since it was cached: ask again, once
            await self.transition(item, category)

    async def _offered(self, remote_id: str) -> list[dict[str, Any]]:
        answer = await self.call("GET", f"{API}/issue/{quote(remote_id, safe='')}/transitions")
        offered = []
        for t in (answer or {}).get("transitions") or []:
            to = t.get("to") if isinstance(t, dict) and isinstance(t.get("to"), dict) else None
            if to is None or t.get("isAvailable") is False:
                continue
            category = (to.get("statusCategory") or {}).get("key") if isinstance(to.get("statusCategory"), dict) else None
            offered.append({"id": str(t.get("id")), "name": str(t.get("name") or ""), "to": str(to.get("name") or ""),
                            "category": CATEGORY.get(str(category), "")})
        return offered

    def _choose(self, offered: list[dict[str, Any]], category: str) -> dict[str, Any] | None:
        fitting = [t for t in offered if t["category"] == category]
        preferred = (self.sync.status_names.get(category) or "").lower()  # type: ignore[call-overload]
        return next((t for t in fitting if t["to"].lower() == preferred), fitting[0] if fitting else None)


def _marker(issue: dict[str, Any]) -> str | None:
    properties = issue.get("properties")
    value = properties.get(PROPERTY) if isinstance(properties, dict) else None
    link = value.get("link") if isinstance(value, dict) else None
    return link if isinstance(link, str) else None


def _epoch(value: Any) -> float:
    """Jira's ``2024-11-05T15:12:44.291+0100`` as epoch seconds (0 when missing or unreadable)."""
    try:
        moment = datetime.datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return 0.0
    return moment.timestamp() if moment.tzinfo else moment.replace(tzinfo=datetime.UTC).timestamp()


def _error(status: int, headers: Any, raw: bytes, what: str, *, connection: bool = False) -> TrackerError:
    """Jira's answer as the error the engine acts on, with Jira's own reasons (Atlassian's gateway
    answers ``{"code": 401, "message": "Unauthorized"}``)."""
    reason = _reasons(raw)
    detail = f"Jira answered {what} with {status}" + (f": {reason}" if reason else "")
    wait = parse_retry_after(headers.get("Retry-After"))
    if status == 429 or (status in (403, 503) and wait is not None):
        return RateLimited(detail, wait if wait is not None else RATE_LIMIT_DEFAULT)
    if status in (401, 403):
        if connection:
            return AuthFailed(detail + " (the connection's token was refused: it is refreshed before it expires;"
                              " if this lasts, connect again, and check the account's access to the project)")
        return AuthFailed(detail + " (check email and api_token, and the account's access to the project)")
    if status in (404, 410):
        return NotFound(detail)
    if status >= 500 or status == 408:
        return Unavailable(detail)
    return Rejected(detail)


def _reasons(raw: bytes) -> str:
    """``errorMessages`` and ``errors`` of a Jira error body, joined; a clipped snippet otherwise."""
    try:
        body = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        body = None
    if not isinstance(body, dict):
        from ..http import snippet

        return snippet(raw, 200) if raw else ""
    parts = [str(m) for m in body.get("errorMessages") or [] if m]
    if not parts and isinstance(body.get("message"), str):
        parts.append(body["message"])
    errors = body.get("errors")
    if isinstance(errors, dict):
        parts.extend(f"{field}: {message}" for field, message in errors.items())
    return "; ".join(parts)[:1000]
