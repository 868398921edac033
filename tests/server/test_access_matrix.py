"""The access matrix: ONE table, every route of the app -> what it needs, and a walk of every route
× every kind of caller that checks the server answers as the table and the role bundles say.

To add a route: add its line to :data:`ACCESS` (the failure names the line to add). The value is a
permission of ``accounts.roles.PERMISSIONS``, ``SITE`` (site admins only), ``SIGNED_IN`` (anyone
with valid credentials) or ``PUBLIC`` (no credentials needed: probes, docs, webhooks, sign-in).
A resource route of the API exists twice, at ``/api/v1/...`` (project ``default``) and at
``/api/v1/projects/{project}/...``: :func:`both` writes the two lines."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.fernet import Fernet
from helpers import routes_of
from people import ROLE_NAMES, cast
from sqlalchemy import func, select

from tidings import Hub
from tidings.accounts import PERMISSIONS, ROLES, SITE
from tidings.accounts.principal import SIGNED_IN
from tidings.config import parse_config
from tidings.server import create_app
from tidings.store.tables import audit_log

PUBLIC = "public"
SESSION = "a session"
"""Acts on the session of the request's cookie (sign-out): every caller here has none, so 401."""
SCOPED = "/api/v1/projects/{project}"


def both(method: str, path: str, permission: str) -> dict[tuple[str, str], str]:
    """A project resource route: ``/api/v1<path>`` (project ``default``) and ``SCOPED<path>``."""
    return {(method, f"/api/v1{path}"): permission, (method, f"{SCOPED}{path}"): permission}


