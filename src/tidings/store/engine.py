"""The database: one :class:`Store` wraps an async SQLAlchemy engine on SQLite or PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

DEFAULT_URL = "sqlite+aiosqlite:///./tidings.db"


def normalize_url(url: str) -> URL:
    """Accept the plain forms users write and pick the async driver tidings uses."""
    u = make_url(url)
    if u.drivername in ("sqlite", "sqlite+pysqlite"):
        u = u.set(drivername="sqlite+aiosqlite")
    elif u.drivername in ("postgresql", "postgres", "postgresql+psycopg2", "postgresql+asyncpg"):
        u = u.set(drivername="postgresql+psycopg")
    if u.drivername not in ("sqlite+aiosqlite", "postgresql+psycopg"):
        raise ValueError(f"unsupported database {u.drivername!r}: use sqlite:///path or postgresql://...")
    return u


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


class Store:
    """Connections and transactions. Use :meth:`read` for queries and :meth:`write` for changes.

    On SQLite, writes take the database lock up front (``BEGIN IMMEDIATE``) and in-process writers
    queue on an asyncio lock, so nobody spins in SQLite's busy handler or fails a lock upgrade.
    """

    def __init__(self, url: str = DEFAULT_URL, *, synchronous: str = "FULL", pool_size: int = 5) -> None:
        self.url = normalize_url(url)
        self.dialect = "sqlite" if self.url.drivername.startswith("sqlite") else "postgresql"
        kwargs: dict[str, Any] = {"json_serializer": _json_dumps, "json_deserializer": orjson.loads}
        if self.is_sqlite:
            path = self.url.database or ""
            if path and path != ":memory:":
                Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"timeout": 30}
            if path in ("", ":memory:"):
                raise ValueError("an in-memory SQLite database can't be shared; use a file path")
        else:
            kwargs.update(pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)
        self.engine: AsyncEngine = create_async_engine(self.url, **kwargs)
        self._write_lock = asyncio.Lock() if self.is_sqlite else None
        if self.is_sqlite:
            _sqlite_pragmas(self.engine, synchronous)

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @property
    def sqlite_path(self) -> Path | None:
        return Path(self.url.database).expanduser() if self.is_sqlite and self.url.database else None

    def safe_url(self) -> str:
        return self.url.render_as_string(hide_password=True)

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.connect() as conn:
            async with conn.begin():
                yield conn

    @contextlib.asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A transaction that commits when the block ends without an error."""
        if self._write_lock is None:
            async with self.engine.begin() as conn:
                yield conn
            return
        async with self._write_lock:
            async with self.engine.connect() as conn:
                conn = await conn.execution_options(tidings_write=True)
                async with conn.begin():
                    yield conn

    async def close(self) -> None:
        await self.engine.dispose()

    async def migrate(self) -> None:
        from .migrate import upgrade

        await upgrade(self)

    async def is_current(self) -> bool:
        from .migrate import is_current

        return await is_current(self)


def _sqlite_pragmas(engine: AsyncEngine, synchronous: str) -> None:
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        # Take transaction control away from the driver so that BEGIN IMMEDIATE is ours to emit.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA synchronous={synchronous}")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(sync_engine, "begin")
    def _begin(conn: Any) -> None:
        immediate = conn.get_execution_options().get("tidings_write")
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


__all__ = ["DEFAULT_URL", "Store", "normalize_url"]
