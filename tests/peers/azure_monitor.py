"""An Azure Monitor Logs Ingestion API stand-in on 127.0.0.1, with the Entra ID token endpoint in
front of it, answering as Microsoft documents them ("Logs Ingestion API in Azure Monitor", "Microsoft
identity platform and the OAuth 2.0 client credentials flow", the ingestion SDKs' troubleshooting
guides):

- ``POST /{tenant}/oauth2/v2.0/token`` (form): ``grant_type=client_credentials`` (else 400
  ``unsupported_grant_type``), a known tenant (else 400 ``invalid_request`` AADSTS90002), a known
  client (else 400 ``unauthorized_client`` AADSTS700016), its secret (else 401 ``invalid_client``
  AADSTS7000215), a scope ending in ``/.default`` (else 400 ``invalid_scope`` AADSTS1002012).
  Answers ``{"token_type": "Bearer", "expires_in": N, "access_token": ...}``; a token is good for
  ``token_lifetime`` seconds and for the audience its scope names (``https://monitor.azure.com/``).
- ``POST /dataCollectionRules/{dcr}/streams/{stream}?api-version=2023-01-01``: a bearer token that
  is known, unexpired and for the Monitor audience (else 401); the app's role on the DCR (else 403
  ``OperationFailed``, as Azure words it); a known DCR (else 404) and a stream it declares (else
  400); the body gzipped or not (``Content-Encoding``), at most ``max_bytes`` once decompressed
  (else 413), a JSON array of objects (else 400). Accepted: 204 with ``x-ms-request-id``. Like
  Azure, columns the stream does not declare are dropped (and noted in :attr:`undeclared`), and a
  value of the wrong type is noted in :attr:`mistyped`.

Every error carries Azure's body and its code in ``x-ms-error-code``; the 413 says what Azure's own SDK
tests read ("Maximum allowed content length: 1048576 bytes (1 MB)."). Stream declarations with a
column name Azure reserves (``Title``, ``Type``, ``id``...) are refused when the stand-in is made, as
Azure refuses such a table.

Faults for the next ingestion requests (``fail(kind, times=, ...)``): ``throttled`` (429 with
``Retry-After``), ``error`` (500), ``unavailable`` (503 with ``Retry-After``), ``bad_request``
(400 with Azure's error body), ``unauthorized`` (401: as if the token were revoked),
``forbidden_token`` (403 ``InvalidAuthenticationToken``, as Azure Monitor's query API answers an
invalid token), ``timeout`` (answer after ``seconds``), ``reset`` (the connection dropped). ``fail_token(kind)`` does the same
for the token endpoint (``unavailable``, ``throttled``).
"""

from __future__ import annotations

import asyncio
import datetime
import itertools
import json
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
CLIENT_ID = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
SECRET = "s3cr3t~Qx8Q~not-a-real-client-secret-0123"
DCR = "dcr-00112233445566778899aabbccddeeff"
STREAM = "Custom-TidingsAlerts_CL"
AUDIENCE = "https://monitor.azure.com/"
MAX_BYTES = 1024 * 1024
_tokens = itertools.count(1)


@dataclass
class Fault:
    kind: str
    retry_after: int | None = 0
    seconds: float = 0.0
    message: str = "The request body is invalid."


@dataclass
class Row:
    record: dict[str, Any]
    request: int
    gzipped: bool


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    """An ``Azure.Core.Foundations.ErrorResponse``, its code also in ``x-ms-error-code`` (the REST spec)."""
    return web.json_response({"error": {"code": code, "message": message}}, status=status,
                             headers={"x-ms-error-code": code, **(headers or {})})


def _aad_error(status: int, error: str, code: int, text: str, headers: dict[str, str] | None = None) -> web.Response:
    """Entra's token error, shaped like the sample of "OAuth 2.0 client credentials flow"."""
    trace, correlation, stamp = uuid.uuid4(), uuid.uuid4(), "2026-12-06 10:10:19Z"
    description = f"AADSTS{code}: {text}\r\nTrace ID: {trace}\r\nCorrelation ID: {correlation}\r\nTimestamp: {stamp}"
    return web.json_response({"error": error, "error_description": description, "error_codes": [code],
                              "timestamp": stamp, "trace_id": str(trace), "correlation_id": str(correlation),
                              "error_uri": f"https://login.microsoftonline.com/error?code={code}"},
                             status=status, headers=headers)


RESERVED_COLUMNS = frozenset({"_ResourceId", "id", "_SubscriptionId", "TenantId", "Type", "UniqueId", "Title"})
"""Names a custom table can't have ("Logs Ingestion API in Azure Monitor", Supported tables)."""