ACCESS: dict[tuple[str, str], str] = {
    **both("POST", "/messages", "message:send"),
    **both("GET", "/messages/{message_id}", "message:read"),
    **both("POST", "/messages/{message_id}/ack", "message:ack"),
    **both("DELETE", "/messages/{message_id}", "message:send"),
    **both("GET", "/messages", "message:read"),
    **both("GET", "/deliveries", "message:read"),
    **both("GET", "/deliveries/summary", "message:read"),
    **both("POST", "/deliveries/retry", "delivery:retry"),
    **both("POST", "/deliveries/{delivery_id}/retry", "delivery:retry"),
    **both("GET", "/integrations", "integration:read"),
    **both("POST", "/integrations/{name}/test", "integration:test"),
    **both("POST", "/integrations/{name}/enable", "integration:write"),
    **both("POST", "/integrations/{name}/disable", "integration:write"),
    **both("POST", "/integrations", "integration:write"),
    **both("GET", "/integrations/{name}", "integration:read"),
    **both("PATCH", "/integrations/{name}", "integration:write"),
    **both("DELETE", "/integrations/{name}", "integration:write"),
    **both("POST", "/integrations/test", "integration:test"),
    **both("GET", "/routes", "integration:read"),
    **both("POST", "/routes", "integration:write"),
    **both("GET", "/routes/{route}", "integration:read"),
    **both("PATCH", "/routes/{route}", "integration:write"),
    **both("DELETE", "/routes/{route}", "integration:write"),
    **both("POST", "/routes/{route}/move", "integration:write"),
    **both("GET", "/default-route", "integration:read"),
    **both("PUT", "/default-route", "integration:write"),
    **both("GET", "/tasks", "task:read"),
    **both("POST", "/tasks", "task:write"),
    **both("GET", "/tasks/{key}", "task:read"),
    **both("PATCH", "/tasks/{key}", "task:write"),
    **both("DELETE", "/tasks/{key}", "task:write"),
    **both("GET", "/recipients", "recipient:read"),
    **both("POST", "/recipients", "recipient:write"),
    **both("GET", "/recipients/{name}", "recipient:read"),
    **both("PATCH", "/recipients/{name}", "recipient:read"),  # + recipient:write, or their own quiet hours, time zone
    **both("DELETE", "/recipients/{name}", "recipient:write"),
    **both("GET", "/recipients/{name}/preferences", "recipient:read"),
    **both("PUT", "/recipients/{name}/preferences", "recipient:read"),  # + recipient:write, or their own
    **both("DELETE", "/recipients/{name}/preferences", "recipient:read"),  # + recipient:write, or their own
    **both("GET", "/topics", "recipient:read"),
    **both("GET", "/quiet-hours", "recipient:read"),
    **both("GET", "/recipient-groups", "recipient:read"),
    **both("POST", "/recipient-groups", "recipient:write"),
    **both("GET", "/recipient-groups/{name}", "recipient:read"),
    **both("PUT", "/recipient-groups/{name}/members", "recipient:write"),
    **both("DELETE", "/recipient-groups/{name}", "recipient:write"),
    ("GET", "/l/unsubscribe/{token}"): PUBLIC,
    ("POST", "/l/unsubscribe/{token}"): PUBLIC,
    ("GET", "/api/v1/integrations/kinds"): SIGNED_IN,
    ("GET", "/api/v1/config/revisions"): SITE,
    ("GET", "/api/v1/config/revisions/{number}"): SITE,
    ("GET", "/api/v1/config/diff"): SITE,
    ("POST", "/api/v1/config/rollback"): SITE,
    ("GET", "/api/v1/projects/{project}/config/revisions"): "integration:read",
    **both("GET", "/events", "event:read"),
    **both("GET", "/events/{event_id}", "event:read"),
    **both("POST", "/events/{event_id}/replay", "event:replay"),
    **both("GET", "/silences", "silence:read"),
    **both("POST", "/silences", "silence:write"),
    **both("DELETE", "/silences/{silence_id}", "silence:write"),
    **both("GET", "/inbox", "message:read"),
    **both("GET", "/connections", "integration:read"),
    **both("GET", "/connections/{name}", "integration:read"),
    **both("POST", "/connections/{name}/refresh", "integration:write"),
    **both("DELETE", "/connections/{name}", "integration:write"),
    **both("POST", "/sync", "sync:run"),
    **both("GET", "/sync/plan", "sync:run"),
    **both("GET", "/sync/runs", "logs:read"),
    **both("GET", "/sync/runs/{run_id}", "logs:read"),
    **both("GET", "/sync/conflicts", "task:read"),
    **both("GET", "/incidents", "logs:read"),
    **both("GET", "/incidents/{incident_id}", "logs:read"),
    **both("POST", "/sync/conflicts/{conflict_id}/resolve", "task:write"),
    **both("POST", "/preview", "message:read"),
    **both("POST", "/calendars", "task:read"),
    **both("GET", "/calendars", "task:read"),
    **both("DELETE", "/calendars/{feed_id}", "task:read"),
    ("GET", "/calendars/{token}.ics"): PUBLIC,
    ("GET", "/l/ack/{token}"): PUBLIC,
    ("POST", "/l/ack/{token}"): PUBLIC,
    ("GET", "/api/v1/users"): SITE,
    ("POST", "/api/v1/users"): SITE,
    ("POST", "/api/v1/users/{user}/disable"): SITE,
    ("POST", "/api/v1/users/{user}/enable"): SITE,
    ("GET", "/api/v1/projects"): SIGNED_IN,
    ("POST", "/api/v1/projects"): SITE,
    ("GET", "/api/v1/projects/{project}"): "project:read",
    ("GET", "/api/v1/projects/{project}/members"): "member:read",
    ("PUT", "/api/v1/projects/{project}/members/{user}"): "member:manage",
    ("DELETE", "/api/v1/projects/{project}/members/{user}"): "member:manage",
    ("GET", "/api/v1/tokens"): SIGNED_IN,
    ("POST", "/api/v1/tokens"): SIGNED_IN,
    ("DELETE", "/api/v1/tokens/{token_id}"): SIGNED_IN,
    ("GET", "/api/v1/audit"): "audit:read",
    ("GET", "/api/v1/projects/{project}/audit"): "audit:read",
    ("GET", "/api/v1/audit/verify"): SITE,
    ("GET", "/api/v1/secrets"): "secret:read",
    ("GET", "/api/v1/secrets/{name}"): "secret:read",
    ("PUT", "/api/v1/secrets/{name}"): "secret:write",
    ("DELETE", "/api/v1/secrets/{name}"): "secret:write",
    ("POST", "/auth/login"): PUBLIC,
    ("POST", "/auth/logout"): SESSION,
    ("GET", "/auth/me"): SIGNED_IN,
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/readyz"): PUBLIC,
    ("GET", "/metrics"): PUBLIC,
    ("GET", "/openapi.json"): PUBLIC,
    ("GET", "/docs"): PUBLIC,
    ("GET", "/redoc"): PUBLIC,
    ("GET", "/static/{path}"): PUBLIC,
    ("POST", "/hooks/{integration}"): PUBLIC,
    **both("POST", "/integrations/{name}/connect", "integration:write"),
    ("GET", "/oauth/{integration}/start"): SIGNED_IN,
    ("GET", "/oauth/{integration}/callback"): PUBLIC,
}
"""(method, path template) -> what the route needs."""

