"""`tidings connections [list|refresh|disconnect]` and `tidings connect`, in-process, on SQLite and
PostgreSQL, against a rotating token endpoint; never a token in any output."""

from __future__ import annotations

import asyncio
import getpass
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml
from cli_support import Ran, in_process
from oauth.keeper_support import TokenEndpoint, connect, demo_config
from sqlalchemy import select

from tidings import Hub
from tidings.security.vault import new_key, write_key_file
from tidings.store.tables import audit_log

WHO = f"cli:{getpass.getuser()}"


pytestmark = pytest.mark.usefixtures("demo")


class Site:
    def __init__(self, path: Path, monkeypatch: pytest.MonkeyPatch, endpoint: TokenEndpoint, db: str) -> None:
        self.path, self.monkeypatch, self.endpoint = path, monkeypatch, endpoint
        write_key_file(path / "tidings.key", [new_key()])
        config = demo_config(endpoint, "chat", "chat2", project="alpha")
        config["server"] = {**config["server"], "database": db, "allow_destinations": ["127.0.0.1"]}
        config["integrations"]["plain"] = {"kind": "oauthdemo", "project": "alpha", "token": "pasted-token"}
        config["integrations"]["other"] = {"kind": "oauthdemo", "oauth": True, "project": "beta"}
        config["routes"] = [{"project": "alpha", "to": ["chat"]}]
        config["default"] = {"to": ["inbox"]}
        self.config = config
        (path / "tidings.yaml").write_text(yaml.safe_dump(config))
        self.grants: list[Any] = []

    async def run(self, *args: str) -> Ran:
        return await asyncio.to_thread(in_process, self.path, self.monkeypatch, *args)

    async def connect(self, name: str = "chat") -> None:
        grant = self.endpoint.grant()
        self.grants.append(grant)
        async with Hub.from_config(self.path / "tidings.yaml", dispatch=False) as hub:
            await connect(hub, name, grant)

    async def actions(self) -> list[tuple[str, str]]:
        async with Hub.from_config(self.path / "tidings.yaml", dispatch=False) as hub:
            async with hub.require_store().read() as conn:
                return [(r.action, r.actor_name) for r in await conn.execute(select(audit_log))]

    def no_tokens(self, text: str) -> None:
        for grant in self.grants:
            assert grant.access_token not in text and grant.refresh_token not in text
        for token in [*self.endpoint.issued, *self.endpoint.valid, "pasted-token"]:
            assert token not in text


@pytest.fixture
async def site(tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
               endpoint: TokenEndpoint) -> Site:
    s = Site(tmp_path, monkeypatch, endpoint, db_url)
    await s.connect()
    return s


async def test_connections_lists_health(site: Site) -> None:
    r = (await site.run("connections")).ok()
    assert "chat" in r.out and "healthy" in r.out and "not_connected" in r.out and "T1 acme" in r.out
    assert "connect it at https://tidings.example.com/oauth/chat2/start" in r.out
    assert "other" in r.out  # every project without --project
    site.no_tokens(r.out)
    items = (await site.run("connections", "--project", "alpha", "--json")).ok().json
    assert [(c["integration"], c["health"]) for c in items] == [("chat", "healthy"), ("chat2", "not_connected")]
    assert items[0]["scopes"] == ["chat:write"] and items[0]["expires_at"] > time.time()
    assert (await site.run("connections", "list", "-p", "alpha", "--json")).ok().json == items
    (await site.run("connections", "--project", "nope")).one_line_error("no project 'nope'", code=1)


async def test_refresh_now(site: Site) -> None:
    r = (await site.run("connections", "refresh", "chat")).ok()
    assert r.out.startswith("refreshed chat: expires ")
    site.no_tokens(r.out + r.err)
    assert site.endpoint.refreshes == 1
    assert ("oauth.refresh_now", WHO) in await site.actions()
    done = (await site.run("connections", "refresh", "chat", "--json")).ok().json
    assert done["outcome"] == "refreshed" and done["health"] == "healthy"
    (await site.run("connections", "refresh", "chat2")).one_line_error("not connected", "tidings connect chat2")
    site.endpoint.script.append((500, {}, {}))
    r = await site.run("connections", "refresh", "chat")
    assert r.code == 1 and "failed for now" in r.out and "HTTP 500" in r.out
    site.endpoint.valid.clear()
    r = await site.run("connections", "refresh", "chat")
    assert r.code == 1 and "needs re-auth" in r.out and "/oauth/chat/start" in r.out
    (await site.run("connections", "refresh", "chat")).one_line_error("needs re-auth")
    health = (await site.run("connections", "--json")).ok().json
    assert [c["health"] for c in health if c["integration"] == "chat"] == ["needs_reauth"]


async def test_disconnect(site: Site) -> None:
    r = (await site.run("connections", "disconnect", "chat")).ok()
    assert "disconnected chat" in r.out
    assert ("oauth.disconnect", WHO) in await site.actions()
    items = (await site.run("connections", "-p", "alpha", "--json")).ok().json
    assert items[0]["health"] == "not_connected"
    (await site.run("connections", "disconnect", "chat")).one_line_error("not connected")


async def test_connect_prints_the_url_to_open(site: Site) -> None:
    r = (await site.run("connect", "chat2")).ok()
    url = r.out.strip().splitlines()[-1]
    query = parse_qs(urlsplit(url).query)
    assert url.startswith(f"http://127.0.0.1:{site.endpoint.port}/authorize?")
    assert query["client_id"] == ["demo-client"] and query["code_challenge_method"] == ["S256"]
    assert query["redirect_uri"] == ["https://tidings.example.com/oauth/chat2/callback"]
    assert len(query["state"][0]) >= 40 and "code_verifier" not in query
    again = (await site.run("connect", "chat2", "--json")).ok().json
    assert again["integration"] == "chat2" and again["url"] != url
    (await site.run("connect", "plain")).one_line_error("set `oauth: true`", code=2)
    (await site.run("connect", "nope")).one_line_error("no integration named 'nope'", code=2)
    (await site.run("connect", "in\nbox")).one_line_error("control characters", code=1)


async def test_connect_without_an_app_registration(site: Site) -> None:
    config = dict(site.config)
    config.pop("oauth")
    (site.path / "tidings.yaml").write_text(yaml.safe_dump(config))
    (await site.run("connect", "chat2")).one_line_error("no app registration for slack", code=2)
