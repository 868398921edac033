"""Who is asking, and the one function that decides what they may do."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ..errors import TidingsError
from .roles import PERMISSIONS, ROLES


class AccessError(TidingsError):
    status = 403


class Unauthenticated(AccessError):
    """No (valid) credentials: HTTP 401."""

    status = 401


class Forbidden(AccessError):
    """Credentials without the permission: HTTP 403, naming the permission."""

    def __init__(self, permission: str, project: str | None) -> None:
        where = f" in project {project!r}" if project else ""
        super().__init__(f"this needs the permission {permission!r}{where}")
        self.permission = permission
        self.project = project


class CsrfRefused(AccessError):
    """An unsafe request authenticated by a session cookie without its CSRF token: HTTP 403."""

    def __init__(self) -> None:
        super().__init__("missing or wrong CSRF token: send the session's token in the X-CSRF-Token header")


@dataclass(frozen=True, slots=True)
class Principal:
    """A signed-in user or a token, with what it may do."""

    user_id: str | None
    name: str
    site_admin: bool = False
    memberships: Mapping[str, str] = field(default_factory=dict)
    """project slug -> role"""
    auth_method: str = "token"
    """``token``, ``session``, ``cli`` or ``system``"""
    token_id: str | None = None
    token_project: str | None = None
    """A project-scoped token acts only in this project (and never site-wide)."""
    token_name: str | None = None

    def role_in(self, project: str) -> str | None:
        return self.memberships.get(project)


SITE = "site:admin"
"""The permission of site-wide acts: users, projects, keys."""

SIGNED_IN = "signed-in"
"""The "permission" of acts on one's own account (who am I, my projects, my tokens): any valid
credentials have it, a project-scoped token too; only the absence of credentials is refused."""


def allowed(principal: Principal | None, permission: str, project: str | None = None) -> bool:
    if principal is None:
        return False
    if permission == SIGNED_IN:
        return True
    if principal.token_project is not None and (project is None or project != principal.token_project):
        return False
    if principal.site_admin:
        return True
    if permission == SITE or project is None:
        return False
    role = principal.memberships.get(project)
    return role is not None and permission in ROLES[role]


def authorize(principal: Principal | None, permission: str, project: str | None = None) -> Principal:
    """Return the principal when it may do ``permission`` in ``project`` (None: site-wide), else
    raise :class:`Unauthenticated` (no principal) or :class:`Forbidden`."""
    if permission not in (SITE, SIGNED_IN) and permission not in PERMISSIONS:
        raise ValueError(f"unknown permission {permission!r}")
    if principal is None:
        raise Unauthenticated("send `Authorization: Bearer <token>` or sign in")
    if not allowed(principal, permission, project):
        raise Forbidden(permission, project)
    return principal
