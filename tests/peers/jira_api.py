"""A Jira Cloud stand-in on 127.0.0.1: projects' issues in memory, answered as REST v3 documents.

What it does as Jira does (DESIGN.md "Facts from the platforms"; shapes from Atlassian's
swagger-v3 and the webhook documentation):

- Basic auth (``email:api_token``), else 401. Also served as Atlassian's API gateway serves a site to
  an OAuth 2.0 (3LO) app: ``/ex/jira/{cloud_id}/rest/api/3/...`` with ``Authorization: Bearer <token>``
  (the token a test sets: ``bearer``), else 401 ``{"code": 401, "message": "Unauthorized"}``; another
  cloud id is a 404. ``GET /rest/api/3/myself`` with the user's ``timeZone``:
  JQL dates are read in it.
- ``POST /rest/api/3/search/jql`` ``{jql, fields, maxResults, nextPageToken, properties}`` ->
  ``{issues, nextPageToken?, isLast}`` (no ``total``; no ``nextPageToken`` on the last page); without
  ``fields`` only ``id``/``key``/``self``; unknown body keys (``startAt``) are "Invalid request payload";
  an unbounded query is refused. JQL: see :mod:`peers.jira_jql`. ``GET|POST /rest/api/3/search``: 410.
- ``GET|PUT|DELETE /rest/api/3/issue/{idOrKey}`` (``fields=``, ``properties=``; PUT 204, ``status`` refused),
  ``POST /rest/api/3/issue`` (201 ``{id, key, self}``; the description must be ADF), 404 once deleted.
- Transitions per workflow (:data:`WORKFLOWS`): ``simple`` (To Do / In Progress / Done, each reachable
  from the others) and ``review`` (Backlog -> Selected for Development | In Review; Selected ->
  In Review | Backlog; In Review -> Done | Selected; Done -> Backlog). A transition not offered from
  the current status is a 400.
- Issue properties, ``GET /rest/api/3/priority``.
- Webhooks for every change (``jira:issue_created|updated|deleted`` with ``issue``, ``changelog.items``,
  ``user``, ``timestamp``), signed ``X-Hub-Signature: sha256=<hex>`` with ``X-Atlassian-Webhook-Identifier``.

Test controls: ``bearer`` (the OAuth access token the gateway accepts; None: none), ``cloud_id``,
``gateway_auth`` (the Authorization headers seen through the gateway); ``fail(status, retry_after=..., times=..., path=...)`` answers the next matching
requests with that status; ``drop_next_create()`` creates the issue and drops the connection
before answering; ``calls`` counts requests per route; ``seed()`` adds issues without HTTP;
``edit()``, ``move()``, ``delete()`` are a person's changes in Jira (with their webhooks).
"""

from __future__ import annotations

import asyncio
import base64
import copy
import datetime
import hashlib
import hmac
import itertools
import json
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import orjson
from aiohttp import web
from peers.jira_data import (
    API,
    CATEGORIES,
    NOT_ADF,
    PRIORITIES,
    REMOVED,
    SEARCH_KEYS,
    SETTABLE,
    STATUSES,
    WORKFLOWS,
    change_item,
    is_adf,
    is_date,
    text_of,
)
from peers.jira_jql import JqlError, parse
from peers.jira_tickets import ticket_route


@dataclass
class Issue:
    id: str
    key: str
    project: str
    type: str
    summary: str
    status: str
    created: float
    updated: float
    description: dict[str, Any] | None = None
    priority: str | None = "Medium"
    assignee: str | None = None
    labels: list[str] = field(default_factory=list)
    duedate: str | None = None
    properties: dict[str, Any] = field(default_factory=dict)


@dataclass
class Fault:
    status: int
    times: int
    retry_after: str | None
    path: str | None
    method: str | None
    body: Any


