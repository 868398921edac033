"""The database: one :class:`Store` on SQLite or PostgreSQL, used the same way by all code:

    async with store.write() as conn:          # one transaction, committed at the end
        await conn.execute(stmt, rows)

PostgreSQL runs on SQLAlchemy's async engine (psycopg 3, native asyncio). SQLite runs *inline*:
its calls execute in the event loop thread. A SQLite transaction is short (a few milliseconds
with its fsync) and, done in a worker thread, every statement would hand the GIL back and forth
with a busy event loop; measured here, that convoy made each transaction 5-10x slower than the
work it does. Lock waits never block the loop: ``BEGIN IMMEDIATE`` is retried asynchronously.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import orjson
from sqlalchemy import Connection, create_engine, event
from sqlalchemy.engine import URL, Dialect, Engine, make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from ..extras import require

DEFAULT_URL = "sqlite:///./tidings.db"
LOCK_WAIT = 30.0
"""How long a SQLite writer waits for another process to release the database lock."""


T = TypeVar("T")
R = TypeVar("R")

if TYPE_CHECKING:
    from .batch import Batch, GroupCommit


class Conn(Protocol):
    """What a transaction block gets: the subset of SQLAlchemy's Conn tidings uses."""

    @property
    def dialect(self) -> Dialect: ...

    async def execute(self, statement: Any, parameters: Any = None) -> Any: ...

    async def exec_driver_sql(self, statement: str, parameters: Any = None) -> Any: ...

    async def run_sync(self, fn: Callable[..., T], *args: Any) -> T: ...


def normalize_url(url: str) -> URL:
    """Accept the plain forms users write and pick the driver tidings uses."""
    u = make_url(url)
    if u.drivername in ("sqlite", "sqlite+pysqlite", "sqlite+aiosqlite"):
        u = u.set(drivername="sqlite+pysqlite")
    elif u.drivername in ("postgresql", "postgres", "postgresql+psycopg2", "postgresql+asyncpg"):
        u = u.set(drivername="postgresql+psycopg")
    if u.drivername not in ("sqlite+pysqlite", "postgresql+psycopg"):
        raise ValueError(f"unsupported database {u.drivername!r}: use sqlite:///path or postgresql://...")
    return u


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


class InlineConnection:
    """A synchronous SQLite connection behind the async interface of :class:`Conn`."""

    __slots__ = ("sync_connection",)

    def __init__(self, conn: Connection) -> None:
        self.sync_connection = conn

    @property
    def dialect(self) -> Dialect:
        return self.sync_connection.dialect

    async def execute(self, statement: Any, parameters: Any = None) -> Any:
        return self.sync_connection.execute(statement, parameters)

    async def exec_driver_sql(self, statement: str, parameters: Any = None) -> Any:
        """Positional parameters go straight to sqlite3, in this connection's transaction (the
        outbox's hot statements: SQLAlchemy's execution context cost more per call than binding
        them): a tuple for one statement, a list of tuples for an executemany."""
        driver = self.sync_connection.connection.driver_connection
        if isinstance(parameters, tuple):
            return driver.execute(statement, parameters)  # type: ignore[union-attr]
        if isinstance(parameters, list):
            return driver.executemany(statement, parameters)  # type: ignore[union-attr]
        return self.sync_connection.exec_driver_sql(statement, parameters)

    async def run_sync(self, fn: Callable[..., T], *args: Any) -> T:
        return fn(self.sync_connection, *args)


