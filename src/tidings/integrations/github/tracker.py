"""GitHub Issues as a sync :class:`~tidings.integrations.base.Tracker` (REST API, one repository).

How GitHub's issues map onto task space (settings in :class:`.settings.GitHubSync`):

- ``status``: open is ``todo``, open with ``in_progress_label`` is ``in_progress``, closed (as
  completed or as not planned) is ``done``; writing ``done`` closes as completed;
- ``priority``: one of ``priority_labels`` (``default_priority`` when none is there);
- ``labels``: the issue's labels but the priority labels and the in-progress label;
- ``assignee``: the first assignee, a tidings user through ``sync.assignees``, else ``github:<login>``;
- ``description``: the body, Markdown as is, without the hidden marker a create of ours leaves at its
  end (``<!-- tidings:link=<link id> -->``) so that a create whose answer was lost is found again;
- ``due``: not synced (a milestone is shared by many issues; GitHub has no date per issue).

Requests are counted (``model.count_call``) and their failures raised as the sync errors:
``x-ratelimit-remaining: 0`` waits until ``x-ratelimit-reset``, a secondary limit (403/429) for
``retry-after`` or at least a minute (doubling while it lasts); 5xx and timeouts are
``Unavailable``, 401 ``AuthFailed``, 404/410 ``NotFound``, 400/422 ``Rejected`` with GitHub's reason.
"""

from __future__ import annotations

import asyncio
import base64
import re
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import aiohttp
import orjson
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from multidict import CIMultiDictProxy

from ...security.outbound import DestinationRefused
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
from ..base import HttpClient, Tracker, is_vault_ref, not_connected
from ..http import parse_retry_after

if TYPE_CHECKING:
    from .settings import GitHubSettings, GitHubSync

PER_PAGE = 100
API_VERSION = "2022-11-28"
REFRESH_MARGIN = 300.0
"""An installation token is replaced this long before it expires (it lasts an hour)."""
JWT_LIFETIME = 540
"""The app JWT's ``exp``: GitHub refuses more than 10 minutes; 9 leave room for clock drift."""
SECONDARY_WAIT = 60.0
SECONDARY_MAX = 900.0
BODY_LIMIT = 30 * 1024 * 1024
PRIORITIES = ("critical", "high", "medium", "low", "info")
MARKER = "<!-- tidings:link={} -->"
_MARKER = re.compile(r"\s*<!-- tidings:link=([A-Za-z0-9._:\-]{1,100}) -->\s*\Z")
_EXPLICIT_DEFAULT_MAX = 100_000


def split_marker(body: str) -> tuple[str, str | None]:
    """The body without our marker at its end, and the marker's link id (None without one)."""
    m = _MARKER.search(body)
    if m is None:
        return body, None
    return body[: m.start()], m.group(1)


def with_marker(description: str, marker: str | None) -> str:
    text = (description or "").rstrip()
    if marker is None:
        return text
    return f"{text}\n\n{MARKER.format(marker)}" if text else MARKER.format(marker)