class JiraApiError(Exception):
    def __init__(self, status: int, messages: list[str] | None = None, errors: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status, self.messages, self.errors = status, messages or [], errors or {}


Target = str | Callable[[bytes, dict[str, str]], Awaitable[Any]]


class JiraCloud:
    """One Jira Cloud site. ``await start()`` / ``await stop()``; ``url`` is its base URL."""

    def __init__(self, *, email: str = "sync-bot@example.com", api_token: str = "ATATT3xFfGF0-test-token",
                 time_zone: str = "UTC") -> None:
        self.email, self.api_token = email, api_token
        self.cloud_id = "11223344-a1b2-3b33-c444-def123456789"
        self.bearer: str | None = None
        self.accept: Callable[[str], bool] | None = None
        """Also take the bearer tokens this says are valid (an authorization server's ``valid``)."""
        """The access token the gateway (``/ex/jira/{cloud_id}``) accepts; another one is a 401."""
        self.gateway_auth: list[str] = []
        self.account_id = "712020:5b10ac8d-82e0-5b22-cc7d-4ef5sync0001"
        self.time_zone = time_zone
        self.users: dict[str, str] = {self.account_id: "tidings sync"}
        self.projects: dict[str, dict[str, Any]] = {}
        self.issues: dict[str, Issue] = {}
        self.keys: dict[str, str] = {}
        self.deleted: set[str] = set()
        self.calls: Counter[str] = Counter()
        self.requests: list[tuple[str, str, Any]] = []
        self.faults: list[Fault] = []
        self.drop_creates = 0
        self.hooks: list[tuple[Target, str | None, str | None]] = []
        self.sent: list[dict[str, Any]] = []
        self.clock: Callable[[], float] = time.time
        self._ids = itertools.count(10000)
        self._pages: dict[str, list[str]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._runner: web.AppRunner | None = None
        self._client: aiohttp.ClientSession | None = None
        self.url = ""

    # -- life ----------------------------------------------------------------------------------
    async def start(self) -> JiraCloud:
        app = web.Application(client_max_size=10 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        await self.delivered()
        if self._client is not None:
            await self._client.close()
        if self._runner is not None:
            await self._runner.cleanup()

    # -- set-up and people's changes -----------------------------------------------------------
    def add_project(self, key: str, name: str = "", workflows: dict[str, str] | None = None) -> None:
        """A project; ``workflows``: issue type -> ``simple`` | ``review`` (default Task and Story
        simple, Bug review)."""
        self.projects[key] = {"id": str(10000 + len(self.projects)), "key": key, "name": name or key, "next": 1,
                              "workflows": workflows or {"Task": "simple", "Story": "simple", "Bug": "review"}}

    def add_user(self, account_id: str, name: str) -> None:
        self.users[account_id] = name

    def hook(self, target: Target, secret: str | None = None, jql: str | None = None) -> None:
        """Post every change to ``target`` (a URL, or ``async f(body, headers)``), signed with ``secret``."""
        self.hooks.append((target, secret, jql))

    def seed(self, project: str, n: int, *, type: str = "Task", start: float | None = None, step: float = 0.001,
             **fields: Any) -> list[Issue]:
        """``n`` issues at once, no HTTP and no webhooks (benchmarks): created and updated from ``start``
        on, ``step`` seconds apart."""
        now = self.clock() if start is None else start
        made = []
        for i in range(n):
            issue = self._new(project, type, f"Seeded issue {i + 1}", now + i * step)
            for name, value in fields.items():
                setattr(issue, name, copy.deepcopy(value))
            made.append(issue)
        return made

    def issue(self, id_or_key: str) -> Issue:
        issue_id = self.keys.get(id_or_key, id_or_key)
        if issue_id not in self.issues:
            raise KeyError(id_or_key)
        return self.issues[issue_id]

    def edit(self, key: str, *, by: str | None = None, **changes: Any) -> None:
        """A person's edit in Jira (field names as Jira's: summary, description as text or ADF,
        priority name, assignee account id, labels, duedate), with its webhook."""
        issue = self.issue(key)
        if isinstance(changes.get("description"), str):
            changes["description"] = {"type": "doc", "version": 1, "content": [
                {"type": "paragraph", "content": [{"type": "text", "text": changes["description"]}]}]}
        if isinstance(changes.get("priority"), str):
            changes["priority"] = {"name": changes["priority"]}
        if isinstance(changes.get("assignee"), str):
            changes["assignee"] = {"accountId": changes["assignee"]}
        self._check(changes, creating=False)
        self._apply(issue, changes, by or self.account_id)

    def move(self, key: str, status: str, *, by: str | None = None) -> None:
        """A person's transition into ``status`` (it must be offered from the current status)."""
        issue = self.issue(key)
        choice = next((t for t in self.transitions(issue) if t[3] == status), None)
        if choice is None:
            raise ValueError(f"no transition from {issue.status} to {status}")
        self._transition(issue, choice, by or self.account_id)

    def delete(self, key: str) -> None:
        issue = self.issue(key)
        del self.issues[issue.id]
        self.deleted.add(issue.id)
        self._notify("jira:issue_deleted", "issue_deleted", issue, None, self.account_id)

    def fail(self, status: int, *, retry_after: float | str | None = None, times: int = 1, path: str | None = None,
             method: str | None = None, body: Any = None) -> None:
        """The next ``times`` requests (to paths containing ``path``) are answered ``status``."""
        self.faults.append(Fault(status, times, None if retry_after is None else str(retry_after), path, method, body))

    def drop_next_create(self) -> None:
        self.drop_creates += 1

    async def delivered(self) -> None:
        """Wait for the webhooks posted so far."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # -- HTTP ----------------------------------------------------------------------------------
    @property
    def gateway_url(self) -> str:
        """What a connection's ``{api_url}/ex/jira/{cloud_id}`` is for this site."""
        return f"{self.url}/ex/jira/{self.cloud_id}"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path, gateway = request.path, request.path.startswith("/ex/jira/")
        if gateway:
            cloud_id, _, rest = path.removeprefix("/ex/jira/").partition("/")
            if cloud_id != self.cloud_id:
                return web.json_response({"code": 404, "message": "Not Found"}, status=404)
            path = "/" + rest
        route = self._route(request.method, path)
        self.calls[route] += 1
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            return _error(400, ["Unexpected character in the JSON body."])
        self.requests.append((request.method, path, body))
        if gateway:
            header = request.headers.get("Authorization", "")
            self.gateway_auth.append(header)
            issued = self.accept is not None and header.startswith("Bearer ") and self.accept(header[7:])
            if not issued and (self.bearer is None
                               or not hmac.compare_digest(header.encode(), f"Bearer {self.bearer}".encode())):
                return web.json_response({"code": 401, "message": "Unauthorized"}, status=401)
        elif not self._authenticated(request):
            return web.Response(status=401, text="Client must be authenticated to access this resource.",
                                headers={"WWW-Authenticate": 'Basic realm="protected-area"'})
        for fault in self.faults:
            if fault.times > 0 and (fault.path is None or fault.path in path) and fault.method in (None, request.method):
                fault.times -= 1
                headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
                payload = fault.body if fault.body is not None else {"errorMessages": [f"HTTP {fault.status}"], "errors": {}}
                return web.json_response(payload, status=fault.status, headers=headers)
        try:
            answer = await self._answer(request, path, body)
        except JiraApiError as exc:
            return _error(exc.status, exc.messages, exc.errors)
        if isinstance(answer, web.StreamResponse):
            return answer
        return web.json_response(answer, dumps=_dumps)

    def _route(self, method: str, path: str) -> str:
        parts = path.split("/")
        if len(parts) > 5 and parts[4] == "issue":
            parts[5] = "{id}"
        if len(parts) > 7 and parts[6] == "properties":
            parts[7] = "{key}"
        return f"{method} {'/'.join(parts)}"

    def _authenticated(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return False
        try:
            given = base64.b64decode(header[6:], validate=True).decode()
        except ValueError:
            return False
        return hmac.compare_digest(given.encode(), f"{self.email}:{self.api_token}".encode())

    async def _answer(self, request: web.Request, path: str, body: Any) -> Any:
        method = request.method
        if path in (f"{API}/search", "/rest/api/2/search"):
            raise JiraApiError(410, [REMOVED])
        if path == f"{API}/search/jql" and method == "POST":
            return self._search(body)
        if path == f"{API}/myself" and method == "GET":
            return {**self._user(self.account_id), "emailAddress": self.email}
        if path == f"{API}/priority" and method == "GET":
            return [self._priority(name) for _, name in PRIORITIES]
        if path == f"{API}/issue" and method == "POST":
            return await self._create(request, body)
        parts = path.removeprefix(f"{API}/issue/").split("/")
        if not path.startswith(f"{API}/issue/") or not parts[0]:
            raise JiraApiError(404, ["null for uri: " + path])
        issue = self._find(parts[0])
        query = request.query
        if len(parts) == 1 and method == "GET":
            fields = query.get("fields", "*all").split(",")
            props = [p for p in query.get("properties", "").split(",") if p]
            return self.render(issue, fields, props)
        if len(parts) == 1 and method == "PUT":
            self._edit(issue, body)
            return web.Response(status=204)
        if len(parts) == 1 and method == "DELETE":
            self.delete(issue.key)
            return web.Response(status=204)
        if parts[1:] == ["transitions"] and method == "GET":
            return {"expand": "transitions", "transitions": [self._transition_json(t) for t in self.transitions(issue)]}
        if parts[1:] == ["transitions"] and method == "POST":
            wanted = str(((body or {}).get("transition") or {}).get("id") or "")
            choice = next((t for t in self.transitions(issue) if t[0] == wanted), None)
            if choice is None:
                raise JiraApiError(400, [f"Transition id '{wanted}' is not valid for this issue."])
            self._transition(issue, choice, self.account_id)
            return web.Response(status=204)
        if len(parts) == 3 and parts[1] == "properties":
            if method == "PUT":
                created = parts[2] not in issue.properties
                issue.properties[parts[2]] = body
                return web.Response(status=201 if created else 200)
            if method == "GET":
                if parts[2] not in issue.properties:
                    raise JiraApiError(404, [f"The property with key '{parts[2]}' does not exist."])
                return {"key": parts[2], "value": issue.properties[parts[2]]}
        if (extra := ticket_route(self, issue, parts, method, body)) is not None:
            return extra
        raise JiraApiError(405 if len(parts) == 1 else 404, ["Method not allowed" if len(parts) == 1 else "Not found"])

    # -- search --------------------------------------------------------------------------------
    def _search(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict) or set(body) - SEARCH_KEYS:
            raise JiraApiError(400, ["Invalid request payload. Refer to the REST API documentation and try again."])
        jql = str(body.get("jql") or "")
        token = body.get("nextPageToken")
        if token:
            ids = self._pages.get(token)
            if ids is None:
                raise JiraApiError(400, ["The provided next page token is invalid or expired."])
        else:
            try:
                query = parse(jql, self._value, self.zone)
            except JqlError as exc:
                raise JiraApiError(400, [str(exc)]) from None
            if not query.bounded:
                raise JiraApiError(400, ["Unbounded JQL queries are not allowed here. Please add a search restriction to your query."])
            found = [i for i in self.issues.values() if query.where(i)]
            for name, descending in reversed(query.order):
                found.sort(key=lambda i, n=name: (self._value(i, n) is None, self._value(i, n) or 0), reverse=descending)
            ids = [i.id for i in found]
        fields = [str(f) for f in body.get("fields") or []]
        limit = max(1, min(int(body.get("maxResults") or 50), 100 if fields else 5000))
        page, rest = ids[:limit], ids[limit:]
        answer: dict[str, Any] = {"issues": [self.render(self.issues[i], fields, list(body.get("properties") or []))
                                             for i in page if i in self.issues]}
        if rest:
            next_token = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
            self._pages[next_token] = rest
            answer["nextPageToken"] = next_token
        answer["isLast"] = not rest
        return answer

    def _value(self, issue: Issue, name: str) -> Any:
        if name == "statuscategory":
            key = STATUSES[issue.status][1]
            return [key, CATEGORIES[key][1]]
        if name == "issuetype":
            return issue.type
        if name == "key":
            return issue.key
        if name == "id":
            return int(issue.id)
        return getattr(issue, name)

    @property
    def zone(self) -> datetime.tzinfo:
        return ZoneInfo(self.time_zone)

    # -- issues as JSON ------------------------------------------------------------------------
    def render(self, issue: Issue, fields: list[str], properties: list[str]) -> dict[str, Any]:
        out: dict[str, Any] = {"expand": "renderedFields,names,schema,operations,editmeta,changelog", "id": issue.id,
                               "self": f"{self.url}{API}/issue/{issue.id}", "key": issue.key}
        if fields:
            everything = self._fields(issue)
            wanted = set(everything) if {"*all", "*navigable"} & set(fields) else set(fields)
            wanted -= {f[1:] for f in fields if f.startswith("-")}
            out["fields"] = {k: v for k, v in everything.items() if k in wanted}
        if properties:
            out["properties"] = {k: issue.properties[k] for k in properties if k in issue.properties}
        return out

    def _fields(self, issue: Issue) -> dict[str, Any]:
        project = self.projects[issue.project]
        status_id, category = STATUSES[issue.status]
        return {
            "summary": issue.summary,
            "description": issue.description,
            "status": {"self": f"{self.url}{API}/status/{status_id}", "description": "", "name": issue.status,
                       "id": status_id, "statusCategory": self._category(category)},
            "priority": self._priority(issue.priority) if issue.priority else None,
            "assignee": self._user(issue.assignee) if issue.assignee else None,
            "reporter": self._user(self.account_id),
            "labels": list(issue.labels),
            "duedate": issue.duedate,
            "created": self._time(issue.created),
            "updated": self._time(issue.updated),
            "resolution": {"id": "10000", "name": "Done"} if category == "done" else None,
            "issuetype": {"self": f"{self.url}{API}/issuetype/{issue.type}", "id": str(10001 + sorted(project["workflows"]).index(issue.type)),
                          "name": issue.type, "subtask": False, "hierarchyLevel": 0},
            "project": {"self": f"{self.url}{API}/project/{project['id']}", "id": project["id"], "key": project["key"],
                        "name": project["name"], "projectTypeKey": "software", "simplified": False},
        }

    def _time(self, when: float) -> str:
        moment = datetime.datetime.fromtimestamp(when, self.zone)
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}" + moment.strftime("%z")

    def _category(self, key: str) -> dict[str, Any]:
        cid, name, color = CATEGORIES[key]
        return {"self": f"{self.url}{API}/statuscategory/{cid}", "id": int(cid), "key": key, "colorName": color, "name": name}

    def _priority(self, name: str) -> dict[str, Any]:
        pid = next(i for i, n in PRIORITIES if n == name)
        return {"self": f"{self.url}{API}/priority/{pid}", "iconUrl": f"{self.url}/images/icons/priorities/{name.lower()}.svg",
                "name": name, "id": pid}

    def _user(self, account_id: str) -> dict[str, Any]:
        return {"self": f"{self.url}{API}/user?accountId={account_id}", "accountId": account_id,
                "displayName": self.users.get(account_id, account_id), "active": True, "timeZone": self.time_zone,
                "accountType": "atlassian"}

    # -- writes ----------------------------------------------------------------------------------
    def _find(self, id_or_key: str) -> Issue:
        issue_id = self.keys.get(id_or_key, id_or_key)
        if issue_id not in self.issues:
            raise JiraApiError(404, ["Issue does not exist or you do not have permission to see it."])
        return self.issues[issue_id]

    def _new(self, project: str, type: str, summary: str, when: float) -> Issue:
        p = self.projects[project]
        issue_id = str(next(self._ids))
        key = f"{project}-{p['next']}"
        p["next"] += 1
        initial = WORKFLOWS[p["workflows"][type]]["initial"]
        issue = Issue(issue_id, key, project, type, summary, initial, when, when)
        self.issues[issue_id] = issue
        self.keys[key] = issue_id
        return issue

    async def _create(self, request: web.Request, body: Any) -> web.StreamResponse:
        fields = body.get("fields") if isinstance(body, dict) else None
        if not isinstance(fields, dict):
            raise JiraApiError(400, ["Issue must have 'fields' set."])
        project_ref = fields.get("project") or {}
        project = next((k for k, p in self.projects.items() if project_ref.get("key") == k or project_ref.get("id") == p["id"]), None)
        if project is None:
            raise JiraApiError(400, errors={"project": "valid project is required"})
        type_name = str((fields.get("issuetype") or {}).get("name") or "")
        if type_name not in self.projects[project]["workflows"]:
            raise JiraApiError(400, errors={"issuetype": "valid issue type is required"})
        changes = {k: v for k, v in fields.items() if k not in ("project", "issuetype")}
        self._check(changes, creating=True)
        properties = body.get("properties") or []
        if not isinstance(properties, list) or not all(isinstance(p, dict) and p.get("key") for p in properties):
            raise JiraApiError(400, ["Issue properties must be a list of key and value."])
        issue = self._new(project, type_name, "", self.clock())
        self._set(issue, changes)
        issue.properties = {p["key"]: p.get("value") for p in properties}
        self._notify("jira:issue_created", "issue_created", issue, None, self.account_id)
        if self.drop_creates:
            self.drop_creates -= 1
            assert request.transport is not None
            request.transport.abort()
            raise asyncio.CancelledError
        return web.json_response({"id": issue.id, "key": issue.key, "self": f"{self.url}{API}/issue/{issue.id}"}, status=201)

    def _edit(self, issue: Issue, body: Any) -> None:
        fields = body.get("fields") if isinstance(body, dict) else None
        if not isinstance(fields, dict):
            raise JiraApiError(400, ["No fields to edit."])
        self._check(fields, creating=False)
        self._apply(issue, fields, self.account_id)

    def _check(self, fields: dict[str, Any], *, creating: bool) -> None:
        errors: dict[str, str] = {}
        for name, value in fields.items():
            if name not in SETTABLE:
                errors[name] = f"Field '{name}' cannot be set. It is not on the appropriate screen, or unknown."
            elif name == "summary" and (not isinstance(value, str) or not value.strip()):
                errors[name] = "You must specify a summary of the issue."
            elif name == "summary" and len(value) > 255:
                errors[name] = "Summary must be less than 255 characters."
            elif name == "description" and value is not None and not is_adf(value):
                errors[name] = NOT_ADF
            elif name == "priority" and not (isinstance(value, dict) and value.get("name") in dict(PRIORITIES).values()):
                errors[name] = f"Priority name '{(value or {}).get('name') if isinstance(value, dict) else value}' is not valid"
            elif name == "assignee" and value is not None and not (isinstance(value, dict) and value.get("accountId") in self.users):
                errors[name] = "Specified user does not exist or you do not have required permissions"
            elif name == "labels" and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
                errors[name] = "Labels must be a list of strings."
            elif name == "labels" and (bad := next((v for v in value if not v or " " in v or len(v) > 255), None)) is not None:
                errors[name] = f"The label '{bad}' contains spaces which is invalid."
            elif name == "duedate" and value is not None and not is_date(value):
                errors[name] = f"Error parsing date string: {value}"
        if creating and not (isinstance(fields.get("summary"), str) and fields["summary"].strip()):
            errors.setdefault("summary", "You must specify a summary of the issue.")
        if errors:
            raise JiraApiError(400, [], errors)

    def _set(self, issue: Issue, fields: dict[str, Any]) -> None:
        for name, value in fields.items():
            if name == "priority":
                value = value["name"]
            elif name == "assignee":
                value = value["accountId"] if value else None
            elif name == "reporter":
                continue
            setattr(issue, name, value)

    def _apply(self, issue: Issue, fields: dict[str, Any], by: str) -> None:
        before = {n: getattr(issue, n) for n in ("summary", "description", "priority", "assignee", "labels", "duedate")}
        self._set(issue, fields)
        items = []
        for name, old in before.items():
            new = getattr(issue, name)
            if new != old:
                items.append(change_item(name, old, new, self.users))
        if items:
            issue.updated = max(self.clock(), issue.updated)
            self._notify("jira:issue_updated", "issue_generic", issue, items, by)

    def transitions(self, issue: Issue) -> list[tuple[str, str, str | None, str]]:
        flow = WORKFLOWS[self.projects[issue.project]["workflows"][issue.type]]
        return [t for t in flow["transitions"]
                if (t[2] == issue.status) or (t[2] is None and t[3] != issue.status)]

    def _transition_json(self, t: tuple[str, str, str | None, str]) -> dict[str, Any]:
        status_id, category = STATUSES[t[3]]
        return {"id": t[0], "name": t[1], "hasScreen": False, "isGlobal": t[2] is None, "isInitial": False,
                "isAvailable": True, "isConditional": False, "isLooped": False,
                "to": {"self": f"{self.url}{API}/status/{status_id}", "description": "", "name": t[3], "id": status_id,
                       "statusCategory": self._category(category)}}

    def _transition(self, issue: Issue, t: tuple[str, str, str | None, str], by: str) -> None:
        old = issue.status
        issue.status = t[3]
        issue.updated = max(self.clock(), issue.updated)
        item = {"field": "status", "fieldtype": "jira", "fieldId": "status", "from": STATUSES[old][0],
                "fromString": old, "to": STATUSES[t[3]][0], "toString": t[3]}
        self._notify("jira:issue_updated", "issue_generic", issue, [item], by)

    # -- webhooks --------------------------------------------------------------------------------
    def _notify(self, event: str, type_name: str, issue: Issue, items: list[dict[str, Any]] | None, by: str) -> None:
        payload: dict[str, Any] = {
            "timestamp": int(self.clock() * 1000), "webhookEvent": event, "issue_event_type_name": type_name,
            "user": self._user(by),
            "issue": {"id": issue.id, "self": f"{self.url}/rest/api/2/issue/{issue.id}", "key": issue.key,
                      "fields": {**self._fields(issue), "description": text_of(issue.description)}},
        }
        if items is not None:
            payload["changelog"] = {"id": str(next(self._ids)), "items": items}
        self.sent.append(payload)
        for target, secret, jql in self.hooks:
            if jql and not parse(jql, self._value, self.zone).where(issue):
                continue
            body = json.dumps(payload).encode()
            headers = {"Content-Type": "application/json; charset=UTF-8", "User-Agent": "Atlassian Webhook HTTP Client",
                       "X-Atlassian-Webhook-Identifier": str(uuid.uuid4()), "X-Atlassian-Webhook-Retry": "0"}
            if secret:
                headers["X-Hub-Signature"] = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
            task = asyncio.get_running_loop().create_task(self._post(target, body, headers))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _post(self, target: Target, body: bytes, headers: dict[str, str]) -> Any:
        if callable(target):
            return await target(body, headers)
        if self._client is None:
            self._client = aiohttp.ClientSession()
        async with self._client.post(target, data=body, headers=headers) as resp:
            return resp.status


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def _error(status: int, messages: list[str], errors: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"errorMessages": messages, "errors": errors or {}}, status=status)