CALLERS = ("anonymous", *ROLE_NAMES, "other owner", "site admin", "scoped elsewhere")
"""Every kind of caller (see ``people.cast``): the roles act in the route's project; the other
owner owns another project only; the last is an owner of every project whose token is scoped to
another project."""
PROJECT = "alpha"
OTHER = "beta"
CONFIG = {
    "integrations": {
        "inbox": {"kind": "inbox"},
        "alpha-inbox": {"kind": "inbox", "project": PROJECT},
        "beta-inbox": {"kind": "inbox", "project": OTHER},
    },
    "routes": [{"project": PROJECT, "to": ["alpha-inbox"]}, {"project": OTHER, "to": ["beta-inbox"]}],
}


def declared(route: Any) -> str | None:
    """The permission the route's ``allow()`` dependency checks, if it has one."""
    found = [d.call.permission for d in _dependencies(getattr(route, "dependant", None)) if hasattr(d.call, "permission")]
    assert len(found) <= 1, found
    return found[0] if found else None


def _dependencies(dependant: Any) -> Iterator[Any]:
    for sub in getattr(dependant, "dependencies", ()):
        yield sub
        yield from _dependencies(sub)


def expected(caller: str, need: str, project: str) -> int | None:
    """The status ``caller`` must get (401 or 403), or None when it must get neither."""
    if need == PUBLIC:
        return None
    if caller == "anonymous" or need == SESSION:
        return 401
    if need == SIGNED_IN or caller == "site admin":
        return None
    if caller in ("other owner", "scoped elsewhere") or need == SITE:
        return 403
    return None if need in ROLES[caller] else 403


def is_ui(path: str) -> bool:
    """The web UI's pages: a client of the routes here, checked in tests/ui (a page without a
    session sends the person to the sign-in page rather than answering 401)."""
    return path == "/" or path == "/ui" or path.startswith("/ui/")


@pytest.fixture(scope="module")
def app_routes() -> list[tuple[str, str, Any]]:
    return [r for r in routes_of(create_app(Hub(parse_config(CONFIG)))) if not is_ui(r[1])]


def test_the_table_names_every_route_with_the_permission_it_declares(app_routes: list[tuple[str, str, Any]]) -> None:
    missing = [f'    ("{m}", "{p}"): {repr(declared(r)) if declared(r) else "PUBLIC or SIGNED_IN"},'
               for m, p, r in app_routes if (m, p) not in ACCESS]
    assert not missing, "routes missing from ACCESS in tests/server/test_access_matrix.py; add:\n" + "\n".join(missing)
    stale = sorted(set(ACCESS) - {(m, p) for m, p, _ in app_routes})
    assert not stale, f"ACCESS names routes the app doesn't have: {stale}"
    for method, path, route in app_routes:
        need = ACCESS[(method, path)]
        assert need in (*PERMISSIONS, SITE, PUBLIC, SIGNED_IN, SESSION), (method, path, need)
        has = declared(route)
        if need in (PUBLIC, SESSION) or (need == SIGNED_IN and has is None):
            assert has is None, f"{method} {path} declares allow({has!r}) but ACCESS says {need}"
        else:
            assert has == need, f"{method} {path} declares allow({has!r}) but ACCESS says {need!r}"
        if path.startswith("/api/"):
            assert need != PUBLIC, f"{method} {path}: nothing under /api is public"


