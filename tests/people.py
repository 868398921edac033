"""Real users, memberships and tokens for tests of who may do what (made with ``tidings.accounts``
and ``create_token``, as the CLI makes them)."""

from __future__ import annotations

from collections.abc import Iterable

from tidings.accounts.projects import set_member
from tidings.accounts.users import create_user
from tidings.audit import SYSTEM
from tidings.security.tokens import create_token
from tidings.store.engine import Store

ROLE_NAMES = ("viewer", "member", "owner")


async def person(
    store: Store, email: str, roles: dict[str, str], *, site_admin: bool = False, token_project: str | None = None
) -> str:
    """A user with ``roles`` (project -> role) and a token of theirs (scoped to ``token_project``)."""
    async with store.write() as conn:
        await create_user(conn, SYSTEM, email=email, site_admin=site_admin)
        for project, role in roles.items():
            await set_member(conn, SYSTEM, project, email, role)
    return await create_token(store, f"{email} token", user=email, project=token_project)


async def cast(store: Store, projects: Iterable[str], other: str) -> dict[str, str]:
    """Tokens of: a viewer, a member and an owner of every project in ``projects``; the owner of
    ``other`` only; a site admin; and an owner of all of them whose token is scoped to ``other``."""
    projects = list(projects)
    tokens = {role: await person(store, f"{role}@example.com", dict.fromkeys(projects, role)) for role in ROLE_NAMES}
    tokens["other owner"] = await person(store, "other-owner@example.com", {other: "owner"})
    tokens["site admin"] = await person(store, "admin@example.com", {}, site_admin=True)
    tokens["scoped elsewhere"] = await person(
        store, "scoped@example.com", dict.fromkeys([*projects, other], "owner"), token_project=other)
    return tokens
