"""Shared fixtures: databases (SQLite and the real PostgreSQL), hubs, and a programmable HTTP sink."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from apiserver import make_api, serve, serve_asgi  # noqa: F401  (fixtures)
from argon2 import PasswordHasher
from cli_support import initialised, processes, project  # noqa: F401  (fixtures)
from fake_slack import FakeSlack
from fake_smtp import Certificate, SmtpServer, make_certificate
from fake_teams import FakeTeams
from helpers import LOCAL, PG_URL, REDIS_URL, pg_available, redis_available, services_required
from migrated import database_for, migrated_databases  # noqa: F401  (fixture)
from peer import Peer
from sink import Sink

from tidings import Hub
from tidings.config import parse_config
from tidings.store.engine import Store

SERVED_PER_MODULE = "tests/ui/"
"""Test modules whose tests share a module-scoped fixture that costs seconds (a served hub and a browser:
ui_support's ``hub_site``). Spread test by test over three workers, each module served its hub on up to
three of them (~10 s each, ~140 worker-seconds a run); :func:`pytest_xdist_make_scheduler` gives each
such module to one worker whole."""


@pytest.hookimpl(tryfirst=True, optionalhook=True)  # optional: a run with -p no:xdist has no such hook
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """xdist's load scheduling, except that a module under :data:`SERVED_PER_MODULE` is one unit of work.
    (Not ``--dist loadgroup``: xdist 3.8 marks a group by renaming ``item._nodeid``, which pytest 9 no
    longer reads, so every group silently became test by test.)"""
    if config.getvalue("dist") != "load":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class Scheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return path if path.startswith(SERVED_PER_MODULE) else nodeid

    return Scheduling(config, log)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and callspec.params.get("db") == "postgresql":
            item.add_marker(pytest.mark.postgres)
        if "processes" in getattr(item, "fixturenames", ()) or "hub_site" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)  # real `tidings serve` / `worker` processes; the UI in a browser
    # The slow end-to-end tests first (the sort is stable: the rest keep their order): xdist hands
    # the tests out in this order, and a 40-second test handed out last kept one worker busy
    # alone at the end of the run while the other had nothing left.
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(autouse=True)
def _own_redactions() -> Iterator[None]:
    """The secrets a test registers for masking are forgotten after it: the registry is
    process-wide, and one test's secret (a password literally "password") masked words in the
    messages of whichever test ran next in that worker."""
    from tidings.security import redact

    saved = redact.saved()
    yield
    redact.restore(saved)


@pytest.fixture(params=["sqlite", "postgresql"], ids=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest) -> str:
    """Run the test once per database."""
    return str(request.param)


@pytest.fixture
def db_url(db: str, tmp_path: Path, request: pytest.FixtureRequest) -> Any:
    """The test's database, already migrated (once per worker) and as a migration leaves it; a test
    marked ``fresh_db`` gets an empty one, not migrated (what a new database does)."""
    if request.node.get_closest_marker("fresh_db"):
        yield from _fresh(db, tmp_path)
        return
    yield database_for(db, tmp_path, request.getfixturevalue("migrated_databases"))


@pytest.fixture
def fresh_db_url(db: str, tmp_path: Path) -> Any:
    """An empty database, not migrated (for tests of migrations themselves)."""
    yield from _fresh(db, tmp_path)


def _fresh(db: str, tmp_path: Path) -> Any:
    if db == "sqlite":
        yield f"sqlite:///{tmp_path / 'tidings.db'}"
        return
    yield from _pg_schema()


@pytest.fixture
def redis_url() -> str:
    """The Redis on 127.0.0.1:6379 (``TIDINGS_TEST_REDIS`` to change it)."""
    if not redis_available():
        if services_required():
            pytest.fail(f"Redis is required (TIDINGS_REQUIRE_SERVICES=1) but {REDIS_URL} does not answer")
        pytest.skip(f"Redis at {REDIS_URL} does not answer; set TIDINGS_REQUIRE_SERVICES=1 to fail instead")
    return REDIS_URL


@pytest.fixture
def pg_url() -> Any:
    """A fresh PostgreSQL schema (only PostgreSQL)."""
    yield from _pg_schema()


def _pg_schema() -> Any:
    if not pg_available():
        if services_required():
            pytest.fail(f"PostgreSQL is required (TIDINGS_REQUIRE_SERVICES=1) but {PG_URL} does not answer")
        pytest.skip(f"PostgreSQL at {PG_URL} does not answer; set TIDINGS_REQUIRE_SERVICES=1 to fail instead")
    import psycopg

    schema = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield f"{PG_URL.replace('postgresql://', 'postgresql+psycopg://')}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture
def make_config(db_url: str) -> Callable[..., Any]:
    """Build a validated config on the test's database from a dict shaped like tidings.yaml.
    The local peers tests send to (127.0.0.1, ::1) are allow-listed unless the test says otherwise."""

    def build(data: dict[str, Any] | None = None, **server: Any) -> Any:
        data = dict(data or {})
        data["server"] = {"database": db_url, "allow_destinations": LOCAL, **data.get("server", {}), **server}
        data.setdefault("dispatcher", {}).setdefault("poll_interval", 0.2)
        return parse_config(data)

    return build


@pytest.fixture
async def make_hub(make_config: Callable[..., Any], tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    """Start hubs on the test's database; every hub is stopped at the end of the test."""
    hubs: list[Hub] = []

    async def start(data: dict[str, Any] | None = None, **kwargs: Any) -> Hub:
        hub = Hub(make_config(data), config_dir=tmp_path, **kwargs)
        await hub.start()
        hubs.append(hub)
        return hub

    yield start
    for hub in reversed(hubs):
        await hub.stop(timeout=2)


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[Store]:
    """A migrated store on the test's database."""
    s = Store(db_url)
    await s.migrate()
    yield s
    await s.close()


@pytest.fixture
async def peer() -> AsyncIterator[Peer]:
    """A :class:`~peer.Peer`: a sink that also times arrivals and counts concurrent requests."""
    p = Peer()
    await p.start()
    yield p
    await p.stop()


@pytest.fixture
async def sink() -> AsyncIterator[Sink]:
    s = Sink()
    await s.start()
    yield s
    await s.stop()


_CHEAP_HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


@pytest.fixture(autouse=True)
def _cheap_passwords(monkeypatch: pytest.MonkeyPatch) -> None:
    """argon2id at its cheapest in the test's process: the tests are about flows, not the cost profile,
    and the real one (64 MiB, 3 passes: 0.15-0.3 s a hash here) made every `tidings init`, user and
    sign-in cost that. The servers the UI tests start in their own process keep the real profile."""
    from tidings.accounts import passwords

    monkeypatch.setattr(passwords, "_hasher", _CHEAP_HASHER)
    monkeypatch.setattr(passwords, "_DUMMY", None)  # made again with the cheap hasher, put back after


@pytest.fixture(autouse=True)
def _no_secret_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Tests never read the developer's key or config by accident."""
    for name in ("TIDINGS_SECRET_KEY", "TIDINGS_KEY_FILE", "TIDINGS_CONFIG", "TIDINGS_DATABASE_URL", "TIDINGS_PORT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TIDINGS_KEY_FILE", str(tmp_path / "tidings.key"))


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    """A local Slack Web API; at the end, every payload the test sent must have kept Slack's rules."""
    s = FakeSlack()
    await s.start()
    yield s
    await s.stop()
    assert not s.violations, s.violations


@pytest.fixture
async def teams() -> AsyncIterator[FakeTeams]:
    """A local Teams webhook (Workflows and connector URLs)."""
    t = FakeTeams()
    await t.start()
    yield t
    await t.stop()


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    """A self-signed certificate for the local SMTP servers (and the CA file that trusts it)."""
    return make_certificate(tmp_path_factory.mktemp("certs"))


@pytest.fixture
def smtp(certs: Certificate) -> Iterator[Callable[..., SmtpServer]]:
    """Start aiosmtpd servers: ``smtp()`` STARTTLS + AUTH, ``smtp("tls")`` SMTPS, ``smtp("none")`` plain."""
    started: list[SmtpServer] = []

    def start(security: str = "starttls", auth: bool = True) -> SmtpServer:
        server = SmtpServer(certs, security, auth=auth and security != "none").start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
