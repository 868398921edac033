"""A stand-in for GitHub's REST API (issues) on 127.0.0.1, answering as GitHub documents it.

    gh = GitHubAPI(tokens={"ghp_test"})
    await gh.start()                     # gh.url: http://127.0.0.1:<port>
    gh.open_issue("octo/repo", "Title", body="...", labels=["bug"])   # a person on GitHub
    gh.seed("octo/repo", 10_000)         # fast, no webhooks
    gh.fail(502)                         # the next answer (or ``times``), whatever the request
    gh.secondary_limit(status=429, retry_after=30)
    gh.exhaust(reset_in=120)             # primary limit: remaining 0 until then
    gh.drop_next("POST")                 # do the work, then close the connection unanswered
    gh.hooks("http://127.0.0.1:8000/hooks/github", secret="s")   # post `issues` webhooks
    await gh.delivered()                 # every webhook posted so far has been answered

What it follows (docs.github.com/rest and the ``@octokit/openapi`` description):

- ``GET /repos/{o}/{r}/issues``: ``state`` (open default, closed, all), ``sort`` (created default,
  updated, comments), ``direction`` (desc default), ``since`` (ISO 8601, inclusive, on
  ``updated_at``), ``per_page`` (30, at most 100), ``page``; pull requests are in the list with a
  ``pull_request`` key; ``Link`` with ``next``/``last``/``first``/``prev``;
- ``GET``/``PATCH /repos/{o}/{r}/issues/{n}``: 404 unknown, 410 deleted; PATCH takes ``title``,
  ``body``, ``state`` + ``state_reason``, ``labels`` (names), ``assignees`` (logins) and bumps
  ``updated_at``; ``POST /repos/{o}/{r}/issues``: 201 with ``Location``; 422 ``Validation Failed``
  with ``errors`` for a missing title, an unknown state, an unassignable login, a body over 65,536;
- a weak ``ETag`` (``W/"..."``) on every GET, 304 for a matching ``If-None-Match`` (not counted
  against the rate limit); ``x-ratelimit-limit/remaining/used/reset/resource`` on every answer;
- ``Authorization: Bearer|token <t>``, else 401 ``Bad credentials``;
- ``POST /app/installations/{id}/access_tokens`` with an RS256 app JWT (``iss`` the app id, ``exp``
  at most 10 minutes ahead): 201 ``{token, expires_at, permissions, repository_selection}``.

Times are whole seconds, as GitHub's are.
"""

from __future__ import annotations

import asyncio
import base64
import bisect
import functools
import hashlib
import hmac
import json
import secrets
import time
import uuid
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import aiohttp
import orjson
from aiohttp import web
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

DOCS = "https://docs.github.com/rest"
LIMIT = 5000
BODY_MAX = 65536
BOT = "tidings-bot"
"""The login API changes are made as (the token's user)."""


@functools.lru_cache(maxsize=65536)
def iso(t: float) -> str:
    return datetime.fromtimestamp(int(t), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@functools.lru_cache(maxsize=4096)
def _user(login: str) -> dict[str, Any]:
    uid = int(hashlib.sha256(login.encode()).hexdigest()[:7], 16)
    return {
        "login": login, "id": uid, "node_id": base64.b64encode(f"04:User{uid}".encode()).decode(),
        "avatar_url": f"https://avatars.githubusercontent.com/u/{uid}?v=4", "gravatar_id": "",
        "url": f"https://api.github.com/users/{login}", "html_url": f"https://github.com/{login}",
        "type": "User", "site_admin": False,
    }


def user(login: str) -> dict[str, Any]:
    return dict(_user(login))


def label(repo: str, name: str) -> dict[str, Any]:
    lid = int(hashlib.sha256(f"{repo}:{name}".encode()).hexdigest()[:8], 16)
    return {"id": lid, "node_id": f"LA_{lid}", "url": f"https://api.github.com/repos/{repo}/labels/{name}",
            "name": name, "color": "ededed", "default": False, "description": None}


@dataclass
class Issue:
    number: int
    title: str
    body: str | None
    author: str
    created_at: float
    updated_at: float
    state: str = "open"
    state_reason: str | None = None
    closed_at: float | None = None
    labels: list[str] = field(default_factory=list)
    assignees: list[str] = field(default_factory=list)
    pull: bool = False
    deleted: bool = False


@dataclass
class Repo:
    full_name: str
    id: int
    issues: dict[int, Issue] = field(default_factory=dict)
    assignable: set[str] | None = None
    """Logins that may be assigned; None: anyone."""
    _by_updated: list[Issue] | None = None

    def next_number(self) -> int:
        return len(self.issues) + 1

    def changed(self) -> None:
        self._by_updated = None

    def by_updated(self) -> list[Issue]:
        """Issues oldest update first (kept until the next change: a sweep of 10,000 sorts once)."""
        if self._by_updated is None:
            self._by_updated = sorted((i for i in self.issues.values() if not i.deleted),
                                      key=lambda i: (i.updated_at, i.number))
        return self._by_updated


@dataclass
class Script:
    status: int
    times: int = 1
    method: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] | None = None
    delay: float = 0.0