class Store:
    """Connections and transactions. Use :meth:`read` for queries and :meth:`write` for changes.

    Writers in this process queue on an asyncio lock (SQLite has one writer at a time) and take
    the database lock up front (``BEGIN IMMEDIATE``), so no transaction fails a lock upgrade.
    """

    def __init__(self, url: str = DEFAULT_URL, *, synchronous: str = "FULL", pool_size: int = 5) -> None:
        self.url = normalize_url(url)
        self.dialect = "sqlite" if self.url.drivername.startswith("sqlite") else "postgresql"
        json_args: dict[str, Any] = {"json_serializer": _json_dumps, "json_deserializer": orjson.loads}
        self.engine: AsyncEngine | None = None
        self.sync_engine: Engine | None = None
        if self.is_sqlite:
            path = self.url.database or ""
            if path in ("", ":memory:"):
                raise ValueError("an in-memory SQLite database can't be shared; use a file path")
            Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
            self.sync_engine = create_engine(self.url, pool_size=pool_size, max_overflow=pool_size * 2, **json_args)
            _sqlite_pragmas(self.sync_engine, synchronous)
        else:
            require("psycopg", "postgres", "a postgresql:// database")
            self.engine = create_async_engine(
                self.url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True, **json_args
            )
        self._write_lock = asyncio.Lock() if self.is_sqlite else None
        self._write_conn: Connection | None = None
        self._writer: GroupCommit | None = None

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @property
    def sqlite_path(self) -> Path | None:
        return Path(self.url.database).expanduser() if self.is_sqlite and self.url.database else None

    def safe_url(self) -> str:
        return self.url.render_as_string(hide_password=True)

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[Conn]:
        """A read transaction (a consistent snapshot)."""
        if self.sync_engine is None:
            assert self.engine is not None
            async with self.engine.connect() as conn, conn.begin():
                yield conn
            return
        with self.sync_engine.connect() as sync_conn, sync_conn.begin():
            yield InlineConnection(sync_conn)

    @contextlib.asynccontextmanager
    async def write(self) -> AsyncIterator[Conn]:
        """A transaction that commits when the block ends without an error."""
        if self.sync_engine is None:
            assert self.engine is not None
            async with self.engine.begin() as conn:
                yield conn
            return
        lock = self._write_lock
        assert lock is not None
        await lock.acquire()
        held = True
        try:
            sync_conn = await self._begin_immediate()
            try:
                yield InlineConnection(sync_conn)
            except BaseException:
                self._discard_on_error(sync_conn.rollback)
                raise
            # The commit's fsync releases the GIL: let the loop run meanwhile. The lock is held
            # until the commit is over, even for a caller cancelled meanwhile: the next
            # transaction must not begin on this connection under a commit still running.
            try:
                commit = asyncio.get_running_loop().run_in_executor(None, self._commit, sync_conn)
            except BaseException:  # no thread to commit in (the executor is shut down)
                self._discard_on_error(sync_conn.rollback)
                raise
            commit.add_done_callback(lambda _: lock.release())
            held = False
            await asyncio.shield(commit)
        finally:
            if held:
                lock.release()

    async def _begin_immediate(self) -> Connection:
        """Begin on this process's write connection, taking SQLite's write lock up front and
        waiting for other processes without blocking the loop. The connection is kept from one
        transaction to the next: a pool checkout and reset each time cost more than the commit's
        own work."""
        assert self.sync_engine is not None
        deadline = time.monotonic() + LOCK_WAIT
        delay = 0.001
        while True:
            if self._write_conn is None:
                self._write_conn = self.sync_engine.connect().execution_options(tidings_write=True)
                # Fail at once when another process holds the lock: waiting happens here, in
                # asyncio.sleep, not in SQLite's busy handler with the loop stopped.
                self._write_conn.connection.dbapi_connection.execute("PRAGMA busy_timeout=0")  # type: ignore[union-attr]
            try:
                self._write_conn.begin()
                return self._write_conn
            except OperationalError as exc:
                self._close_write_conn()
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)

    def _commit(self, conn: Connection) -> None:
        try:
            conn.commit()
        except BaseException:
            self._discard_on_error(conn.rollback)
            raise

    def _discard_on_error(self, rollback: Callable[[], None]) -> None:
        """Roll back; a connection that can't even do that is replaced."""
        try:
            rollback()
        except Exception:
            self._close_write_conn()

    def _close_write_conn(self) -> None:
        """Close the write connection for good (its busy_timeout is not for the pool's readers)."""
        conn, self._write_conn = self._write_conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.invalidate()
                conn.close()

    async def submit(self, op: Batch[T, R], item: T) -> R:
        """Write ``item`` with ``op`` in a transaction shared with every concurrent writer
        (group commit); returns once it is committed."""
        return await self._group().submit(op, item)

    async def submit_many(self, op: Batch[T, R], items: list[T]) -> list[R]:
        """``submit`` of several items at once, in order, sharing transactions (see
        :meth:`GroupCommit.submit_many`)."""
        return await self._group().submit_many(op, items)

    def _group(self) -> GroupCommit:
        if self._writer is None:
            from .batch import GroupCommit

            self._writer = GroupCommit(self)
            self._writer.start()
        return self._writer

    async def drain(self, timeout: float = 10.0) -> None:
        """Until every write submitted so far is committed and answered (at most ``timeout``)."""
        if self._writer is not None:
            await self._writer.drain(timeout)

    async def close(self) -> None:
        if self._writer is not None:
            await self._writer.stop()
            self._writer = None

        if self.engine is not None:
            await self.engine.dispose()
        if self.sync_engine is not None:
            assert self._write_lock is not None
            async with self._write_lock:
                self._close_write_conn()
            self.sync_engine.dispose()

    async def migrate(self) -> None:
        from .migrate import upgrade

        await upgrade(self)

    async def is_current(self) -> bool:
        from .migrate import is_current

        return await is_current(self)


# sqlite3 binds str, int and float directly but sends every None through its adapter search: a
# tuple built, a registry lookup, two attribute lookups, one of them raising AttributeError inside
# (3.3k instructions each, measured with callgrind; the outbox binds ~8 NULLs per message). With an
# adapter registered for None the search ends at the registry; ``{}.get`` gives None back, so None
# still binds as NULL, for every user of sqlite3 in the process.
sqlite3.register_adapter(type(None), {}.get)


def _sqlite_pragmas(engine: Engine, synchronous: str) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        # Take transaction control away from the driver so that BEGIN IMMEDIATE is ours to emit.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA synchronous={synchronous}")
        # Short: a writer waiting for the lock retries from the event loop (see write()).
        cur.execute("PRAGMA busy_timeout=50")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        immediate = conn.get_execution_options().get("tidings_write")
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