def iso(t: float) -> str:
    """GitHub's time format, whole seconds (``since`` is inclusive, so rounding down keeps everything)."""
    return datetime.fromtimestamp(int(t), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class AppAuth:
    """A GitHub App's installation token: minted with an RS256 JWT (``iss`` the app id), kept for
    its hour and replaced :data:`REFRESH_MARGIN` before it ends, once even when calls race."""

    clock: Callable[[], float] = staticmethod(time.time)  # type: ignore[assignment]

    def __init__(self, api_url: str, app_id: int, installation_id: int, private_key: str) -> None:
        self.url = f"{api_url}/app/installations/{installation_id}/access_tokens"
        self.app_id = app_id
        self._pem = private_key
        self._key: rsa.RSAPrivateKey | None = None
        self._token: str | None = None
        self._expires = 0.0
        self._lock = asyncio.Lock()

    def jwt(self) -> str:
        if self._key is None:
            try:
                key = serialization.load_pem_private_key(self._pem.encode(), password=None)
            except (ValueError, TypeError):
                raise AuthFailed("private_key is not a PEM private key: paste the .pem file GitHub made for the app") \
                    from None
            if not isinstance(key, rsa.RSAPrivateKey):
                raise AuthFailed("private_key must be the app's RSA key (GitHub signs app JWTs with RS256)")
            self._key = key
        now = int(time.time())
        head = _b64(orjson.dumps({"alg": "RS256", "typ": "JWT"}))
        claims = _b64(orjson.dumps({"iat": now - 60, "exp": now + JWT_LIFETIME, "iss": str(self.app_id)}))
        signature = self._key.sign(f"{head}.{claims}".encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{head}.{claims}.{_b64(signature)}"

    def forget(self) -> None:
        self._token = None

    async def token(self, tracker: GitHubTracker) -> str:
        if self._token is not None and self.clock() < self._expires - REFRESH_MARGIN:
            return self._token
        async with self._lock:
            if self._token is None or self.clock() >= self._expires - REFRESH_MARGIN:
                try:
                    data, _ = await tracker.request("POST", self.url, auth=f"Bearer {self.jwt()}")
                except (NotFound, Rejected) as exc:
                    raise AuthFailed(f"GitHub has no such installation of app {self.app_id} (check app_id and"
                                     f" installation_id): {exc}") from None
                try:
                    self._token, self._expires = str(data["token"]), parse_time(str(data["expires_at"]))
                except (KeyError, TypeError, ValueError):
                    raise Unavailable("GitHub answered the installation token request without token and expires_at") \
                        from None
        assert self._token is not None
        return self._token


class GitHubTracker(HttpClient, Tracker):
    """The sync side of the ``github`` integration (mixed into the receiver)."""

    settings: GitHubSettings
    _secondary_streak = 0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        s = self.settings
        self._api = s.api_url.rstrip("/")
        self._app: AppAuth | None = None
        if s.sync is not None and s.token is None and not s.oauth and s.private_key is not None:
            assert s.app_id is not None and s.installation_id is not None
            self._app = AppAuth(self._api, s.app_id, s.installation_id, s.private_key.get_secret_value())
        sync = s.sync
        self._logins = {login.lower(): email for email, login in (sync.assignees if sync else {}).items()}
        self._reserved_labels = {n.lower(): p for p, n in sync.priority_labels.items()} if sync else {}
        if sync:
            self._reserved_labels[sync.in_progress_label.lower()] = "in_progress"
        self._explicit_default: dict[str, bool] = {}
        """Issue number -> whether it carried the default priority's own label when last read."""

    @property
    def sync_settings(self) -> GitHubSync:
        assert self.settings.sync is not None
        return self.settings.sync

    # -- HTTP ------------------------------------------------------------------------------------------
    def session_headers(self) -> dict[str, str]:
        return {**super().session_headers(), "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": API_VERSION}

    async def _authorization(self) -> str:
        if self._app is not None:
            return f"Bearer {await self._app.token(self)}"
        token = self.settings.token.get_secret_value() if self.settings.token else ""
        if not token and self.settings.oauth:
            raise AuthFailed(not_connected(self.name))
        if not token or is_vault_ref(token):
            raise AuthFailed("no GitHub token: set token (or app_id, installation_id and private_key)")
        return f"Bearer {token}"

    async def request(
        self, method: str, url: str, *, params: dict[str, Any] | None = None, json: Any = None,
        etag: str | None = None, auth: str | None = None,
    ) -> tuple[Any, CIMultiDictProxy[str]]:
        """One call; ``(None, headers)`` for a 304. Every failure is a sync error."""
        headers = {"Authorization": auth or await self._authorization()}
        if etag:
            headers["If-None-Match"] = etag
        session = await self.session()
        try:
            async with session.request(method, url, params=params, json=json, headers=headers) as resp:
                status, answer = resp.status, resp.headers
                body = await _read(resp)
        except DestinationRefused as exc:
            raise Unavailable(str(exc)) from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            count_call()
            raise Unavailable(f"GitHub did not answer {method} {urlsplit(url).path}: {type(exc).__name__}"
                              f"{': ' + str(exc) if str(exc) else ''}") from None
        count_call(not_modified=status == 304)
        if status >= 400 or status < 200:
            raise self._error(status, answer, body, method, url, own_token=auth is None)
        self._secondary_streak = 0
        if status == 304:
            return None, answer
        if len(body) > BODY_LIMIT:
            raise Unavailable(f"GitHub's answer to {method} {urlsplit(url).path} is over {BODY_LIMIT} bytes")
        try:
            return (orjson.loads(body) if body else None), answer
        except orjson.JSONDecodeError:
            raise Unavailable(f"GitHub answered {method} {urlsplit(url).path} with malformed JSON") from None

    def _error(self, status: int, headers: CIMultiDictProxy[str], body: bytes, method: str, url: str,
               own_token: bool) -> TrackerError:
        reason = _reason(body)
        where = f"{method} {urlsplit(url).path}"
        if status in (403, 429):
            retry_after = parse_retry_after(headers.get("retry-after"))
            if retry_after is not None:
                return RateLimited(f"GitHub's secondary rate limit ({status}): {reason}", max(1.0, retry_after))
            if headers.get("x-ratelimit-remaining") == "0" and (reset := headers.get("x-ratelimit-reset", "")).isdigit():
                return RateLimited(f"GitHub's rate limit is spent until {iso(int(reset))}: {reason}",
                                   max(1.0, int(reset) - time.time()))
            if status == 429 or "rate limit" in reason.lower():
                wait = min(SECONDARY_MAX, SECONDARY_WAIT * 2 ** self._secondary_streak)
                self._secondary_streak += 1
                return RateLimited(f"GitHub's secondary rate limit ({status}): {reason}", wait)
            return AuthFailed(f"GitHub refused {where} (403): {reason}; the token or app lacks a permission")
        if status == 401:
            if self._app is not None and own_token:
                self._app.forget()
            whose = " (the connection's token: connect again if refreshing doesn't mend it)" if self.settings.oauth else ""
            return AuthFailed(f"GitHub refused the credentials (401): {reason}{whose}")
        if status in (404, 410):
            return NotFound(f"{where}: {status} {reason}")
        if status in (400, 422):
            return Rejected(f"GitHub refused {where} ({status}): {reason}")
        if status >= 500:
            return Unavailable(f"GitHub answered {where} with {status}: {reason}")
        return Rejected(f"GitHub answered {where} with {status}: {reason}")

    # -- task space ------------------------------------------------------------------------------------
    def _reserved(self) -> dict[str, str]:
        """Lower-cased label -> what it says (a priority, or ``in_progress``)."""
        return self._reserved_labels

    def item(self, issue: dict[str, Any], etag: str | None = None) -> RemoteItem:
        """A GitHub issue (as the REST API answers it) in task space."""
        sync = self.sync_settings
        names = [str(x.get("name")) if isinstance(x, dict) else str(x) for x in issue.get("labels") or []]
        by_name = {n.lower() for n in names}
        reserved = self._reserved()
        priority = next((p for p in PRIORITIES if (lbl := sync.priority_labels.get(p)) and lbl.lower() in by_name),
                        sync.default_priority)
        number = str(issue["number"])
        default_label = sync.priority_labels.get(sync.default_priority)
        if len(self._explicit_default) > _EXPLICIT_DEFAULT_MAX:
            self._explicit_default.clear()
        self._explicit_default[number] = bool(default_label and default_label.lower() in by_name)
        if issue.get("state") == "closed":
            status = "done"
            status_name = "not planned" if issue.get("state_reason") == "not_planned" else "closed"
        elif sync.in_progress_label.lower() in by_name:
            status, status_name = "in_progress", sync.in_progress_label
        else:
            status, status_name = "todo", "open"
        people = issue.get("assignees") or ([issue["assignee"]] if issue.get("assignee") else [])
        login = people[0].get("login") if people and isinstance(people[0], dict) else None
        assignee = (self._logins.get(login.lower()) or f"github:{login}") if login else None
        description, marker = split_marker(issue.get("body") or "")
        fields = normalize({
            "title": issue.get("title") or "", "description": description, "status": status, "priority": priority,
            "assignee": assignee, "labels": [n for n in names if n.lower() not in reserved],
        })
        return RemoteItem(
            id=number, key=f"{sync.repository}#{number}", url=str(issue.get("html_url") or ""),
            updated_at=parse_time(str(issue["updated_at"])), fields=fields, marker=marker, etag=etag,
            status_name=status_name,
        )

    def can_hold(self, name: str, value: Any) -> bool:
        if name != "assignee" or not value:
            return True
        return str(value).startswith("github:") or value in self.sync_settings.assignees

    def _login(self, assignee: str | None) -> list[str]:
        if not assignee:
            return []
        if assignee.startswith("github:"):
            return [assignee.removeprefix("github:")]
        login = self.sync_settings.assignees.get(assignee)
        if login:
            return [login]
        raise Rejected(f"{assignee} has no GitHub login: map it in sync.assignees (email: login), or set"
                       " sync.fields.assignee to import or off")

    def payload(self, changes: dict[str, Any], current: RemoteItem | None, marker: str | None = None) -> dict[str, Any]:
        """What PATCH (or POST, ``current`` None) sends for task-space ``changes``."""
        sync = self.sync_settings
        merged = {**(current.fields if current else {}), **changes}
        out: dict[str, Any] = {}
        if "title" in changes:
            out["title"] = changes["title"]
        if "description" in changes or current is None:
            out["body"] = with_marker(merged.get("description") or "", marker or (current.marker if current else None))
        if current is None or {"labels", "priority", "status"} & changes.keys():
            reserved = self._reserved()
            labels = [x for x in merged.get("labels") or [] if x.lower() not in reserved]
            priority = merged.get("priority")
            keep_default = "priority" in changes or current is None or (
                self._explicit_default.get(current.id, False))
            if priority and (priority != sync.default_priority or keep_default) \
                    and (name := sync.priority_labels.get(priority)):
                labels.append(name)
            if merged.get("status") == "in_progress":
                labels.append(sync.in_progress_label)
            out["labels"] = labels
        if "status" in changes:
            closed = changes["status"] == "done"
            if current is None or (current.fields.get("status") == "done") != closed:
                out["state"] = "closed" if closed else "open"
                if closed:
                    out["state_reason"] = "completed"
        if "assignee" in changes or (current is None and merged.get("assignee")):
            out["assignees"] = self._login(merged.get("assignee"))
        return out

    # -- the Tracker -----------------------------------------------------------------------------------
    @property
    def _issues(self) -> str:
        return f"{self._api}/repos/{self.sync_settings.repository}/issues"

    async def changes(self, since: float | None, etag: str | None) -> AsyncIterator[Page]:  # type: ignore[override]
        params: dict[str, Any] | None = {"state": "all", "sort": "updated", "direction": "asc", "per_page": PER_PAGE}
        if since is not None:
            assert params is not None
            params["since"] = iso(since)
        url: str | None = self._issues
        first = True
        while url is not None:
            data, headers = await self.request("GET", url, params=params, etag=etag if first else None)
            if data is None:
                yield Page([], etag=etag, not_modified=True)
                return
            if not isinstance(data, list):
                raise Unavailable("GitHub answered the issue list with something else than a list")
            items = [self.item(i) for i in data if isinstance(i, dict) and "pull_request" not in i]
            yield Page(items, etag=headers.get("ETag"))
            url, params, first = self._next(headers), None, False

    def _next(self, headers: CIMultiDictProxy[str]) -> str | None:
        """The ``rel="next"`` page, only on GitHub's own host (the token goes along)."""
        for part in headers.get("Link", "").split(","):
            target, _, rels = part.partition(";")
            if re.search(r'rel="?next"?', rels):
                url = target.strip().strip("<>")
                mine, theirs = urlsplit(self._api), urlsplit(url)
                if (mine.scheme, mine.netloc) != (theirs.scheme, theirs.netloc):
                    raise Unavailable(f"GitHub's next page is on another host ({theirs.netloc}): not followed")
                return url
        return None

    async def fetch(self, remote_id: str, etag: str | None = None) -> RemoteItem | None:
        data, headers = await self.request("GET", f"{self._issues}/{_number(remote_id)}", etag=etag)
        if data is None:
            return None
        if "pull_request" in data:
            raise NotFound(f"{self.sync_settings.repository}#{remote_id} is a pull request")
        return self.item(data, etag=headers.get("ETag"))

    async def create(self, fields: dict[str, Any], marker: str) -> RemoteItem:
        if not (fields.get("title") or "").strip():
            raise Rejected("a GitHub issue needs a title")
        body = self.payload(fields, None, marker)
        body.pop("state", None), body.pop("state_reason", None)  # a new issue is open: closed by a PATCH below
        data, _ = await self.request("POST", self._issues, json=body)
        item = self.item(data)
        if fields.get("status") == "done":
            data, _ = await self.request("PATCH", f"{self._issues}/{item.id}",
                                         json={"state": "closed", "state_reason": "completed"})
            item = self.item(data)
        return item

    async def find_created(self, marker: str, since: float) -> RemoteItem | None:
        async for page in self.changes(since, None):
            for item in page.items:
                if item.marker == marker:
                    return item
        return None

    async def update(self, remote_id: str, changes: dict[str, Any], current: RemoteItem) -> None:
        body = self.payload({k: v for k, v in changes.items() if k != "due"}, current)
        if body:
            await self.request("PATCH", f"{self._issues}/{_number(remote_id)}", json=body)


async def _read(resp: aiohttp.ClientResponse) -> bytes:
    """The body, at most :data:`BODY_LIMIT` + 1 bytes of it (more is refused, never buffered)."""
    chunks, size = [], 0
    async for chunk in resp.content.iter_chunked(65536):
        chunks.append(chunk)
        size += len(chunk)
        if size > BODY_LIMIT:
            break
    return b"".join(chunks)


def _number(remote_id: str) -> int:
    if not str(remote_id).isdigit():
        raise NotFound(f"{remote_id!r} is not a GitHub issue number")
    return int(remote_id)


def _reason(body: bytes) -> str:
    """GitHub's ``message`` and what its ``errors`` say, else the start of the body."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body[:200].decode("utf-8", "replace").strip() or "(no body)"
    if not isinstance(data, dict):
        return "(unexpected body)"
    message = str(data.get("message") or "(no message)")
    details = []
    for e in data.get("errors") or []:
        if isinstance(e, dict):
            details.append(str(e.get("message") or " ".join(str(e[k]) for k in ("field", "code") if e.get(k))))
        elif isinstance(e, str):
            details.append(e)
    return message + (f" ({'; '.join(details)})" if details else "")
