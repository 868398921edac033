"""Secrets at rest: Fernet-encrypted in the database, keys that rotate (MultiFernet).

The key comes from ``TIDINGS_SECRET_KEY`` (comma-separated, newest first) or from a key file
(``tidings.key``, mode 0600, one key per line, newest first) that ``tidings init`` creates.
"""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import delete, select

from ..audit import SYSTEM, Actor, append
from ..errors import VaultError
from ..store.engine import Store
from ..store.tables import secrets
from .redact import register

KEY_ENV = "TIDINGS_SECRET_KEY"
KEY_FILE_ENV = "TIDINGS_KEY_FILE"
DEFAULT_KEY_FILE = "tidings.key"


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


def _fernet(keys: list[str]) -> MultiFernet:
    try:
        return MultiFernet([Fernet(k.encode()) for k in keys])
    except (ValueError, TypeError):
        raise VaultError("a secret key is not a valid Fernet key (32 url-safe base64 bytes)") from None


class Vault:
    """Encrypted named secrets. ``get`` decrypts with any known key; ``set`` uses the newest."""

    def __init__(self, store: Store, keys: list[str] | None) -> None:
        self.store = store
        self.keys = keys
        self._fernet = _fernet(keys) if keys else None

    @property
    def available(self) -> bool:
        return self._fernet is not None

    def _require(self) -> MultiFernet:
        if self._fernet is None:
            raise VaultError(
                f"no secret key: set {KEY_ENV} or run `tidings init` to create {DEFAULT_KEY_FILE}"
            )
        return self._fernet

    async def set(self, name: str, value: str) -> None:
        token = self._require().encrypt(value.encode())
        register([value])
        now = time.time()
        async with self.store.write() as conn:
            await conn.execute(delete(secrets).where(secrets.c.name == name))
            await conn.execute(secrets.insert().values(name=name, ciphertext=token, created_at=now, updated_at=now))

    async def get(self, name: str) -> str:
        async with self.store.read() as conn:
            token = (await conn.execute(select(secrets.c.ciphertext).where(secrets.c.name == name))).scalar()
        if token is None:
            raise VaultError(f"no secret named {name!r} in the vault (tidings secret set {name})")
        try:
            value = self._require().decrypt(bytes(token)).decode()
        except InvalidToken:
            raise VaultError(f"secret {name!r} can't be decrypted with the configured keys") from None
        register([value])
        return value

    async def delete(self, name: str) -> bool:
        async with self.store.write() as conn:
            result = await conn.execute(delete(secrets).where(secrets.c.name == name))
        return bool(result.rowcount)

    async def names(self) -> list[str]:
        async with self.store.read() as conn:
            return [r.name for r in await conn.execute(select(secrets.c.name).order_by(secrets.c.name))]

    async def rotate(self, new: str, *, actor: Actor = SYSTEM) -> int:
        """Make ``new`` the primary key and re-encrypt every secret with it, in one transaction
        with its audit entry (``keys.rotate``: the names, never a key or a value). Returns how many."""
        keys = [new, *(self.keys or [])]
        fernet = _fernet(keys)
        count = 0
        async with self.store.write() as conn:
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
