"""Trackers with ``oauth: true``: GitHub (the user-to-server or OAuth App token, Bearer) and Jira
(through Atlassian's gateway ``/ex/jira/{cloud_id}`` with Bearer, the site from the connection row).
A sync run before the connection exists fails saying "not connected"; once connected (written
straight through ``oauth.connections.store_tokens``) it syncs with that token, a refreshed token is
used by the next run without a restart, and a token the provider refuses fails the run as an
authentication failure that the sync log names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from connection_support import holds, store, with_key
from peers.github_api import GitHubAPI
from peers.jira_api import JiraCloud
from sqlalchemy import select
from sync.service_fakes import until

from tidings import ConfigError
from tidings.config import parse_config
from tidings.store.tables import sync_runs

REPO = "octo/repo"
SITE = "https://acme.atlassian.net"


def stopped_by_auth(run: dict[str, Any]) -> bool:
    """A run an authentication failure stopped (sync/runs.status_of files such a stop under
    ``rate_limited``, with no resume time; its error says why)."""
    return run["status"] in ("failed", "rate_limited") and run["error"].startswith("authentication failed: ")


async def last_run(hub: Any, integration: str) -> dict[str, Any] | None:
    async with hub.store.read() as conn:
        row = (await conn.execute(select(sync_runs).where(sync_runs.c.integration == integration)
                                  .order_by(sync_runs.c.started_at.desc()).limit(1))).first()
    return dict(row._mapping) if row is not None else None


async def ended(hub: Any, run_id: str) -> dict[str, Any]:
    async def done() -> dict[str, Any] | None:
        async with hub.store.read() as conn:
            row = (await conn.execute(select(sync_runs).where(sync_runs.c.id == run_id))).first()
        return dict(row._mapping) if row is not None and row.ended_at is not None else None

    return await until(done, timeout=20, what=f"run {run_id}")  # type: ignore[no-any-return]


async def run(hub: Any, integration: str) -> dict[str, Any]:
    """A manual run of ``integration``, waited for."""
    [run_id] = await hub.sync.run_now("default", integration)
    return await ended(hub, run_id)


async def first_run_ended(hub: Any, integration: str) -> dict[str, Any]:
    async def done() -> dict[str, Any] | None:
        r = await last_run(hub, integration)
        return r if r is not None and r["ended_at"] is not None else None

    return await until(done, timeout=20, what=f"the first run of {integration}")  # type: ignore[no-any-return]


async def tasks_titled(hub: Any) -> set[str]:
    from tidings.store.tables import tasks

    async with hub.store.read() as conn:
        return {r.title for r in await conn.execute(select(tasks.c.title))}


@pytest.fixture
async def gh() -> Any:
    api = GitHubAPI(tokens={"gho_first"})
    api.repo(REPO)
    await api.start()
    yield api
    await api.stop()


@pytest.fixture
async def jira() -> Any:
    site = JiraCloud()
    await site.start()
    site.add_project("OPS", "Operations")
    yield site
    await site.stop()


def github_config(gh: GitHubAPI) -> dict[str, Any]:
    return {"integrations": {"github": {
        "kind": "github", "api_url": gh.url, "oauth": True, "timeout": 5, "allow_destinations": ["127.0.0.1"],
        "sync": {"repository": REPO, "interval": 3600},
    }}}


def jira_config(site: JiraCloud) -> dict[str, Any]:
    return {
        "oauth": {"atlassian": {"client_id": "jira-app", "client_secret": "jira-app-secret", "api_url": site.url}},
        "integrations": {"jira": {
            "kind": "jira", "oauth": True, "timeout": 5, "allow_destinations": ["127.0.0.1"],
            "sync": {"project": "OPS", "interval": 3600},
        }},
    }


async def test_github_syncs_with_the_connections_token_and_the_next_run_uses_a_refreshed_one(
    make_hub: Any, gh: GitHubAPI, tmp_path: Path
) -> None:
    with_key(tmp_path)
    gh.open_issue(REPO, "Seen through the connection")
    hub = await make_hub(github_config(gh), migrate=False)
    first = await first_run_ended(hub, "github")
    assert stopped_by_auth(first) and "not connected: open /oauth/github/start" in first["error"]
    assert gh.requests == [], "nothing was asked without a token"

    await store(hub, "github", "github", "gho_first")
    await holds(hub, "github", "gho_first")
    ok = await run(hub, "github")
    assert ok["status"] == "ok", ok
    assert "Seen through the connection" in await tasks_titled(hub)
    assert {r[2].get("Authorization") for r in gh.requests} == {"Bearer gho_first"}

    gh.tokens = {"gho_second"}  # the refresh rotated it: GitHub takes only the new one
    await store(hub, "github", "github", "gho_second", refresh=True)
    await holds(hub, "github", "gho_second")
    seen = len(gh.requests)
    again = await run(hub, "github")
    assert again["status"] == "ok", again
    assert {r[2].get("Authorization") for r in gh.requests[seen:]} == {"Bearer gho_second"}


async def test_github_refusing_the_connections_token_fails_the_run_as_auth(
    make_hub: Any, gh: GitHubAPI, tmp_path: Path
) -> None:
    with_key(tmp_path)
    hub = await make_hub(github_config(gh), migrate=False)
    await first_run_ended(hub, "github")
    await store(hub, "github", "github", "gho_revoked")
    await holds(hub, "github", "gho_revoked")
    failed = await run(hub, "github")
    assert stopped_by_auth(failed)
    assert failed["error"].startswith("authentication failed: GitHub refused the credentials (401)")
    assert "the connection's token" in failed["error"] and "gho_revoked" not in failed["error"]


async def test_jira_syncs_through_the_gateway_with_the_connection(
    make_hub: Any, jira: JiraCloud, tmp_path: Path
) -> None:
    with_key(tmp_path)
    jira.bearer = "jira-access-1"
    [issue] = jira.seed("OPS", 1, summary="Read through the gateway")
    hub = await make_hub(jira_config(jira), migrate=False)
    first = await first_run_ended(hub, "jira")
    assert stopped_by_auth(first) and "not connected: open /oauth/jira/start" in first["error"]

    extra = {"cloud_id": jira.cloud_id, "site_url": SITE,
             "sites": [{"id": jira.cloud_id, "url": SITE, "name": "acme"}]}
    await store(hub, "jira", "atlassian", "jira-access-1", extra=extra)
    await holds(hub, "jira", "jira-access-1", field="api_token")
    ok = await run(hub, "jira")
    assert ok["status"] == "ok", ok
    assert "Read through the gateway" in await tasks_titled(hub)
    assert set(jira.gateway_auth) == {"Bearer jira-access-1"}, "Bearer through /ex/jira/{cloud_id}, never Basic"
    from tidings.store.tables import task_links

    async with hub.store.read() as conn:
        [url] = [r.remote_url for r in await conn.execute(select(task_links.c.remote_url))]
    assert url == f"{SITE}/browse/{issue.key}", "browse links on the connected site"

    jira.bearer = "jira-access-2"  # refreshed: the old one now answers 401
    await store(hub, "jira", "atlassian", "jira-access-2", refresh=True)
    await holds(hub, "jira", "jira-access-2", field="api_token")
    seen = len(jira.gateway_auth)
    again = await run(hub, "jira")
    assert again["status"] == "ok", again
    assert set(jira.gateway_auth[seen:]) == {"Bearer jira-access-2"}

    jira.bearer = "jira-access-3"  # a token Atlassian no longer takes
    refused = await run(hub, "jira")
    assert stopped_by_auth(refused)
    assert refused["error"].startswith("authentication failed: Jira answered")
    assert "401: Unauthorized" in refused["error"] and "the connection's token was refused" in refused["error"]
    assert "jira-access-2" not in refused["error"]


def test_jira_with_oauth_needs_no_site_email_or_api_token() -> None:
    settings = parse_config({"integrations": {"jira": {"kind": "jira", "oauth": True, "sync": {"project": "OPS"}}}})
    assert settings.integrations["jira"].api_token is None
    with pytest.raises(ConfigError, match="or oauth: true"):
        parse_config({"integrations": {"jira": {"kind": "jira", "sync": {"project": "OPS"}}}})
    with pytest.raises(ConfigError, match="oauth: true"):
        parse_config({"integrations": {"github": {"kind": "github", "sync": {"repository": REPO}}}})
    with pytest.raises(ConfigError, match="give one of token, oauth: true"):
        parse_config({"integrations": {"github": {"kind": "github", "oauth": True, "app_id": 1, "installation_id": 2,
                                                  "private_key": "${vault:KEY}", "sync": {"repository": REPO}}}})


async def test_a_jira_connection_without_a_site_says_so(make_hub: Any, jira: JiraCloud, tmp_path: Path) -> None:
    with_key(tmp_path)
    jira.bearer = "jira-access-1"
    hub = await make_hub(jira_config(jira), migrate=False)
    await first_run_ended(hub, "jira")
    await store(hub, "jira", "atlassian", "jira-access-1", extra={"sites": []})
    await holds(hub, "jira", "jira-access-1", field="api_token")
    failed = await run(hub, "jira")
    assert stopped_by_auth(failed) and "names no Jira site (cloud_id): connect again" in failed["error"]
    assert jira.gateway_auth == [], "nothing sent without a site"
