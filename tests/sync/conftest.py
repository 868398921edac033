"""Fixtures for the sync engine: a hub on the test's database, fake trackers, engines on them.

The database is migrated once per worker and emptied between tests (a copy of a migrated SQLite
file; a PostgreSQL schema truncated): migrating for each test cost seconds, the tests milliseconds."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fake_tracker import FakeTracker
from helpers import PG_URL, pg_available, services_required
from sync.e2e_support import make_world  # noqa: F401  (fixture: a served hub with GitHub and Jira stand-ins)

from tidings import Hub
from tidings.store.engine import Store
from tidings.store.tables import metadata
from tidings.sync.engine import Engine


class _Migrated:
    """Databases migrated once: a SQLite file to copy, a PostgreSQL schema to truncate."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.sqlite: Path | None = None
        self.schema: str | None = None

    def sqlite_copy(self, to: Path) -> str:
        if self.sqlite is None:
            self.sqlite = self.root / "migrated.db"
            asyncio.run(_migrate(f"sqlite:///{self.sqlite}"))
        shutil.copy(self.sqlite, to)
        return f"sqlite:///{to}"

    def pg_empty(self) -> str:
        import psycopg

        if not pg_available():
            if services_required():
                pytest.fail(f"PostgreSQL is required (TIDINGS_REQUIRE_SERVICES=1) but {PG_URL} does not answer")
            pytest.skip(f"PostgreSQL at {PG_URL} does not answer")
        if self.schema is None:
            self.schema = "t_sync_" + uuid.uuid4().hex[:12]
            with psycopg.connect(PG_URL, autocommit=True) as conn:
                conn.execute(f"CREATE SCHEMA {self.schema}")
            asyncio.run(_migrate(self.url))
        else:
            with psycopg.connect(PG_URL) as conn:  # DELETE: a TRUNCATE of every table took a second
                for table in reversed(metadata.sorted_tables):
                    conn.execute(f"DELETE FROM {self.schema}.{table.name}")
        return self.url

    @property
    def url(self) -> str:
        return f"{PG_URL.replace('postgresql://', 'postgresql+psycopg://')}?options=-csearch_path%3D{self.schema}"

    def drop(self) -> None:
        if self.schema is not None:
            import psycopg

            with psycopg.connect(PG_URL, autocommit=True) as conn:
                conn.execute(f"DROP SCHEMA {self.schema} CASCADE")


async def _migrate(url: str) -> None:
    store = Store(url)
    await store.migrate()
    await store.close()


@pytest.fixture(scope="session")
def _migrated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Migrated]:
    migrated = _Migrated(tmp_path_factory.mktemp("sync-db"))
    yield migrated
    migrated.drop()


@pytest.fixture
def db_url(db: str, tmp_path: Path, _migrated: _Migrated) -> str:
    """The test's database, already migrated and empty."""
    return _migrated.sqlite_copy(tmp_path / "tidings.db") if db == "sqlite" else _migrated.pg_empty()


@pytest.fixture
async def hub(make_hub: Callable[..., Any]) -> Hub:
    return await make_hub(dispatch=False, migrate=False)  # type: ignore[no-any-return]


@pytest.fixture
def make_engine(hub: Hub) -> Callable[..., tuple[Engine, FakeTracker]]:
    """``make_engine(name, **sync)``: a fake tracker with that ``sync:`` block and an engine on it."""

    def build(name: str = "fake", **sync: Any) -> tuple[Engine, FakeTracker]:
        carries = sync.pop("carries", None)
        tracker = FakeTracker(name, **({"carries": carries} if carries else {}), **sync)
        engine = Engine(hub, tracker)
        engine.retry_delays = (0.0, 0.0)
        engine.claim_poll = 0.005
        return engine, tracker

    return build
