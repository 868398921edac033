"""A ServiceNow instance stand-in on 127.0.0.1: the Table API's incident table and ``/oauth_token.do``.

As ServiceNow documents it (REST API reference, "Table API"; "OAuth client credentials"):

- ``GET /api/now/table/incident`` with ``sysparm_query`` (encoded query: ``field=value`` terms joined
  by ``^``; ``active=true``), ``sysparm_limit``, ``sysparm_fields`` -> ``{"result": [...]}``;
  ``POST`` -> 201 ``{"result": record}`` (a new ``sys_id``, ``number`` INC00100nn, ``state`` 1);
  ``GET|PATCH /api/now/table/incident/{sys_id}`` -> 200 ``{"result": record}``, 404 when unknown.
  ``work_notes`` written go to the journal (``notes``), not the record. Unknown fields are refused
  here (ServiceNow ignores them silently: a stand-in that refuses them catches typos).
  Resolving (``state`` 6) without ``close_code`` and ``close_notes`` is refused as the default data
  policy does (403 "Data Policy Exception"). Closed (7) and canceled (8) incidents are not active.
- Auth: Basic ``user:password``, or ``Bearer`` tokens from ``POST /oauth_token.do``
  (``grant_type=client_credentials``, form-encoded ``client_id`` / ``client_secret``) which expire.
- Errors as ServiceNow shapes them: ``{"error": {"message", "detail"}, "status": "failure"}``.

Test controls: ``fail(status, retry_after=..., times=..., method=...)``, ``reset_next()`` (drop the
connection before answering), ``drop_next_create()`` (create, then drop the connection), ``calls``.
"""

from __future__ import annotations

import base64
import hmac
import itertools
import json
import secrets
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any

from aiohttp import web

TABLE = "/api/now/table/incident"
FIELDS = {"short_description", "description", "impact", "urgency", "correlation_id", "correlation_display",
          "assignment_group", "caller_id", "category", "state", "close_code", "close_notes", "work_notes", "comments"}
INACTIVE = {"7", "8"}


@dataclass
class Fault:
    status: int
    times: int
    retry_after: str | None
    method: str | None


def _error(status: int, message: str, detail: str = "") -> web.Response:
    return web.json_response({"error": {"message": message, "detail": detail}, "status": "failure"}, status=status)


