"""Secrets at rest: Fernet-encrypted in the database, keys that rotate (MultiFernet).

The key comes from ``TIDINGS_SECRET_KEY`` (comma-separated, newest first) or from a key file
(``tidings.key``, mode 0600, one key per line, newest first) that ``tidings init`` creates.

Each secret carries metadata (who made it and when, who last rotated it and when, when an
integration last used it). Setting, rotating and deleting a secret appends its audit entry in the
same transaction, with metadata only, never the value. A value overwritten or deleted is removed
for good (see :meth:`Vault.purge`): on SQLite the transaction runs with ``secure_delete`` and the
WAL is checkpointed and truncated afterwards; on PostgreSQL the table is rewritten (``VACUUM FULL``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import stat
import time
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

import structlog
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import delete, or_, select, text

from ..audit import SYSTEM, Actor, append
from ..errors import NotFound, VaultError
from ..store.engine import Conn, Store
from ..store.tables import secrets
from .redact import register

log = structlog.get_logger("tidings.vault")

KEY_ENV = "TIDINGS_SECRET_KEY"
KEY_FILE_ENV = "TIDINGS_KEY_FILE"
DEFAULT_KEY_FILE = "tidings.key"
NAME_PATTERN = r"^[A-Za-z0-9_.\-/]{1,200}$"
"""What ``${vault:NAME}`` can refer to."""
MAX_VALUE = 64 * 1024
"""The largest value stored, in bytes of UTF-8."""
USE_EVERY = 60.0
"""``last_used_at`` is written at most this often per secret."""
PURGE_WAIT = 5.0
"""How long purging waits for other connections (a SQLite reader, a PostgreSQL lock) before giving up."""
METADATA = ("name", "created_at", "created_by", "updated_at", "rotated_at", "rotated_by", "last_used_at")
"""What may be shown of a secret: everything but its value."""
_NAME = re.compile(NAME_PATTERN)
_OLDER = text("""
SELECT (SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()
          AND backend_type <> 'autovacuum worker'
          AND (age(backend_xmin) > age(CAST(:x AS xid)) OR age(backend_xid) > age(CAST(:x AS xid))))
     + (SELECT count(*) FROM pg_prepared_xacts WHERE database = current_database()
          AND age(transaction) > age(CAST(:x AS xid)))
     + (SELECT count(*) FROM pg_replication_slots WHERE age(xmin) > age(CAST(:x AS xid)))
""")
"""PostgreSQL: how many transactions (or slots) began before the transaction ``x`` and may still see
what was deleted before it."""


def key_file_path(config_dir: Path | None = None) -> Path:
    if env := os.environ.get(KEY_FILE_ENV):
        return Path(env)
    return (config_dir or Path.cwd()) / DEFAULT_KEY_FILE


def load_keys(config_dir: Path | None = None) -> list[str] | None:
    """The keys, newest first, or None when none is configured."""
    if env := os.environ.get(KEY_ENV):
        return [k.strip() for k in env.split(",") if k.strip()]
    path = key_file_path(config_dir)
    if not path.exists():
        return None
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise VaultError(f"{path} is readable by others (mode {stat.filemode(mode)}); run: chmod 600 {path}")
    keys = [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]
    if not keys:
        raise VaultError(f"{path} holds no key")
    return keys


def write_key_file(path: Path, keys: list[str]) -> None:
    """Write keys atomically with mode 0600 from the first byte."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write("# tidings secret keys, newest first. Keep this file private and backed up.\n")
        fh.write("\n".join(keys) + "\n")
    os.replace(tmp, path)


def new_key() -> str:
    return Fernet.generate_key().decode()