def _body(spec: dict[str, Any], method: str, path: str) -> Any:
    """A minimal valid JSON body: the route's documented example, else {} (then an allowed caller
    gets a 422, which is neither 401 nor 403: the check still says what it must)."""
    op = spec["paths"].get(path, {}).get(method.lower(), {})
    media = op.get("requestBody", {}).get("content", {}).get("application/json")
    if media is None:
        return None
    examples = [e["value"] for e in media.get("examples", {}).values()]
    ref = media.get("schema", {}).get("$ref", "")
    examples += spec["components"]["schemas"].get(ref.rsplit("/", 1)[-1], {}).get("examples", [])
    body = examples[0] if examples else {}
    if isinstance(body, dict):  # a project named in an example is data, not the route's permission
        body.pop("project", None)
    return body


def _url(path: str, project: str) -> str:
    path = path.replace("{project}", project)
    return re.sub(r"\{[^}/]+\}", "nothing-has-this-id", path)


@pytest.mark.slow  # ~25 s: handed out first, not at the end of a run
async def test_every_route_answers_every_caller_as_the_table_says(
    make_api: Any, app_routes: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIDINGS_SECRET_KEY", Fernet.generate_key().decode())  # the secrets routes need a vault
    api = await make_api(CONFIG, dispatch=False)
    tokens = await cast(api.hub.store, ["default", PROJECT], OTHER)
    spec = (await api.get("/openapi.json", auth=False)).json()
    wrong: list[str] = []
    refused: list[tuple[str, str, str, str]] = []
    async with api.hub.store.read() as conn:
        seq = (await conn.execute(select(func.coalesce(func.max(audit_log.c.seq), 0)))).scalar()
    for method, path, _ in app_routes:
        need = ACCESS[(method, path)]
        project = PROJECT if "{project}" in path else "default"
        for caller in CALLERS:
            headers = {} if caller == "anonymous" else {"Authorization": f"Bearer {tokens[caller]}"}
            body = _body(spec, method, path)
            url = _url(path, project)
            r = await api.request(method, url, auth=False, headers=headers, **({"json": body} if body is not None else {}))
            want = expected(caller, need, project)
            ok = r.status_code == want if want is not None else r.status_code not in (401, 403)
            if ok and want == 403:
                refused.append((caller, f"{method} {url}", need, None if need == SITE else project))
                ok = r.json()["error"] == "forbidden" and repr(need) in r.json()["detail"]
            if not ok or r.status_code >= 500:
                wrong.append(f"{method} {path} as {caller}: {r.status_code} (want {want or 'not 401/403'}) {r.text[:200]}")
    assert not wrong, "\n".join(wrong)
    assert len(refused) >= 2 * sum(1 for _, p, _ in app_routes if p.startswith("/api/"))  # two callers never may
    # Every 403 left its audit entry: who, what, where, and the permission it lacked.
    async with api.hub.store.read() as conn:
        rows = (await conn.execute(select(audit_log).where(audit_log.c.seq > seq, audit_log.c.action == "access.denied")
                                   .order_by(audit_log.c.seq))).all()
    names = {caller: f"{caller}@example.com" for caller in ROLE_NAMES}
    names |= {"other owner": "other-owner@example.com", "site admin": "admin@example.com",
              "scoped elsewhere": "scoped@example.com"}
    assert [(r.actor_name, r.target, r.after["permission"], r.project, r.outcome) for r in rows] == [
        (names[caller], target, need, project, "denied") for caller, target, need, project in refused]