class ServiceNow:
    """One instance. ``await start()`` / ``await stop()``; ``url`` is its base URL."""

    def __init__(self, *, user: str = "tidings.integration", password: str = "sn-pass-0123456789",
                 client_id: str = "0123456789abcdef0123456789abcdef", client_secret: str = "sn-client-secret-xyz",
                 token_ttl: float = 1800.0) -> None:
        self.user, self.password = user, password
        self.client_id, self.client_secret, self.token_ttl = client_id, client_secret, token_ttl
        self.tokens: dict[str, float] = {}
        self.incidents: dict[str, dict[str, Any]] = {}
        self.notes: dict[str, list[str]] = {}
        self.calls: Counter[str] = Counter()
        self.faults: list[Fault] = []
        self.resets = 0
        self.drop_creates = 0
        self.acl_denied = False
        self._numbers = itertools.count(10001)
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> ServiceNow:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    # -- controls ------------------------------------------------------------------------------
    def fail(self, status: int, *, retry_after: float | str | None = None, times: int = 1,
             method: str | None = None) -> None:
        self.faults.append(Fault(status, times, None if retry_after is None else str(retry_after), method))

    def reset_next(self) -> None:
        self.resets += 1

    def drop_next_create(self) -> None:
        self.drop_creates += 1

    def expire_tokens(self) -> None:
        self.tokens.clear()

    def close(self, sys_id: str) -> None:
        """A person closes the incident (state 7, no longer active)."""
        self.incidents[sys_id].update(state="7", active="false")

    def delete(self, sys_id: str) -> None:
        del self.incidents[sys_id]

    def active(self) -> list[dict[str, Any]]:
        return [r for r in self.incidents.values() if r["active"] == "true"]

    # -- HTTP ----------------------------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        route = f"{request.method} {TABLE + '/{sys_id}' if path.startswith(TABLE + '/') else path}"
        self.calls[route] += 1
        if self.resets:
            self.resets -= 1
            assert request.transport is not None
            request.transport.abort()
            return web.Response(status=500)
        if path == "/oauth_token.do" and request.method == "POST":
            return await self._token(request)
        if not self._authenticated(request):
            return _error(401, "User Not Authenticated", "Required to provide Auth information")
        for fault in self.faults:
            if fault.times > 0 and fault.method in (None, request.method):
                fault.times -= 1
                headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
                response = _error(fault.status, f"HTTP {fault.status}", "injected")
                response.headers.update(headers)
                return response
        if not path.startswith(TABLE):
            return _error(400, "Invalid table", path)
        if self.acl_denied:
            return _error(403, "Operation Failed", "ACL Exception Insert Failed due to security constraints")
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            return _error(400, "Exception while reading request", "The payload is not valid JSON.")
        sys_id = path[len(TABLE) + 1:] if path.startswith(TABLE + "/") else ""
        if request.method == "GET" and not sys_id:
            return web.json_response({"result": self._query(request.query)})
        if request.method == "POST" and not sys_id:
            return await self._create(request, body)
        record = self.incidents.get(sys_id)
        if record is None:
            return _error(404, "No Record found", "Record doesn't exist or ACL restricts the record retrieval")
        if request.method == "GET":
            return web.json_response({"result": record})
        if request.method in ("PATCH", "PUT"):
            problem = self._write(record, body)
            return problem or web.json_response({"result": record})
        return _error(405, "Method not Supported", request.method)

    async def _token(self, request: web.Request) -> web.Response:
        form = await request.post()
        if form.get("grant_type") != "client_credentials":
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        if not (hmac.compare_digest(str(form.get("client_id", "")), self.client_id)
                and hmac.compare_digest(str(form.get("client_secret", "")), self.client_secret)):
            return web.json_response({"error": "access_denied", "error_description": "access_denied"}, status=401)
        token = secrets.token_urlsafe(24)
        self.tokens[token] = time.monotonic() + self.token_ttl
        return web.json_response({"access_token": token, "scope": "useraccount", "token_type": "Bearer",
                                  "expires_in": int(self.token_ttl)})

    def _authenticated(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        if header.startswith("Bearer "):
            expiry = self.tokens.get(header[7:])
            return expiry is not None and expiry > time.monotonic()
        if not header.startswith("Basic "):
            return False
        try:
            given = base64.b64decode(header[6:], validate=True).decode()
        except ValueError:
            return False
        return hmac.compare_digest(given.encode(), f"{self.user}:{self.password}".encode())

    def _query(self, query: Any) -> list[dict[str, Any]]:
        terms = [t for t in str(query.get("sysparm_query", "")).split("^") if t]
        wanted = [t.split("=", 1) for t in terms]
        rows = [r for r in self.incidents.values() if all(str(r.get(f, "")) == v for f, v in wanted)]
        limit = int(query.get("sysparm_limit", "10000"))
        fields = [f for f in str(query.get("sysparm_fields", "")).split(",") if f]
        return [{f: r.get(f, "") for f in fields} if fields else r for r in rows[:limit]]

    async def _create(self, request: web.Request, body: Any) -> web.StreamResponse:
        if not isinstance(body, dict):
            return _error(400, "Exception while reading request", "The payload is not valid JSON.")
        if unknown := set(body) - FIELDS:
            return _error(400, "Invalid field", ", ".join(sorted(unknown)))
        sys_id = uuid.uuid4().hex
        record = {"sys_id": sys_id, "number": f"INC00{next(self._numbers)}", "state": "1", "active": "true",
                  "impact": "3", "urgency": "3"}
        problem = self._write(record, body)
        if problem is not None:
            return problem
        self.incidents[sys_id] = record
        if self.drop_creates:
            self.drop_creates -= 1
            assert request.transport is not None
            request.transport.abort()
            return web.Response(status=500)
        return web.json_response({"result": record}, status=201)

    def _write(self, record: dict[str, Any], body: Any) -> web.Response | None:
        if not isinstance(body, dict) or (set(body) - FIELDS):
            return _error(400, "Invalid field", ", ".join(sorted(set(body or {}) - FIELDS)))
        for name in ("impact", "urgency"):
            if name in body and str(body[name]) not in ("1", "2", "3"):
                return _error(400, "Invalid value", f"{name} must be 1, 2 or 3")
        merged = {**record, **{k: str(v) for k, v in body.items() if k not in ("work_notes", "comments")}}
        if merged.get("state") == "6" and not (merged.get("close_code") and merged.get("close_notes")):
            return _error(403, "Operation Failed", "Data Policy Exception: the following fields are mandatory:"
                          " Resolution code, Resolution notes")
        record.update(merged)
        record["active"] = "false" if record["state"] in INACTIVE else "true"
        for kind in ("work_notes", "comments"):
            if body.get(kind):
                self.notes.setdefault(record["sys_id"], []).append(str(body[kind]))
        return None
