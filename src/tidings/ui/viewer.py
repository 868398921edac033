"""Who is looking at a page: the API's ``/api/v1/me`` for the signed-in person. What they may do
is decided by :func:`tidings.accounts.allowed`, the function behind the API's own ``authorize``: a
page hides the buttons the API would refuse (and the API refuses them anyway)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..accounts import Principal, allowed
from ..accounts.principal import SITE
from .client import Answer, Api, SignInNeeded


@dataclass(frozen=True)
class Viewer:
    name: str
    email: str
    site_admin: bool
    roles: dict[str, str]
    """project slug -> role"""
    csrf: str
    project: str
    """the project the page is about"""
    projects: list[str] = field(default_factory=list)
    """the projects the person can switch to"""

    @property
    def principal(self) -> Principal:
        return Principal(None, self.email, self.site_admin, self.roles, "session")

    def can(self, permission: str, project: str | None = None) -> bool:
        """Whether the API would allow ``permission`` in ``project`` (the page's by default)."""
        return allowed(self.principal, permission, None if permission == SITE else (project or self.project))

    @property
    def role(self) -> str:
        return "site admin" if self.site_admin else self.roles.get(self.project, "no role")


async def viewer(api: Api, project: str) -> Viewer:
    """The signed-in person, looking at ``project``; :class:`SignInNeeded` without a session."""
    answer: Answer = await api.get("/auth/me")  # 401: SignInNeeded
    if not answer.ok:
        raise SignInNeeded()
    me = answer.data
    user = me.get("user") or {}
    roles = {p["slug"]: p["role"] for p in me.get("projects", []) if p.get("role")}
    listed = await api.get("/api/v1/projects")
    projects = sorted({p["slug"] for p in listed.data} | set(roles)) if listed.ok else sorted(roles)
    return Viewer(name=user.get("name") or user.get("email", ""), email=user.get("email", ""),
                  site_admin=bool(me.get("site_admin")), roles=roles, csrf=me.get("csrf_token") or "",
                  project=project, projects=projects or [project])


def as_dict(viewer: Viewer) -> dict[str, Any]:
    return {"name": viewer.name, "email": viewer.email, "project": viewer.project, "role": viewer.role}
