"""Roles are named bundles of permission strings, defined once here."""

from __future__ import annotations

PERMISSIONS = (
    "project:read",
    "integration:read",
    "integration:write",
    "integration:test",
    "secret:read",
    "secret:write",
    "message:send",
    "message:read",
    "message:ack",
    "delivery:retry",
    "event:read",
    "event:replay",
    "silence:read",
    "silence:write",
    "sync:run",
    "task:read",
    "task:write",
    "logs:read",
    "audit:read",
    "config:read",
    "config:write",
    "member:read",
    "member:manage",
    "recipient:read",
    "recipient:write",
)
"""Every permission a project role can grant. Site-wide acts (users, projects, keys) need a site admin."""

_VIEWER = frozenset(
    {"project:read", "integration:read", "message:read", "event:read", "silence:read", "task:read",
     "config:read", "member:read", "recipient:read"}
)
_MEMBER = _VIEWER | {
    "integration:test", "message:send", "delivery:retry", "event:replay", "silence:write", "sync:run",
    "task:write", "logs:read", "message:ack",
}
_OWNER = frozenset(PERMISSIONS)

ROLES: dict[str, frozenset[str]] = {"owner": _OWNER, "member": frozenset(_MEMBER), "viewer": _VIEWER}
"""Role name -> the permissions it grants in its project."""

assert all(p in PERMISSIONS for role in ROLES.values() for p in role)


def check_role(role: str) -> str:
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; use one of {', '.join(ROLES)}")
    return role
