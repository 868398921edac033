"""Alembic, driven from code: migrations ship inside the package and run at start."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text

from .engine import Store

MIGRATIONS = Path(__file__).parent / "migrations"
_PG_LOCK_ID = 0x7469_6469  # "tidi": serializes concurrent upgrades across processes


def alembic_config() -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


@cache
def head() -> str | None:
    """The newest migration's revision (the scripts ship in the package: read once per process)."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


async def upgrade(store: Store, revision: str = "head") -> None:
    if revision == "head" and await is_current(store):  # the common start: nothing to do, and no
        return  # alembic environment to build (a quarter of a second)
    async with store.write() as conn:
        if not store.is_sqlite:
            await conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _PG_LOCK_ID})
        await conn.run_sync(_upgrade, revision)


def _upgrade(sync_conn: Any, revision: str) -> None:
    cfg = alembic_config()
    cfg.attributes["connection"] = sync_conn
    command.upgrade(cfg, revision)


async def current(store: Store) -> str | None:
    async with store.read() as conn:
        return await conn.run_sync(lambda c: MigrationContext.configure(c).get_current_revision())


async def is_current(store: Store) -> bool:
    return await current(store) == head()