_TYPES: dict[str, Any] = {"string": str, "boolean": bool, "dynamic": (dict, list), "int": int, "long": int,
                          "real": (int, float)}


@dataclass
class AzureMonitor:
    tenant: str = TENANT
    client_id: str = CLIENT_ID
    secret: str = SECRET
    dcr: str = DCR
    columns: dict[str, dict[str, str]] = field(default_factory=lambda: {STREAM: {"TimeGenerated": "datetime"}})
    """Stream -> column -> type, as the DCR's streamDeclarations say."""
    token_lifetime: float = 3600.0
    role: bool = True
    """Whether the app has "Monitoring Metrics Publisher" on the DCR."""
    max_bytes: int = MAX_BYTES
    port: int = 0
    rows: list[Row] = field(default_factory=list)
    requests: list[int] = field(default_factory=list)
    """Records in each accepted ingestion request."""
    ingest_calls: int = 0
    token_requests: int = 0
    issued: dict[str, tuple[str, float]] = field(default_factory=dict)
    """Token -> (audience, expiry as time.monotonic())."""
    bodies: list[bytes] = field(default_factory=list)
    """Every request body both endpoints received, decompressed (to look for secrets)."""
    undeclared: set[str] = field(default_factory=set)
    mistyped: set[str] = field(default_factory=set)
    _faults: deque[Fault] = field(default_factory=deque)
    _token_faults: deque[Fault] = field(default_factory=deque)

    def __post_init__(self) -> None:
        for stream, columns in self.columns.items():
            if reserved := RESERVED_COLUMNS & set(columns):
                raise ValueError(f"{stream}: Azure refuses a table with the reserved column names {sorted(reserved)}")

    # -- control ----------------------------------------------------------------------------
    def fail(self, kind: str, times: int = 1, **kw: Any) -> None:
        self._faults.extend(Fault(kind, **kw) for _ in range(times))

    def fail_token(self, kind: str, times: int = 1, **kw: Any) -> None:
        self._token_faults.extend(Fault(kind, **kw) for _ in range(times))

    def revoke(self) -> None:
        self.issued.clear()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def records(self) -> list[dict[str, Any]]:
        return [r.record for r in self.rows]

    async def start(self) -> None:
        app = web.Application(client_max_size=16 * MAX_BYTES)
        app.router.add_post("/{tenant}/oauth2/v2.0/token", self._token)
        app.router.add_post("/dataCollectionRules/{dcr}/streams/{stream}", self._ingest)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        await self._runner.cleanup()

    # -- Entra ID -----------------------------------------------------------------------------
    async def _token(self, request: web.Request) -> web.StreamResponse:
        self.token_requests += 1
        self.bodies.append(await request.read())
        fault = self._token_faults.popleft() if self._token_faults else None
        if fault is not None:
            if fault.kind == "unavailable":
                # The client credentials page documents no transient answer; tidings keys on the status.
                return _aad_error(503, "temporarily_unavailable", 90006, "The service is temporarily unavailable.")
            if fault.kind == "throttled":
                return _aad_error(429, "temporarily_unavailable", 90006, "The service is temporarily unavailable.",
                                  {"Retry-After": str(fault.retry_after)})
        form = await request.post()
        if form.get("grant_type") != "client_credentials":
            return _aad_error(400, "unsupported_grant_type", 70003, "The app requested an unsupported grant type.")
        if request.match_info["tenant"] != self.tenant:
            return _aad_error(400, "invalid_request", 90002, f"Tenant '{request.match_info['tenant']}' not found.")
        if form.get("client_id") != self.client_id:
            return _aad_error(400, "unauthorized_client", 700016,
                              f"Application with identifier '{form.get('client_id')}' was not found in the directory.")
        if form.get("client_secret") != self.secret:
            return _aad_error(401, "invalid_client", 7000215,
                              "Invalid client secret provided. Ensure the secret being sent in the request is the"
                              " client secret value, not the client secret ID, for a secret added to app"
                              f" '{self.client_id}'.")
        scope = str(form.get("scope") or "")
        if not scope.endswith("/.default"):
            return _aad_error(400, "invalid_scope", 1002012, f"The provided value for scope {scope} is not valid.")
        token = f"eyJ0eXAiOiJKV1Qi.stand-in-{next(_tokens)}-{uuid.uuid4().hex}"
        self.issued[token] = (scope.removesuffix("/.default"), time.monotonic() + self.token_lifetime)
        return web.json_response({"token_type": "Bearer", "expires_in": int(self.token_lifetime),
                                  "ext_expires_in": int(self.token_lifetime), "access_token": token})

    # -- ingestion ----------------------------------------------------------------------------
    def _authorized(self, request: web.Request) -> web.Response | None:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme != "Bearer" or not token:
            return _error(401, "InvalidAuthenticationToken", "An authentication token is required.")
        audience, expires = self.issued.get(token, ("", 0.0))
        if not audience:
            return _error(401, "InvalidAuthenticationToken", "The authentication token provided is not valid.")
        if time.monotonic() >= expires:
            return _error(401, "InvalidAuthenticationToken", "The authentication token provided has expired.")
        if audience != AUDIENCE:
            return _error(401, "InvalidAuthenticationTokenAudience",
                          f"The authentication token has the wrong audience '{audience}'.")
        if not self.role:
            return _error(403, "OperationFailed",
                          "The authentication token provided does not have access to ingest data for the data"
                          f" collection rule with immutable Id '{self.dcr}' PipelineAccessResult: AccessGranted:"
                          " False, IsRbacPresent: False, IsDcrDceBindingValid: , DcrArmId: /subscriptions/SUB/"
                          "resourceGroups/RG/providers/Microsoft.Insights/dataCollectionRules/tidings, Message:"
                          " Required authorization action was not found for tenantId TENANT objectId OBJECT on"
                          " resourceId DCR ConfigurationId: CONFIG..")
        return None

    async def _ingest(self, request: web.Request) -> web.StreamResponse:
        self.ingest_calls += 1
        raw = await request.read()
        self.bodies.append(raw)
        fault = self._faults.popleft() if self._faults else None
        if fault is not None:
            if fault.kind == "reset":
                assert request.transport is not None
                request.transport.abort()
                raise asyncio.CancelledError
            if fault.kind == "timeout":
                await asyncio.sleep(fault.seconds)
            if fault.kind == "unauthorized":
                self.revoke()
            if fault.kind == "forbidden_token":
                self.revoke()
                return _error(403, "InvalidAuthenticationToken", "The access token is invalid.")
        if (refused := self._authorized(request)) is not None:
            return refused
        if request.query.get("api-version") != "2023-01-01":
            return _error(400, "InvalidApiVersion", f"The api-version '{request.query.get('api-version')}' is invalid.")
        dcr, stream = request.match_info["dcr"], request.match_info["stream"]
        if dcr != self.dcr:
            return _error(404, "NotFound", f"Data collection rule with immutable Id '{dcr}' not found.")
        if stream not in self.columns:
            return _error(400, "InvalidStream", f"Stream '{stream}' is not declared in data collection rule '{dcr}'.")
        if fault is not None and fault.kind in ("throttled", "error", "unavailable", "bad_request"):
            status = {"throttled": 429, "error": 500, "unavailable": 503, "bad_request": 400}[fault.kind]
            code = {429: "TooManyRequests", 500: "InternalServerError", 503: "ServiceUnavailable",
                    400: "InvalidRequest"}[status]
            headers = {"Retry-After": str(fault.retry_after)} if status in (429, 503) else None
            return _error(status, code, fault.message if status == 400 else code, headers)
        # aiohttp has decompressed a gzip body already (a body that isn't gzip is refused with 400).
        gzipped, body = request.headers.get("Content-Encoding", "").lower() == "gzip", raw
        if len(body) > self.max_bytes:
            return _error(413, "ContentLengthLimitExceeded",
                          f"Maximum allowed content length: {self.max_bytes} bytes"
                          f"{' (1 MB)' if self.max_bytes == MAX_BYTES else ''}. Provided content length:"
                          f" {len(body)} bytes.")
        try:
            records = json.loads(body)
        except ValueError:
            return _error(400, "InvalidJson", "The request body is not valid JSON.")
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            return _error(400, "InvalidPayload", "The request body must be a JSON array of objects.")
        declared = self.columns[stream]
        self.requests.append(len(records))
        n = len(self.requests)
        for record in records:
            self.undeclared |= set(record) - set(declared)
            kept = {k: v for k, v in record.items() if k in declared}
            for column, value in kept.items():
                if not self._typed(declared[column], value):
                    self.mistyped.add(column)
            self.rows.append(Row(kept, n, gzipped))
        return web.Response(status=204, headers={"x-ms-request-id": str(uuid.uuid4())})

    @staticmethod
    def _typed(kind: str, value: Any) -> bool:
        if value is None:
            return True
        if kind == "datetime":
            try:
                datetime.datetime.fromisoformat(str(value))
            except ValueError:
                return False
            return True
        wanted = _TYPES.get(kind)
        return wanted is None or isinstance(value, wanted)
