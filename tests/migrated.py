"""A database migrated once per worker and emptied for each test (a copy of a migrated SQLite file;
a PostgreSQL schema emptied): migrating for each test costs seconds, most tests milliseconds.

The root conftest serves ``db_url`` from here; tests of migrations themselves, and of what an empty
database does, take ``fresh_db_url`` instead."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import PG_URL, pg_available, services_required

from tidings.store.engine import Store
from tidings.store.tables import metadata


class _Migrated:
    """Databases migrated once: a SQLite file to copy, a PostgreSQL schema to truncate."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.sqlite: Path | None = None
        self.schema: str | None = None
        self.seeds: dict[str, list[tuple[object, ...]]] = {}
        self.sequences: list[str] = []

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
            self.schema = "t_mig_" + uuid.uuid4().hex[:12]
            with psycopg.connect(PG_URL, autocommit=True) as conn:
                conn.execute(f"CREATE SCHEMA {self.schema}")
            asyncio.run(_migrate(self.url))
            with psycopg.connect(PG_URL) as conn:  # what the migrations wrote (the `default` project)
                self.seeds = {t.name: conn.execute(f"SELECT * FROM {self.schema}.{t.name}").fetchall()
                              for t in metadata.sorted_tables}
                self.sequences = [r[0] for r in conn.execute(
                    "SELECT sequence_name FROM information_schema.sequences WHERE sequence_schema = %s", (self.schema,))]
        else:
            # Back to the state of a database just migrated: DELETE (a TRUNCATE of every table took a
            # second), the seeded rows again, sequences from their start.
            with psycopg.connect(PG_URL) as conn:
                for table in reversed(metadata.sorted_tables):
                    conn.execute(f"DELETE FROM {self.schema}.{table.name}")
                for table in metadata.sorted_tables:
                    for row in self.seeds[table.name]:
                        marks = ", ".join(["%s"] * len(row))
                        conn.execute(f"INSERT INTO {self.schema}.{table.name} VALUES ({marks})", row)
                for sequence in self.sequences:
                    conn.execute(f"ALTER SEQUENCE {self.schema}.{sequence} RESTART")
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
def migrated_databases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Migrated]:
    migrated = _Migrated(tmp_path_factory.mktemp("migrated-db"))
    yield migrated
    migrated.drop()


def database_for(db: str, tmp_path: Path, migrated: _Migrated) -> str:
    """The test's database, already migrated and empty."""
    return migrated.sqlite_copy(tmp_path / "tidings.db") if db == "sqlite" else migrated.pg_empty()
