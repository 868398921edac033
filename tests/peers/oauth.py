"""One local authorization server on 127.0.0.1 that answers like GitHub, Slack (v2, token rotation),
Google, Microsoft (Entra ID v2) and Atlassian 3LO, each under its own path prefix:

    auth = OAuthServer()
    await auth.start()
    auth.register("github", "cid", "secret", "http://127.0.0.1:8000/oauth/gh/callback")
    auth.settings("github")   # {client_id, authorize_url, token_url, api_url} for ``oauth.github``
    auth.deny = True          # the person clicks *Deny*: error=access_denied
    auth.fail("token", 429, retry_after=7)   # the next token request; also 500, delay=...
    auth.stall("token", 0.5)  # answer normally, later (two refreshes at once meet)
    auth.access_ttl["slack"] = 5;  auth.advance(10)   # tokens expire without waiting
    auth.token_requests["atlassian refresh_token"], auth.max_concurrent_refreshes, auth.issued, auth.revoked

Endpoints (``{p}`` = the prefix):

- github: ``/github/login/oauth/authorize``, ``/github/login/oauth/access_token`` (form, JSON only
  with ``Accept: application/json``; errors HTTP 200 ``{error, error_description, error_uri}``;
  ``app=True`` (default) answers GitHub App user tokens: ``ghu_`` 8 h + ``ghr_`` refresh, rotating),
  ``GET /github/api/user``;
- slack: ``/slack/oauth/v2/authorize``, ``/slack/api/oauth.v2.access`` (HTTP 200 ``{ok: false,
  error}``; rotation: ``xoxe.xoxb-1-`` 12 h, ``xoxe-1-`` refresh; team, bot_user_id, app_id,
  authed_user), ``/slack/api/auth.test``;
- google: ``/google/o/oauth2/v2/auth``, ``/google/token`` (400 ``invalid_grant``; a refresh token
  only with ``access_type=offline&prompt=consent``; a refresh answers none), ``/google/oauth2/v3/userinfo``
  and ``/google/v1/userinfo``;
- microsoft: ``/microsoft/{tenant}/oauth2/v2.0/authorize|token`` (400 with ``AADSTS`` descriptions;
  a refresh token only with ``offline_access``; rotates), ``/microsoft/v1.0/me``;
- atlassian: ``/atlassian/authorize`` (``audience=api.atlassian.com`` required),
  ``/atlassian/oauth/token`` (JSON body only; rotates; a stale refresh token: 403 ``invalid_grant``
  "Unknown or invalid refresh token."), ``/atlassian/oauth/token/accessible-resources``, ``/atlassian/me``.

Everywhere: PKCE S256 required (plain refused) even for confidential clients; the verifier checked;
codes single use (a reuse revokes what the code gave, RFC 6749 §4.1.2) and expiring after 10 minutes;
``redirect_uri`` registered exactly and equal at the token endpoint; the client secret checked.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
import time
import uuid
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode

import orjson
from aiohttp import web

from .oauth_answers import Answer, html_page, json_reply

PROVIDERS = ("github", "slack", "google", "microsoft", "atlassian")
CODE_TTL = 600.0
ROTATES = {"github": True, "slack": True, "google": False, "microsoft": True, "atlassian": True}
ACCESS_TTL = {"github": 28800.0, "slack": 43200.0, "google": 3599.0, "microsoft": 4487.0, "atlassian": 3600.0}
REFRESH_TTL: dict[str, float | None] = {"github": 15897600.0, "slack": None, "google": None, "microsoft": None,
                                        "atlassian": None}
PREFIX = {"github": ("gho_", "ghu_", "ghr_"), "slack": ("xoxb-", "xoxe.xoxb-1-", "xoxe-1-"),
          "google": ("", "ya29.a0", "1//0g"), "microsoft": ("", "eyJ0eXAiOiJKV1Qi.", "0.AXoA"),
          "atlassian": ("", "eyJraWQiOiJhdXRoLmF0bGFzc2lhbi5jb20t.", "eyJraWQiOiI1MWE2YjE2MjRlMTQ5ZDFiYTdhM2VmZjciLCJhbGciOiJIUzI1NiJ9.")}
"""Per provider: (a token that never expires, an expiring access token, a refresh token)."""


def challenge_of(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode()


@dataclass
class Client:
    provider: str
    client_id: str
    client_secret: str
    redirect_uris: set[str]


@dataclass
class Code:
    provider: str
    client_id: str
    redirect_uri: str
    challenge: str
    scopes: list[str]
    expires_at: float
    offline: bool
    grant: str
    used: bool = False


@dataclass
class Token:
    value: str
    kind: str  # access | refresh
    provider: str
    client_id: str
    grant: str
    scopes: list[str]
    expires_at: float | None
    revoked: bool = False


@dataclass
class Fault:
    status: int
    times: int
    retry_after: float | None = None
    delay: float = 0.0


@dataclass
class Person:
    """Who clicks *Allow* (the account facts each provider's API answers)."""

    login: str = "octocat"
    github_id: int = 583231
    email: str = "grace@example.com"
    name: str = "Grace Hopper"
    slack_team: dict[str, str] = field(default_factory=lambda: {"id": "T0TIDINGS", "name": "Tidings Test"})
    slack_user: str = "U0GRACE"
    google_sub: str = "109876543210987654321"
    microsoft_id: str = "87d349ed-44d7-43e1-9a83-5f2406dee5bd"
    atlassian_id: str = "5b10ac8d82e05b22cc7d4ef5"
    sites: list[dict[str, Any]] = field(default_factory=lambda: [{
        "id": "1324a887-45db-1bf4-1e99-ef0ff456d421", "url": "https://tidings-test.atlassian.net",
        "name": "tidings-test", "scopes": ["read:jira-work", "write:jira-work", "read:jira-user"],
        "avatarUrl": "https://site-admin-avatar-cdn.prod.public.atl-paas.net/avatars/240/flag.png"}])


class OAuthServer:
    def __init__(self) -> None:
        self.clients: dict[tuple[str, str], Client] = {}
        self.codes: dict[str, Code] = {}
        self.tokens: dict[str, Token] = {}
        self.person = Person()
        self.deny = False
        """The person clicks *Deny*: the authorize endpoint answers ``error=access_denied``."""
        self.github_app = True
        """GitHub App with expiring user tokens (else an OAuth App: one token that never expires)."""
        self.access_ttl: dict[str, float] = dict(ACCESS_TTL)
        self.refresh_ttl: dict[str, float | None] = dict(REFRESH_TTL)
        self.code_ttl = CODE_TTL
        self.faults: dict[str, deque[Fault]] = {"authorize": deque(), "token": deque(), "account": deque()}
        self.token_requests: Counter[str] = Counter()
        """``"<provider> <grant_type>"`` -> requests that reached the token endpoint."""
        self.issued: Counter[str] = Counter()
        """``"<provider> access|refresh"`` -> tokens issued."""
        self.revoked: Counter[str] = Counter()
        """``"<provider> access|refresh"`` -> tokens revoked (rotated away, or from a reused code)."""
        self.authorizations: list[dict[str, str]] = []
        """The query of every authorization request (what a test checks tidings asked for)."""
        self.active_refreshes = 0
        self.max_concurrent_refreshes = 0
        self.concurrent_refreshes = 0
        """Refresh requests that arrived while another refresh of the same grant was being answered."""
        self._refreshing: Counter[str] = Counter()
        self._clock = 0.0
        self._runner: web.AppRunner | None = None
        self.port = 0

    # -- life ----------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    # -- what a test sets up -----------------------------------------------------------------------------
    def register(self, provider: str, client_id: str, client_secret: str, *redirect_uris: str) -> Client:
        assert provider in PROVIDERS, provider
        client = self.clients.setdefault((provider, client_id), Client(provider, client_id, client_secret, set()))
        client.client_secret = client_secret
        client.redirect_uris.update(redirect_uris)
        return client

    def settings(self, provider: str, tenant: str = "organizations") -> dict[str, str]:
        """``authorize_url``, ``token_url``, ``api_url`` for ``oauth.<provider>``."""
        base = f"{self.url}/{provider}"
        urls = {
            "github": (f"{base}/login/oauth/authorize", f"{base}/login/oauth/access_token", f"{base}/api"),
            "slack": (f"{base}/oauth/v2/authorize", f"{base}/api/oauth.v2.access", f"{base}/api"),
            "google": (f"{base}/o/oauth2/v2/auth", f"{base}/token", base),
            "microsoft": (f"{base}/{tenant}/oauth2/v2.0/authorize", f"{base}/{tenant}/oauth2/v2.0/token",
                          f"{base}/v1.0"),
            "atlassian": (f"{base}/authorize", f"{base}/oauth/token", base),
        }[provider]
        return dict(zip(("authorize_url", "token_url", "api_url"), urls, strict=True))

    def fail(self, endpoint: str, status: int, *, times: int = 1, retry_after: float | None = None,
             delay: float = 0.0) -> None:
        """The next ``times`` requests to ``endpoint`` (authorize, token, account) answer ``status``
        (with ``Retry-After``), after ``delay`` seconds (longer than the client's timeout: a timeout)."""
        self.faults[endpoint].append(Fault(status, times, retry_after, delay))

    def stall(self, endpoint: str, seconds: float, *, times: int = 1) -> None:
        """The next ``times`` requests to ``endpoint`` are answered as usual, after ``seconds``."""
        self.faults[endpoint].append(Fault(0, times, None, seconds))

    def now(self) -> float:
        return time.time() + self._clock

    def advance(self, seconds: float) -> None:
        """Move the server's clock on: codes and tokens expire without waiting."""
        self._clock += seconds

    def valid(self, token: str) -> bool:
        t = self.tokens.get(token)
        return t is not None and not t.revoked and (t.expires_at is None or t.expires_at > self.now())

    def live(self, provider: str, kind: str = "access") -> list[str]:
        """The ``kind`` tokens of ``provider`` that still work."""
        return [v for v, t in self.tokens.items() if t.provider == provider and t.kind == kind and self.valid(v)]

    # -- the server ----------------------------------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        provider, _, rest = request.path.lstrip("/").partition("/")
        rest = "/" + rest
        if provider not in PROVIDERS:
            return web.json_response({"error": "not_found"}, status=404)
        if rest.endswith(("/authorize", "/o/oauth2/v2/auth")) and request.method == "GET":
            endpoint = "authorize"
        elif rest in ("/login/oauth/access_token", "/api/oauth.v2.access", "/token", "/oauth/token") \
                or rest.endswith("/oauth2/v2.0/token"):
            endpoint = "token"
        else:
            endpoint = "account"
        if endpoint != "token":
            failed = await self._failed(endpoint)
            if failed is not None:
                return failed
        if endpoint == "authorize":
            return self._authorize(provider, request)
        if endpoint == "token":
            if request.method != "POST":
                return web.json_response({"error": "invalid_request"}, status=405)
            return await self._token(provider, request)
        return self._account(provider, rest, request)

    async def _failed(self, endpoint: str) -> web.Response | None:
        """The scripted fault of ``endpoint``'s next request (after its delay), or None to answer as usual."""
        fault = self._fault(endpoint)
        if fault is None:
            return None
        if fault.delay:
            await asyncio.sleep(fault.delay)
        if not fault.status:
            return None
        headers = {"Retry-After": str(int(fault.retry_after))} if fault.retry_after is not None else {}
        return json_reply(fault.status, {"error": "temporarily_unavailable",
                                    "error_description": f"scripted HTTP {fault.status}"}, headers)

    def _fault(self, endpoint: str) -> Fault | None:
        queue = self.faults[endpoint]
        if not queue:
            return None
        fault = queue[0]
        fault.times -= 1
        if fault.times <= 0:
            queue.popleft()
        return fault

    # -- authorize -----------------------------------------------------------------------------------------
    def _authorize(self, provider: str, request: web.Request) -> web.StreamResponse:
        q = dict(request.query)
        self.authorizations.append(q)
        client = self.clients.get((provider, q.get("client_id", "")))
        if client is None:
            return html_page(400, f"{provider}: unknown client_id (the application could not be found)")
        redirect = q.get("redirect_uri", "")
        if redirect not in client.redirect_uris:  # never redirect to an address not registered
            return html_page(400, f"{provider}: redirect_uri is not registered for this application")
        state = q.get("state", "")
        if not state:
            return html_page(400, f"{provider}: state is required")

        def back(**params: str) -> web.StreamResponse:
            raise web.HTTPFound(f"{redirect}{'&' if '?' in redirect else '?'}{urlencode({**params, 'state': state})}")

        if q.get("response_type") != "code":
            return back(error="unsupported_response_type", error_description="response_type must be code")
        if not q.get("code_challenge") or q.get("code_challenge_method") != "S256":
            return back(error="invalid_request",
                        error_description="PKCE required: code_challenge with code_challenge_method=S256")
        scopes = [s for s in q.get("scope", "").replace(",", " ").split() if s]
        if provider == "atlassian" and q.get("audience") != "api.atlassian.com":
            return html_page(400, "atlassian: audience must be api.atlassian.com")
        if self.deny:
            return back(error="access_denied", error_description="The user denied the request")
        offline = {"google": q.get("access_type") == "offline" and "consent" in q.get("prompt", "").split(),
                   "microsoft": "offline_access" in scopes, "atlassian": "offline_access" in scopes,
                   "github": self.github_app, "slack": True}[provider]
        code = secrets.token_hex(10) if provider == "github" else secrets.token_urlsafe(24)
        self.codes[code] = Code(provider, client.client_id, redirect, q["code_challenge"], scopes,
                                self.now() + self.code_ttl, offline, uuid.uuid4().hex)
        return back(code=code)

    # -- token -----------------------------------------------------------------------------------------------
    async def _token(self, provider: str, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        if provider == "atlassian":
            if not request.content_type.endswith("json"):
                return json_reply(415, {"error": "unsupported_media_type", "error_description": "a JSON body is required"})
            try:
                body = {k: str(v) for k, v in orjson.loads(raw).items()}
            except (orjson.JSONDecodeError, AttributeError):
                return json_reply(400, {"error": "invalid_request", "error_description": "malformed JSON"})
        else:
            body = dict(parse_qsl(raw.decode("utf-8", "replace")))
        basic = request.headers.get("Authorization", "")
        if basic.startswith("Basic "):
            cid, _, secret = base64.b64decode(basic[6:]).decode().partition(":")
            body.setdefault("client_id", cid)
            body.setdefault("client_secret", secret)
        grant_type = body.get("grant_type", "")
        self.token_requests[f"{provider} {grant_type}"] += 1
        if grant_type != "refresh_token":
            return await self._failed("token") or self._grant(provider, grant_type, body, request)
        key = self.tokens[body["refresh_token"]].grant if body.get("refresh_token") in self.tokens else ""
        if key and self._refreshing[key]:
            self.concurrent_refreshes += 1
        self._refreshing[key] += 1
        self.active_refreshes += 1
        self.max_concurrent_refreshes = max(self.max_concurrent_refreshes, self.active_refreshes)
        try:
            return await self._failed("token") or self._grant(provider, grant_type, body, request)
        finally:
            self.active_refreshes -= 1
            self._refreshing[key] -= 1

    def _grant(self, provider: str, grant_type: str, body: dict[str, str], request: web.Request) -> web.Response:
        answer = Answer(provider, request.headers.get("Accept", ""), self.now())
        client = self.clients.get((provider, body.get("client_id", "")))
        if client is None or not secrets.compare_digest(client.client_secret, body.get("client_secret", "")):
            return answer.bad_client()
        if grant_type == "authorization_code":
            return self._exchange(client, body, answer)
        if grant_type == "refresh_token":
            return self._refresh(client, body, answer)
        return answer.error("unsupported_grant_type", "grant_type must be authorization_code or refresh_token")

    def _exchange(self, client: Client, body: dict[str, str], answer: Answer) -> web.Response:
        code = self.codes.get(body.get("code", ""))
        if code is None or code.client_id != client.client_id or code.provider != client.provider:
            return answer.bad_code("unknown")
        if code.used:  # RFC 6749 §4.1.2: a reused code revokes what it gave
            self._revoke_grant(code.grant)
            return answer.bad_code("used")
        code.used = True
        if code.expires_at <= self.now():
            return answer.bad_code("expired")
        if body.get("redirect_uri") != code.redirect_uri:
            return answer.redirect_mismatch()
        verifier = body.get("code_verifier", "")
        if not verifier or not secrets.compare_digest(challenge_of(verifier), code.challenge):
            return answer.bad_verifier(missing=not verifier)
        return answer.tokens(self._issue(client, code.grant, code.scopes, refresh=code.offline), self.person)

    def _refresh(self, client: Client, body: dict[str, str], answer: Answer) -> web.Response:
        old = self.tokens.get(body.get("refresh_token", ""))
        if old is None or old.kind != "refresh" or old.client_id != client.client_id or not self.valid(old.value):
            return answer.bad_refresh()
        rotates = ROTATES[client.provider] and (client.provider != "github" or self.github_app)
        if rotates:
            self._revoke(old)
        return answer.tokens(self._issue(client, old.grant, old.scopes, refresh=rotates), self.person, refreshed=True)

    def _issue(self, client: Client, grant: str, scopes: list[str], *, refresh: bool) -> dict[str, Token]:
        p = client.provider
        never, access_prefix, refresh_prefix = PREFIX[p]
        expiring = p != "github" or self.github_app
        ttl = self.access_ttl[p] if expiring else None
        out = {"access": Token((access_prefix if expiring else never) + secrets.token_urlsafe(30), "access", p,
                               client.client_id, grant, scopes, self.now() + ttl if ttl else None)}
        if refresh and expiring:
            rttl = self.refresh_ttl[p]
            out["refresh"] = Token(refresh_prefix + secrets.token_urlsafe(40), "refresh", p, client.client_id, grant,
                                   scopes, self.now() + rttl if rttl else None)
        for t in out.values():
            self.tokens[t.value] = t
            self.issued[f"{p} {t.kind}"] += 1
        return out

    def _revoke(self, token: Token) -> None:
        if not token.revoked:
            token.revoked = True
            self.revoked[f"{token.provider} {token.kind}"] += 1

    def _revoke_grant(self, grant: str) -> None:
        for t in list(self.tokens.values()):
            if t.grant == grant:
                self._revoke(t)

    # -- account endpoints -------------------------------------------------------------------------------------
    def _account(self, provider: str, rest: str, request: web.Request) -> web.StreamResponse:
        auth = request.headers.get("Authorization", "")
        token = auth.split(" ", 1)[1] if auth.startswith(("Bearer ", "token ")) else ""
        t = self.tokens.get(token)
        ok = t is not None and t.kind == "access" and t.provider == provider and self.valid(token)
        who = self.person
        if provider == "github" and rest == "/api/user" and request.method == "GET":
            if not ok:
                return json_reply(401, {"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest",
                                   "status": "401"})
            return json_reply(200, {"login": who.login, "id": who.github_id, "type": "User", "name": who.name,
                               "email": who.email, "html_url": f"https://github.com/{who.login}"})
        if provider == "slack" and rest == "/api/auth.test":
            if not ok:
                expired = t is not None and not t.revoked
                return json_reply(200, {"ok": False, "error": "token_expired" if expired else "invalid_auth"})
            return json_reply(200, {"ok": True, "url": f"https://{who.slack_team['name'].lower().replace(' ', '')}.slack.com/",
                               "team": who.slack_team["name"], "user": "tidings", "team_id": who.slack_team["id"],
                               "user_id": "U0TIDINGSBOT", "bot_id": "B0TIDINGS", "is_enterprise_install": False})
        if provider == "google" and rest in ("/oauth2/v3/userinfo", "/v1/userinfo"):
            if not ok:
                return json_reply(401, {"error": "invalid_request", "error_description": "Invalid Credentials"},
                             {"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/", error="invalid_token"'})
            return json_reply(200, {"sub": who.google_sub, "email": who.email, "email_verified": True, "name": who.name})
        if provider == "microsoft" and rest == "/v1.0/me":
            if not ok:
                return json_reply(401, {"error": {"code": "InvalidAuthenticationToken",
                                             "message": "Access token has expired or is not yet valid.",
                                             "innerError": {"request-id": str(uuid.uuid4())}}})
            return json_reply(200, {"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users/$entity",
                               "id": who.microsoft_id, "displayName": who.name, "mail": who.email,
                               "userPrincipalName": who.email})
        if provider == "atlassian" and rest in ("/oauth/token/accessible-resources", "/me"):
            if not ok:
                return json_reply(401, {"code": 401, "message": "Unauthorized"})
            if rest == "/me":
                return json_reply(200, {"account_type": "atlassian", "account_id": who.atlassian_id, "email": who.email,
                                   "name": who.name, "account_status": "active"})
            return json_reply(200, who.sites)
        return json_reply(404, {"error": "not_found", "path": rest})
