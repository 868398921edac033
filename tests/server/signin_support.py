"""What the sign-in and accounts API tests share: people made straight in the database, their
tokens, browsers (httpx clients with a cookie jar) and the audit trail."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from apiserver import Api
from sqlalchemy import select

from tidings.accounts.projects import create_project, set_member
from tidings.accounts.users import User, create_user
from tidings.audit import SYSTEM
from tidings.audit.verify import read_entries
from tidings.security.tokens import create_token
from tidings.store.tables import projects

PASSWORD = "correct horse battery staple"


async def add_user(api: Api, email: str, *, site_admin: bool = False, password: str | None = PASSWORD,
                   roles: dict[str, str] | None = None) -> User:
    """A user, with ``roles`` (project -> role; missing projects are made)."""
    async with api.hub.store.write() as conn:
        user = await create_user(conn, SYSTEM, email=email, password=password, site_admin=site_admin)
        known = set((await conn.execute(select(projects.c.slug))).scalars())
        for project, role in (roles or {}).items():
            if project not in known:
                await create_project(conn, SYSTEM, project)
            await set_member(conn, SYSTEM, project, email, role)
    return user


async def add_project(api: Api, slug: str) -> None:
    async with api.hub.store.write() as conn:
        await create_project(conn, SYSTEM, slug)


async def token_of(api: Api, email: str, project: str | None = None) -> dict[str, str]:
    """``Authorization`` headers with a new token of ``email``."""
    return {"Authorization": f"Bearer {await create_token(api.hub.store, 't', user=email, project=project)}"}


async def entries(api: Api, action: str | None = None) -> list[dict[str, Any]]:
    found = await read_entries(api.hub.store)
    return [e for e in found if action is None or e["action"] == action]


@pytest.fixture(name="browser")
async def browser_fixture() -> AsyncIterator[Callable[..., httpx.AsyncClient]]:
    """``browser(api)``: a client with its own cookie jar and no token, closed at the end."""
    clients: list[httpx.AsyncClient] = []

    def make(api: Api, **kwargs: Any) -> httpx.AsyncClient:
        client = httpx.AsyncClient(base_url=api.url, timeout=15.0, **kwargs)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


async def sign_in(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> str:
    """Sign ``client`` in; its CSRF token."""
    r = await client.post("/auth/login", json={"email": email, "password": password})
    assert r.status_code == 200, r.text
    return str(r.json()["csrf_token"])
