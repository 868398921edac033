"""Projects and who belongs to them, with which role."""

from __future__ import annotations

import re
import time
from typing import Any

from sqlalchemy import delete, func, select, update

from ..audit import Actor, append
from ..store.engine import Conn
from ..store.tables import memberships, projects, users
from .principal import Principal
from .roles import check_role
from .users import AccountConflict, AccountError, UnknownAccount, _require

_SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")


async def create_project(conn: Conn, actor: Actor, slug: str, name: str | None = None) -> dict[str, Any]:
    if not _SLUG.fullmatch(slug):
        raise AccountError(f"project slug {slug!r}: lower-case letters, digits and '-', at most 64")
    if (await conn.execute(select(projects.c.slug).where(projects.c.slug == slug))).first():
        raise AccountConflict(f"a project {slug} exists already")
    row = {"slug": slug, "name": name or slug, "created_at": time.time()}
    await conn.execute(projects.insert().values(**row))
    await append(conn, actor, "project.create", target=f"project/{slug}", project=slug, after=row)
    return row


async def list_projects(conn: Conn, principal: Principal | None = None) -> list[dict[str, Any]]:
    """Every project (site admins) or the ones ``principal`` belongs to."""
    query = select(projects).order_by(projects.c.slug)
    if principal is not None and not principal.site_admin:
        visible = [principal.token_project] if principal.token_project else list(principal.memberships)
        query = query.where(projects.c.slug.in_(visible))
    return [dict(r._mapping) for r in await conn.execute(query)]


async def _project(conn: Conn, slug: str) -> None:
    if not (await conn.execute(select(projects.c.slug).where(projects.c.slug == slug))).first():
        raise UnknownAccount(f"no project {slug}")


async def set_member(conn: Conn, actor: Actor, project: str, email_or_id: str, role: str) -> dict[str, Any]:
    """Add a member or change their role."""
    check_role(role)
    await _project(conn, project)
    user = await _require(conn, email_or_id)
    before = (await conn.execute(select(memberships.c.role).where(
        memberships.c.project == project, memberships.c.user_id == user.id))).scalar()
    if before == "owner" and role != "owner":
        await _keep_an_owner(conn, project, user.id)
    if before is None:
        await conn.execute(memberships.insert().values(project=project, user_id=user.id, role=role,
                                                       created_at=time.time()))
    else:
        await conn.execute(update(memberships).where(
            memberships.c.project == project, memberships.c.user_id == user.id).values(role=role))
    await append(conn, actor, "member.add" if before is None else "member.update", project=project,
                 target=f"project/{project}/member/{user.email}",
                 before={"role": before} if before else None, after={"role": role})
    return {"project": project, "user": user.email, "role": role}


async def remove_member(conn: Conn, actor: Actor, project: str, email_or_id: str) -> bool:
    user = await _require(conn, email_or_id)
    before = (await conn.execute(select(memberships.c.role).where(
        memberships.c.project == project, memberships.c.user_id == user.id))).scalar()
    if before is None:
        return False
    if before == "owner":
        await _keep_an_owner(conn, project, user.id)
    await conn.execute(delete(memberships).where(memberships.c.project == project, memberships.c.user_id == user.id))
    await append(conn, actor, "member.remove", project=project, target=f"project/{project}/member/{user.email}",
                 before={"role": before})
    return True


async def list_members(conn: Conn, project: str) -> list[dict[str, Any]]:
    await _project(conn, project)
    rows = await conn.execute(
        select(users.c.email, users.c.name, memberships.c.role, memberships.c.created_at)
        .join(users, users.c.id == memberships.c.user_id)
        .where(memberships.c.project == project).order_by(users.c.email)
    )
    return [dict(r._mapping) for r in rows]


async def _keep_an_owner(conn: Conn, project: str, leaving: str) -> None:
    """A project keeps at least one owner, unless site admins manage it (the default project)."""
    others = (await conn.execute(select(func.count()).select_from(memberships).where(
        memberships.c.project == project, memberships.c.role == "owner", memberships.c.user_id != leaving))).scalar()
    if not others:
        raise AccountConflict(f"that would leave project {project} without an owner")