def check_name(name: str) -> str:
    """``name`` if a ``${vault:NAME}`` reference can name it, else ValueError."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"secret name {name!r}: 1 to 200 of A-Z a-z 0-9 _ . - / (what ${{vault:NAME}} can refer to)")
    return name


def check_value(value: str) -> bytes:
    """The UTF-8 bytes of a value fit to store, else ValueError (empty, NUL, not UTF-8, over 64 KiB)."""
    if not isinstance(value, str) or not value:
        raise ValueError("the secret is empty")
    if "\x00" in value:
        raise ValueError("the secret contains a NUL character")
    try:
        raw = value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("the secret is not valid text (it holds a lone surrogate)") from None
    if len(raw) > MAX_VALUE:
        raise ValueError(f"the secret is {len(raw)} bytes; at most {MAX_VALUE // 1024} KiB are stored")
    return raw


def _fernet(keys: list[str]) -> MultiFernet:
    try:
        return MultiFernet([Fernet(k.encode()) for k in keys])
    except (ValueError, TypeError):
        raise VaultError("a secret key is not a valid Fernet key (32 url-safe base64 bytes)") from None


def _who(actor: Actor) -> str:
    return (actor.name or actor.id or actor.kind)[:320]


def _metadata(row: Any) -> dict[str, Any]:
    return {k: getattr(row, k) for k in METADATA}


_COLUMNS = [secrets.c[k] for k in METADATA]


async def _row(conn: Conn, name: str) -> Any:
    return (await conn.execute(select(*_COLUMNS).where(secrets.c.name == name))).first()


class Vault:
    """Encrypted named secrets. ``get`` decrypts with any known key; ``set`` uses the newest."""

    def __init__(self, store: Store, keys: list[str] | None) -> None:
        self.store = store
        self.keys = keys
        self._fernet = _fernet(keys) if keys else None
        self._used: dict[str, float] = {}
        """Secret -> when this process last wrote its ``last_used_at``."""

    @property
    def available(self) -> bool:
        return self._fernet is not None

    def _require(self) -> MultiFernet:
        if self._fernet is None:
            raise VaultError(
                f"no secret key: set {KEY_ENV} or run `tidings init` to create {DEFAULT_KEY_FILE}"
            )
        return self._fernet

    @contextlib.asynccontextmanager
    async def _write(self) -> AsyncIterator[Conn]:
        """A write transaction in which SQLite zeroes what is deleted or overwritten (``secure_delete``,
        for this transaction only: the store's write connection is shared)."""
        async with self.store.write() as conn:
            if conn.dialect.name != "sqlite":
                yield conn
                return
            await conn.exec_driver_sql("PRAGMA secure_delete=ON")
            try:
                yield conn
            finally:
                with contextlib.suppress(Exception):
                    await conn.exec_driver_sql("PRAGMA secure_delete=OFF")

    def seal(self, value: str) -> bytes:
        """``value`` encrypted with the newest key, for a row that must hold a secret briefly (an
        OAuth flow's PKCE verifier); :meth:`unseal` reads it back."""
        return self._require().encrypt(check_value(value))

    def unseal(self, token: bytes) -> str:
        """What :meth:`seal` sealed; :class:`VaultError` when no configured key opens it."""
        try:
            return self._require().decrypt(bytes(token)).decode()
        except InvalidToken:
            raise VaultError("a sealed value can't be decrypted with the configured keys") from None

    # -- values --------------------------------------------------------------------------------
    def transaction(self) -> contextlib.AbstractAsyncContextManager[Conn]:
        """A write transaction fit for :meth:`put` (on SQLite, with ``secure_delete``): a caller
        that stores secrets and other changes (a configuration revision) together uses it."""
        return self._write()

    async def set(self, name: str, value: str, *, actor: Actor = SYSTEM, must_exist: bool = False) -> dict[str, Any]:
        """Store ``value`` as ``name``: a new secret (audited ``secret.set``) or a new value for an
        existing one (``secret.rotate``: ``rotated_at``/``rotated_by``; ``created_*`` kept). With
        ``must_exist``, an unknown name is :class:`NotFound`. Returns the metadata, with ``created``."""
        async with self._write() as conn:
            info = await self.put(conn, name, value, actor=actor, must_exist=must_exist)
        if not info["created"]:
            await self.purge()
        return info

    async def put(
        self, conn: Conn, name: str, value: str, *, actor: Actor = SYSTEM, must_exist: bool = False
    ) -> dict[str, Any]:
        """What :meth:`set` does, in the caller's transaction (from :meth:`transaction`); the
        caller calls :meth:`purge` after its commit when ``created`` is false (a rotation)."""
        check_name(name)
        raw = check_value(value)
        token = self._require().encrypt(raw)
        register([value])
        who = _who(actor)
        old = await _row(conn, name)
        now = time.time()
        if old is None:
            if must_exist:
                raise NotFound(f"no secret named {name!r} (store it with `tidings secret set {name}`)")
            row = {"name": name, "created_at": now, "created_by": who, "updated_at": now, "rotated_at": None,
                   "rotated_by": None, "last_used_at": None}
            await conn.execute(secrets.insert().values(ciphertext=token, **row))
        else:
            # Strictly later than before: a running hub notices a change by updated_at.
            now = max(now, old.updated_at + 1e-3)
            row = {**_metadata(old), "updated_at": now, "rotated_at": now, "rotated_by": who}
            await conn.execute(secrets.update().where(secrets.c.name == name).values(
                ciphertext=token, updated_at=now, rotated_at=now, rotated_by=who))
        await append(conn, actor, "secret.set" if old is None else "secret.rotate", target=f"secret/{name}",
                     before=_metadata(old) if old is not None else None, after=row)
        return {**row, "created": old is None}

    async def fetch(self, name: str) -> tuple[str, float]:
        """The value of ``name`` and its ``updated_at`` (which changes with the value)."""
        async with self.store.read() as conn:
            row = (await conn.execute(select(secrets.c.ciphertext, secrets.c.updated_at)
                                      .where(secrets.c.name == name))).first()
        if row is None:
            raise VaultError(f"no secret named {name!r} in the vault (tidings secret set {name})")
        try:
            value = self._require().decrypt(bytes(row.ciphertext)).decode()
        except InvalidToken:
            raise VaultError(f"secret {name!r} can't be decrypted with the configured keys") from None
        register([value])
        return value, row.updated_at

    async def get(self, name: str) -> str:
        return (await self.fetch(name))[0]

    async def delete(self, name: str, *, actor: Actor = SYSTEM, note: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """Delete ``name`` for good (audited ``secret.delete``, with ``note`` in its ``after``); its
        metadata and whether the purge completed (``purged``), or None when there is no such secret."""
        async with self._write() as conn:
            old = await self.remove(conn, name, actor=actor, note=note)
        if old is None:
            return None
        return {**old, "purged": await self.purge()}

    async def remove(self, conn: Conn, name: str, *, actor: Actor = SYSTEM,
                     note: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """What :meth:`delete` does, in the caller's transaction (from :meth:`transaction`); the
        caller calls :meth:`purge` after its commit. The metadata it had, or None."""
        old = await _row(conn, name)
        if old is None:
            return None
        await conn.execute(delete(secrets).where(secrets.c.name == name))
        await append(conn, actor, "secret.delete", target=f"secret/{name}", before=_metadata(old),
                     after={"deleted": True, **(note or {})})
        self._used.pop(name, None)
        return _metadata(old)

    # -- metadata ------------------------------------------------------------------------------
    async def names(self) -> list[str]:
        async with self.store.read() as conn:
            return [r.name for r in await conn.execute(select(secrets.c.name).order_by(secrets.c.name))]

    async def info(self, name: str) -> dict[str, Any] | None:
        """The metadata of ``name`` (never its value), or None."""
        async with self.store.read() as conn:
            row = await _row(conn, name)
        return _metadata(row) if row is not None else None

    async def infos(self) -> list[dict[str, Any]]:
        """The metadata of every secret, by name."""
        async with self.store.read() as conn:
            return [_metadata(r) for r in await conn.execute(select(*_COLUMNS).order_by(secrets.c.name))]

    async def versions(self, names: Iterable[str]) -> dict[str, float]:
        """``updated_at`` of each of ``names`` that exists: a cheap check for changed values."""
        wanted = sorted(set(names))
        if not wanted:
            return {}
        async with self.store.read() as conn:
            rows = await conn.execute(select(secrets.c.name, secrets.c.updated_at).where(secrets.c.name.in_(wanted)))
            return {r.name: r.updated_at for r in rows}

    async def mark_used(self, names: Iterable[str], *, now: float | None = None) -> list[str]:
        """Record that integrations used ``names``: ``last_used_at`` at most once a minute per secret
        (across processes too), not audited. Returns the names written."""
        now = time.time() if now is None else now
        due = sorted({n for n in names if now - self._used.get(n, float("-inf")) >= USE_EVERY})
        if not due:
            return []
        for name in due:
            self._used[name] = now
        async with self.store.write() as conn:
            await conn.execute(secrets.update().where(
                secrets.c.name.in_(due),
                or_(secrets.c.last_used_at.is_(None), secrets.c.last_used_at <= now - USE_EVERY),
            ).values(last_used_at=now))
        return due

    # -- removal for good ------------------------------------------------------------------------
    async def purge(self) -> bool:
        """Make deleted and overwritten ciphertexts unreadable from the database's files; True when
        done. SQLite: the pages were zeroed (``secure_delete``); this copies them into the database
        file and truncates the WAL, whose older frames still held them. PostgreSQL: ``VACUUM FULL``
        rewrites the table without its dead rows (a plain DELETE leaves them in the table's pages).
        Neither reaches copies outside the database's live files: backups, PostgreSQL's WAL archive."""
        try:
            if self.store.is_sqlite:
                return await self._truncate_wal()
            return await self._vacuum_full()
        except Exception as exc:
            log.warning("vault.purge_failed", error=f"{type(exc).__name__}: {exc}")
            return False

    async def _truncate_wal(self) -> bool:
        engine = self.store.sync_engine
        assert engine is not None
        deadline = time.monotonic() + PURGE_WAIT
        with engine.connect() as conn:
            driver = conn.connection.dbapi_connection
            assert driver is not None
            while True:
                busy, _, _ = driver.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
                if not busy:
                    return True
                if time.monotonic() > deadline:
                    log.warning("vault.purge_busy", hint="another connection kept the WAL; it is truncated at the next checkpoint")
                    return False
                await asyncio.sleep(0.05)

    async def _vacuum_full(self) -> bool:
        engine = self.store.engine
        assert engine is not None
        async with engine.connect() as conn:
            auto = await conn.execution_options(isolation_level="AUTOCOMMIT")
            # A transaction begun before the delete may still see the row: VACUUM keeps it for them.
            mark = (await auto.execute(text("SELECT txid_current() % 4294967296"))).scalar()
            deadline = time.monotonic() + PURGE_WAIT
            while (older := (await auto.execute(_OLDER, {"x": str(mark)})).scalar()) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            node = "SELECT pg_relation_filenode('secrets')"
            before = (await auto.exec_driver_sql(node)).scalar()
            # Waiting long for the table's lock would hold up every reader queued behind it.
            await auto.exec_driver_sql(f"SET lock_timeout = '{int(PURGE_WAIT * 1000)}ms'")
            try:
                await auto.exec_driver_sql("VACUUM FULL secrets")  # not the owner: a warning, and nothing done
            finally:
                await auto.exec_driver_sql("RESET lock_timeout")
            rewritten = (await auto.exec_driver_sql(node)).scalar() != before
        if not rewritten:
            log.warning("vault.purge_skipped", hint="VACUUM FULL secrets did nothing: only the table's owner can run it")
        elif older:
            log.warning("vault.purge_incomplete", hint="a transaction older than the delete was still open: "
                        "the table keeps the old row for it until the next VACUUM FULL secrets")
        return rewritten and not older

    # -- keys ------------------------------------------------------------------------------------
    async def rotate(self, new: str, *, actor: Actor = SYSTEM) -> int:
        """Make ``new`` the primary key and re-encrypt every secret with it, in one transaction
        with its audit entry (``keys.rotate``: the names, never a key or a value). Returns how many.
        A secret's metadata stays as it was: a new key is not a new value (no ``rotated_at``)."""
        keys = [new, *(self.keys or [])]
        fernet = _fernet(keys)
        count = 0
        async with self._write() as conn:
            rows = (await conn.execute(select(secrets.c.name, secrets.c.ciphertext))).all()
            for row in rows:
                try:
                    token = fernet.rotate(bytes(row.ciphertext))
                except InvalidToken:
                    raise VaultError(f"secret {row.name!r} can't be decrypted with the configured keys") from None
                await conn.execute(
                    secrets.update().where(secrets.c.name == row.name).values(ciphertext=token, updated_at=time.time())
                )
                count += 1
            await append(conn, actor, "keys.rotate", target="keys", after={
                "re_encrypted": count, "secrets": [r.name for r in rows], "keys": len(keys)})
        self.keys, self._fernet = keys, fernet
        return count