@dataclass
class App:
    app_id: int
    public_key: rsa.RSAPublicKey
    installations: set[int]


class GitHubAPI:
    def __init__(self, tokens: set[str] | None = None, *, clock_offset: float = 0.0) -> None:
        self.tokens: set[str] = set(tokens or {"ghp_test"})
        self.repos: dict[str, Repo] = {}
        self.apps: dict[int, App] = {}
        self.installation_tokens: dict[str, float] = {}
        """Token -> expiry (epoch)."""
        self.token_lifetime = 3600.0
        self.calls: Counter[str] = Counter()
        """Requests per endpoint: ``GET issues``, ``GET issue``, ``PATCH issue``, ``POST issues``, ``POST access_tokens``."""
        self.not_modified = 0
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        self.used: Counter[str] = Counter()
        self.reset_at = time.time() + 3600
        self.exhausted_until = 0.0
        self._script: deque[Script] = deque()
        self._drop: deque[str] = deque()
        self.hook_url: str | None = None
        self.hook_secret = b""
        self.webhooks: list[tuple[str, dict[str, Any], int]] = []
        """(event, payload, answer status) for every webhook posted."""
        self._hook_queue: asyncio.Queue[tuple[str, dict[str, Any]]] | None = None
        self._hook_worker: asyncio.Task[None] | None = None
        self._client: aiohttp.ClientSession | None = None
        self._runner: web.AppRunner | None = None
        self.port = 0
        self._clock = 0.0

    # -- life ----------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        app = web.Application(client_max_size=30 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._hook_worker is not None:
            self._hook_worker.cancel()
        if self._client is not None:
            await self._client.close()
        if self._runner is not None:
            await self._runner.cleanup()

    # -- what a test sets up -----------------------------------------------------------------------------
    def repo(self, full_name: str) -> Repo:
        if full_name not in self.repos:
            self.repos[full_name] = Repo(full_name, 100000 + len(self.repos))
        return self.repos[full_name]

    def add_app(self, app_id: int, public_key_pem: bytes, installation_id: int) -> None:
        key = serialization.load_pem_public_key(public_key_pem)
        assert isinstance(key, rsa.RSAPublicKey)
        self.apps[app_id] = App(app_id, key, {installation_id})

    def hooks(self, url: str, secret: str) -> None:
        """Post an ``issues`` webhook to ``url`` for every change from now on, signed with ``secret``."""
        self.hook_url, self.hook_secret = url, secret.encode()

    def fail(self, status: int, *, times: int = 1, method: str | None = None, headers: dict[str, str] | None = None,
             body: dict[str, Any] | None = None, delay: float = 0.0) -> None:
        """The next ``times`` requests (of ``method``, if given) answer ``status``."""
        self._script.append(Script(status, times, method, dict(headers or {}), body, delay))

    def stall(self, seconds: float, *, method: str | None = None) -> None:
        """The next request is answered (200, as usual) only after ``seconds``."""
        self._script.append(Script(0, 1, method, delay=seconds))

    def secondary_limit(self, *, status: int = 403, retry_after: int | None = None, times: int = 1) -> None:
        """GitHub's secondary rate limit: 403 or 429, with or without ``retry-after``."""
        headers = {"retry-after": str(retry_after)} if retry_after is not None else {}
        self.fail(status, times=times, headers=headers, body={
            "message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. "
                       "If you reach out to GitHub Support for help, please include the request ID "
                       f"{uuid.uuid4().hex[:8].upper()}.",
            "documentation_url": "https://docs.github.com/free-pro-team@latest/rest/overview/rate-limits-for-the-rest-api"
                                 "#about-secondary-rate-limits"})

    def exhaust(self, reset_in: float = 60.0) -> None:
        """The primary limit is spent: every request answers 403 (remaining 0) until ``reset_in`` has passed."""
        self.reset_at = time.time() + reset_in
        self.exhausted_until = self.reset_at

    def drop_next(self, method: str = "POST") -> None:
        """The next ``method`` request is carried out, then its connection closed before any answer."""
        self._drop.append(method)

    # -- a person on GitHub ------------------------------------------------------------------------------
    def now(self) -> float:
        """Whole seconds, never going back; ``advance`` moves it on without waiting."""
        return max(float(int(time.time() + self._clock)), 0.0)

    def advance(self, seconds: float) -> None:
        self._clock += seconds

    def open_issue(self, repo: str, title: str, *, body: str | None = None, labels: list[str] | None = None,
                   assignees: list[str] | None = None, by: str = "octocat", pull: bool = False) -> dict[str, Any]:
        r = self.repo(repo)
        now = self.now()
        issue = Issue(r.next_number(), title, body, by, now, now, labels=list(dict.fromkeys(labels or [])),
                      assignees=list(dict.fromkeys(assignees or [])), pull=pull)
        r.issues[issue.number] = issue
        r.changed()
        if not pull:
            self._changed(r, issue, None, by)
        return self.render(r, issue)

    def open_pull(self, repo: str, title: str, by: str = "octocat") -> dict[str, Any]:
        return self.open_issue(repo, title, by=by, pull=True)

    def edit(self, repo: str, number: int, *, by: str = "octocat", **fields: Any) -> dict[str, Any]:
        """What someone does on github.com: ``title``, ``body``, ``state``, ``state_reason``, ``labels``, ``assignees``."""
        r = self.repo(repo)
        issue = r.issues[number]
        before = _snapshot(issue)
        _apply(issue, fields, self.now())
        r.changed()
        self._changed(r, issue, before, by)
        return self.render(r, issue)

    def delete(self, repo: str, number: int, by: str = "octocat") -> None:
        r = self.repo(repo)
        issue = r.issues[number]
        issue.deleted = True
        r.changed()
        self._send(r, "deleted", issue, by)

    def seed(self, repo: str, n: int, *, start: float | None = None, step: float = 1.0, prefix: str = "Issue") -> None:
        """``n`` issues at once, no webhooks: updated ``start``, ``start + step``, ... (whole seconds)."""
        r = self.repo(repo)
        t0 = self.now() - n * step if start is None else start
        for i in range(n):
            number = r.next_number()
            t = float(int(t0 + i * step))
            r.issues[number] = Issue(number, f"{prefix} {number}", f"Body of {number}", "octocat", t, t)
        r.changed()

    def issue(self, repo: str, number: int) -> Issue:
        return self.repos[repo].issues[number]

    # -- rendering -------------------------------------------------------------------------------------
    def render(self, r: Repo, issue: Issue) -> dict[str, Any]:
        api = f"https://api.github.com/repos/{r.full_name}"
        html = f"https://github.com/{r.full_name}/{'pull' if issue.pull else 'issues'}/{issue.number}"
        iid = r.id * 100000 + issue.number
        out: dict[str, Any] = {
            "url": f"{api}/issues/{issue.number}", "repository_url": api,
            "labels_url": f"{api}/issues/{issue.number}/labels{{/name}}",
            "comments_url": f"{api}/issues/{issue.number}/comments",
            "events_url": f"{api}/issues/{issue.number}/events", "html_url": html,
            "id": iid, "node_id": f"I_{iid}", "number": issue.number, "title": issue.title,
            "user": user(issue.author), "labels": [label(r.full_name, n) for n in issue.labels],
            "state": issue.state, "locked": False,
            "assignee": user(issue.assignees[0]) if issue.assignees else None,
            "assignees": [user(a) for a in issue.assignees], "milestone": None, "comments": 0,
            "created_at": iso(issue.created_at), "updated_at": iso(issue.updated_at),
            "closed_at": iso(issue.closed_at) if issue.closed_at else None,
            "author_association": "OWNER", "active_lock_reason": None, "body": issue.body,
            "reactions": {"url": f"{api}/issues/{issue.number}/reactions", "total_count": 0},
            "timeline_url": f"{api}/issues/{issue.number}/timeline", "performed_via_github_app": None,
            "state_reason": issue.state_reason,
        }
        if issue.pull:
            out["draft"] = False
            out["pull_request"] = {"url": f"{api}/pulls/{issue.number}", "html_url": html,
                                   "diff_url": f"{html}.diff", "patch_url": f"{html}.patch", "merged_at": None}
        return out

    def _repository(self, r: Repo) -> dict[str, Any]:
        owner = r.full_name.split("/")[0]
        return {"id": r.id, "node_id": f"R_{r.id}", "name": r.full_name.split("/")[1], "full_name": r.full_name,
                "private": False, "owner": user(owner), "html_url": f"https://github.com/{r.full_name}",
                "url": f"https://api.github.com/repos/{r.full_name}", "default_branch": "main"}

    # -- webhooks --------------------------------------------------------------------------------------
    def _changed(self, r: Repo, issue: Issue, before: dict[str, Any] | None, by: str) -> None:
        """The ``issues`` webhooks GitHub sends for one change, in GitHub's order."""
        if before is None:
            self._send(r, "opened", issue, by)
            before = {"title": issue.title, "body": issue.body, "state": "open", "labels": [], "assignees": []}
        changes = {k: {"from": before[k]} for k in ("title", "body") if before[k] != getattr(issue, k)}
        if changes:
            self._send(r, "edited", issue, by, changes=changes)
        if before["state"] != issue.state:
            self._send(r, "closed" if issue.state == "closed" else "reopened", issue, by)
        for name in issue.labels:
            if name not in before["labels"]:
                self._send(r, "labeled", issue, by, label=label(r.full_name, name))
        for name in before["labels"]:
            if name not in issue.labels:
                self._send(r, "unlabeled", issue, by, label=label(r.full_name, name))
        for login in issue.assignees:
            if login not in before["assignees"]:
                self._send(r, "assigned", issue, by, assignee=user(login))
        for login in before["assignees"]:
            if login not in issue.assignees:
                self._send(r, "unassigned", issue, by, assignee=user(login))

    def _send(self, r: Repo, action: str, issue: Issue, by: str, **extra: Any) -> None:
        if self.hook_url is None:
            return
        payload = {"action": action, "issue": self.render(r, issue), **extra,
                   "repository": self._repository(r), "sender": user(by)}
        if self._hook_queue is None:
            self._hook_queue = asyncio.Queue()
            self._hook_worker = asyncio.get_running_loop().create_task(self._post_hooks())
        self._hook_queue.put_nowait(("issues", payload))

    async def _post_hooks(self) -> None:
        assert self._hook_queue is not None
        while True:
            event, payload = await self._hook_queue.get()
            try:
                await self.post_webhook(event, payload)
            finally:
                self._hook_queue.task_done()

    async def post_webhook(self, event: str, payload: dict[str, Any]) -> int:
        """Post one delivery as GitHub does (headers, signature over the exact bytes)."""
        assert self.hook_url is not None
        if self._client is None:
            self._client = aiohttp.ClientSession()
        body = json.dumps(payload).encode()
        headers = {
            "content-type": "application/json", "user-agent": "GitHub-Hookshot/9c5f1b6",
            "x-github-event": event, "x-github-delivery": str(uuid.uuid4()), "x-github-hook-id": "4242",
            "x-github-hook-installation-target-type": "repository",
            "x-github-hook-installation-target-id": str(self.repo(payload["repository"]["full_name"]).id),
            "x-hub-signature": "sha1=" + hmac.new(self.hook_secret, body, hashlib.sha1).hexdigest(),
            "x-hub-signature-256": "sha256=" + hmac.new(self.hook_secret, body, hashlib.sha256).hexdigest(),
        }
        try:
            async with self._client.post(self.hook_url, data=body, headers=headers) as resp:
                status = resp.status
        except aiohttp.ClientError:
            status = 0
        self.webhooks.append((event, payload, status))
        return status

    async def delivered(self) -> None:
        """Wait until every webhook queued so far has been posted and answered."""
        if self._hook_queue is not None:
            await self._hook_queue.join()

    # -- the API ---------------------------------------------------------------------------------------
    def _rate_headers(self, key: str, count: bool) -> dict[str, str]:
        if count:
            self.used[key] += 1
        remaining = 0 if self.exhausted_until > time.time() else max(0, LIMIT - self.used[key])
        return {"x-ratelimit-limit": str(LIMIT), "x-ratelimit-remaining": str(remaining),
                "x-ratelimit-used": str(LIMIT - remaining), "x-ratelimit-reset": str(int(self.reset_at)),
                "x-ratelimit-resource": "core", "x-github-api-version-selected": "2022-11-28",
                "x-github-request-id": uuid.uuid4().hex[:20].upper()}

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.requests.append((request.method, request.path_qs, dict(request.headers), body))
        endpoint, args = _route(request.method, request.path)
        self.calls[endpoint] += 1
        scripted = self._next_script(request.method)
        if scripted is not None and scripted.delay:
            await asyncio.sleep(scripted.delay)
        if scripted is not None and scripted.status:
            return _json(scripted.status, scripted.body or _error(scripted.status),
                         {**self._rate_headers("anonymous", False), **scripted.headers})
        if endpoint == "POST access_tokens":
            return self._access_token(request, int(args[0]))
        who = self._authorized(request)
        if who is None:
            return _json(401, {"message": "Bad credentials", "documentation_url": DOCS, "status": "401"},
                         self._rate_headers("anonymous", True))
        if self.exhausted_until > time.time():
            return _json(403, {"message": "API rate limit exceeded for user ID 1. If you reach out to GitHub Support "
                                          "for help, please include the request ID ABC.",
                               "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api",
                               "status": "403"}, self._rate_headers(who, False))
        if endpoint == "unknown" or args[0] not in self.repos:
            return _json(404, {"message": "Not Found", "documentation_url": DOCS, "status": "404"},
                         self._rate_headers(who, True))
        r = self.repos[args[0]]
        try:
            data = json.loads(body) if body else {}
        except ValueError:
            return _json(400, {"message": "Problems parsing JSON", "documentation_url": DOCS, "status": "400"},
                         self._rate_headers(who, True))
        if endpoint == "GET issues":
            status, out, headers = self._list(request, r)
        elif endpoint == "POST issues":
            status, out, headers = self._create(r, data)
        else:
            status, out, headers = self._one(request.method, r, int(args[1]), data)
        raw = orjson.dumps(out)
        if request.method == "GET" and status == 200:
            etag = 'W/"' + hashlib.sha256(raw).hexdigest()[:40] + '"'
            headers["ETag"] = etag
            if _matches(request.headers.get("If-None-Match"), etag):
                self.not_modified += 1
                return web.Response(status=304, headers={**headers, **self._rate_headers(who, False)})
        if request.method in self._drop_match(request.method):
            assert request.transport is not None
            request.transport.abort()
            raise asyncio.CancelledError
        return _json(status, raw, {**headers, **self._rate_headers(who, True)})

    def _drop_match(self, method: str) -> set[str]:
        if self._drop and self._drop[0] == method:
            self._drop.popleft()
            return {method}
        return set()

    def _next_script(self, method: str) -> Script | None:
        for s in self._script:
            if s.method is None or s.method == method:
                s.times -= 1
                if s.times <= 0:
                    self._script.remove(s)
                return s
        return None

    def _authorized(self, request: web.Request) -> str | None:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() not in ("bearer", "token"):
            return None
        if token in self.tokens:
            return token
        expires = self.installation_tokens.get(token)
        if expires is not None and expires > time.time():
            return token
        return None

    def _list(self, request: web.Request, r: Repo) -> tuple[int, Any, dict[str, str]]:
        q = request.query
        state = q.get("state", "open")
        sort = q.get("sort", "created")
        direction = q.get("direction", "desc")
        if state not in ("open", "closed", "all") or sort not in ("created", "updated", "comments") \
                or direction not in ("asc", "desc"):
            return 422, _invalid("Issue", "state/sort/direction"), {}
        try:
            per_page = min(100, max(1, int(q.get("per_page", "30"))))
            page = max(1, int(q.get("page", "1")))
            since = parse_iso(q["since"]) if "since" in q else None
        except ValueError:
            return 422, _invalid("Issue", "since/page/per_page"), {}
        ordered = r.by_updated()
        if since is not None:  # inclusive
            ordered = ordered[bisect.bisect_left(ordered, since, key=lambda i: i.updated_at):]
        items = ordered if state == "all" else [i for i in ordered if i.state == state]
        if sort == "created":
            items.sort(key=lambda i: (i.created_at, i.number))
        if direction == "desc":
            items.reverse()
        chunk = items[(page - 1) * per_page: page * per_page]
        last = max(1, -(-len(items) // per_page))
        links = []

        def at(p: int) -> str:
            query = {k: v for k, v in q.items() if k != "page"}
            return f"<{self.url}{request.path}?{urlencode({**query, 'page': p})}>"

        if page < last:
            links += [f'{at(page + 1)}; rel="next"', f'{at(last)}; rel="last"']
        if page > 1:
            links = [f'{at(page - 1)}; rel="prev"', *links, f'{at(1)}; rel="first"']
        return 200, [self.render(r, i) for i in chunk], ({"Link": ", ".join(links)} if links else {})

    def _validate(self, r: Repo, data: dict[str, Any], create: bool) -> dict[str, Any] | None:
        if create and not (isinstance(data.get("title"), str) and data["title"].strip()):
            return {"message": "Validation Failed", "errors": [{"resource": "Issue", "code": "missing_field",
                                                                 "field": "title"}],
                    "documentation_url": f"{DOCS}/issues/issues#create-an-issue", "status": "422"}
        if isinstance(data.get("body"), str) and len(data["body"]) > BODY_MAX:
            return {"message": "Validation Failed", "errors": [{"resource": "Issue", "code": "custom", "field": "body",
                                                                 "message": f"body is too long (maximum is {BODY_MAX} characters)"}],
                    "documentation_url": DOCS, "status": "422"}
        if "state" in data and data["state"] not in ("open", "closed"):
            return _invalid("Issue", "state", data["state"])
        if data.get("state_reason") not in (None, "completed", "not_planned", "reopened", "duplicate"):
            return _invalid("Issue", "state_reason", data["state_reason"])
        for login in data.get("assignees") or []:
            if r.assignable is not None and login not in r.assignable:
                return _invalid("Issue", "assignees", login)
        return None

    def _create(self, r: Repo, data: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
        problem = self._validate(r, data, create=True)
        if problem:
            return 422, problem, {}
        now = self.now()
        issue = Issue(r.next_number(), data["title"], data.get("body"), BOT, now, now,
                      labels=list(dict.fromkeys(data.get("labels") or [])),
                      assignees=list(dict.fromkeys(data.get("assignees") or [])))
        r.issues[issue.number] = issue
        r.changed()
        self._changed(r, issue, None, BOT)
        out = self.render(r, issue)
        return 201, out, {"Location": f"{self.url}/repos/{r.full_name}/issues/{issue.number}"}

    def _one(self, method: str, r: Repo, number: int, data: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
        issue = r.issues.get(number)
        if issue is None:
            return 404, {"message": "Not Found", "documentation_url": f"{DOCS}/issues/issues#get-an-issue",
                         "status": "404"}, {}
        if issue.deleted:
            return 410, {"message": "This issue was deleted", "documentation_url": f"{DOCS}/issues/issues#get-an-issue",
                         "status": "410"}, {}
        if method == "PATCH":
            problem = self._validate(r, data, create=False)
            if problem:
                return 422, problem, {}
            before = _snapshot(issue)
            _apply(issue, data, self.now())
            r.changed()
            self._changed(r, issue, before, BOT)
        return 200, self.render(r, issue), {}

    # -- GitHub Apps -----------------------------------------------------------------------------------
    def _access_token(self, request: web.Request, installation: int) -> web.Response:
        headers = self._rate_headers("app", True)

        def refused(message: str) -> web.Response:
            return _json(401, {"message": message, "documentation_url": DOCS, "status": "401"}, headers)

        scheme, _, jwt = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or jwt.count(".") != 2:
            return refused("A JSON web token could not be decoded")
        try:
            head_b64, claims_b64, sig_b64 = jwt.strip().split(".")
            head = json.loads(_unb64(head_b64))
            claims = json.loads(_unb64(claims_b64))
            signature = _unb64(sig_b64)
        except ValueError:
            return refused("A JSON web token could not be decoded")
        app = self.apps.get(int(claims.get("iss", 0)) if str(claims.get("iss", "")).isdigit() else 0)
        if head.get("alg") != "RS256" or app is None:
            return refused("A JSON web token could not be decoded")
        try:
            app.public_key.verify(signature, f"{head_b64}.{claims_b64}".encode(), padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            return refused("A JSON web token could not be decoded")
        now = time.time()
        if not isinstance(claims.get("exp"), int) or claims["exp"] < now:
            return refused("'Expiration time' claim ('exp') must be a numeric value representing the future time at"
                           " which the assertion expires")
        if claims["exp"] > now + 600 + 1:
            return refused("'Expiration time' claim ('exp') is too far in the future")
        if not isinstance(claims.get("iat"), int) or claims["iat"] > now + 60:
            return refused("'Issued at' claim ('iat') must be an Integer representing the time that the assertion"
                           " was issued")
        if installation not in app.installations:
            return _json(404, {"message": "Not Found", "documentation_url": DOCS, "status": "404"}, headers)
        token = "ghs_" + secrets.token_urlsafe(27)
        expires = now + self.token_lifetime
        self.installation_tokens[token] = expires
        return _json(201, {"token": token, "expires_at": iso(expires),
                           "permissions": {"issues": "write", "metadata": "read"},
                           "repository_selection": "selected"}, headers)


def new_app_key() -> tuple[bytes, bytes]:
    """(private PEM, public PEM) of a fresh 2048-bit RSA key, as GitHub hands out for an app."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, public


# -- helpers ---------------------------------------------------------------------------------------------
def _route(method: str, path: str) -> tuple[str, list[str]]:
    parts = [p for p in path.split("/") if p]
    if method == "POST" and len(parts) == 4 and parts[:2] == ["app", "installations"] and parts[3] == "access_tokens" \
            and parts[2].isdigit():
        return "POST access_tokens", [parts[2]]
    if len(parts) == 4 and parts[0] == "repos" and parts[3] == "issues" and method in ("GET", "POST"):
        return f"{method} issues", [f"{parts[1]}/{parts[2]}"]
    if len(parts) == 5 and parts[0] == "repos" and parts[3] == "issues" and parts[4].isdigit() \
            and method in ("GET", "PATCH"):
        return f"{method} issue", [f"{parts[1]}/{parts[2]}", parts[4]]
    return "unknown", [""]


def _snapshot(issue: Issue) -> dict[str, Any]:
    return {"title": issue.title, "body": issue.body, "state": issue.state, "labels": list(issue.labels),
            "assignees": list(issue.assignees)}


def _apply(issue: Issue, fields: dict[str, Any], now: float) -> None:
    if "title" in fields:
        issue.title = fields["title"]
    if "body" in fields:
        issue.body = fields["body"]
    if "labels" in fields:
        issue.labels = list(dict.fromkeys(str(x) for x in fields["labels"] or []))
    if "assignees" in fields:
        issue.assignees = list(dict.fromkeys(str(x) for x in fields["assignees"] or []))
    state = fields.get("state", issue.state)
    if state != issue.state:
        issue.state = state
        issue.closed_at = now if state == "closed" else None
        issue.state_reason = fields.get("state_reason") or ("completed" if state == "closed" else "reopened")
    elif "state_reason" in fields and issue.state == "closed":
        issue.state_reason = fields["state_reason"]
    issue.updated_at = now


def _invalid(resource: str, field_name: str, value: Any = None) -> dict[str, Any]:
    return {"message": "Validation Failed", "errors": [{"value": value, "resource": resource, "field": field_name,
                                                         "code": "invalid"}],
            "documentation_url": DOCS, "status": "422"}


def _error(status: int) -> dict[str, Any]:
    messages = {500: "Server Error", 502: "Server Error", 503: "Service Unavailable", 404: "Not Found",
                403: "Forbidden", 429: "Too Many Requests"}
    return {"message": messages.get(status, "Error"), "documentation_url": DOCS, "status": str(status)}


def _json(status: int, data: Any, headers: dict[str, str]) -> web.Response:
    return web.Response(status=status, body=data if isinstance(data, bytes) else orjson.dumps(data),
                        headers={**headers, "Content-Type": "application/json; charset=utf-8"})


def _matches(header: str | None, etag: str) -> bool:
    """If-None-Match: a list of tags, compared weakly (``W/`` ignored), or ``*``."""
    if not header:
        return False
    bare = etag.removeprefix("W/")
    return any(t.strip() == "*" or t.strip().removeprefix("W/") == bare for t in header.split(","))


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
