"""Signed checkpoints: (tree size, head hash, time) signed with an Ed25519 key kept outside the
database (``tidings.audit.key`` beside the vault's key, or ``TIDINGS_AUDIT_KEY``). Anyone with the
public key alone can check an exported trail against them."""

from __future__ import annotations

import base64
import hashlib
import os
import stat
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import func, select, text
from sqlalchemy.dialects import postgresql, sqlite

from ..errors import TidingsError
from ..store.engine import Store
from ..store.tables import audit_checkpoints, audit_log
from .chain import PG_LOCK_ID

KEY_ENV = "TIDINGS_AUDIT_KEY"
KEY_FILE = "tidings.audit.key"
DOMAIN = b"tidings-audit-checkpoint-v1"


class AuditKeyError(TidingsError):
    """The audit signing key is missing, unreadable or not private."""


@dataclass(frozen=True, slots=True)
class Checkpoint:
    tree_size: int
    head_hash: str
    at: float
    key_id: str
    signature: str

    def signed_bytes(self) -> bytes:
        return DOMAIN + rfc8785.dumps({"tree_size": self.tree_size, "head_hash": self.head_hash, "at": self.at})

    def valid(self, public_key: Ed25519PublicKey) -> bool:
        try:
            public_key.verify(base64.b64decode(self.signature), self.signed_bytes())
        except (InvalidSignature, ValueError):
            return False
        return True

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def key_id(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def public_key_text(public_key: Ed25519PublicKey) -> str:
    """The public key as base64 of its 32 raw bytes (what ``verify --public-key`` takes)."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def public_key_pem(public_key: Ed25519PublicKey) -> str:
    return public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def parse_public_key(value: str) -> Ed25519PublicKey:
    """A public key given as base64 of its 32 raw bytes or as PEM; :class:`AuditKeyError` if not one."""
    value = value.strip()
    if value.startswith("-----BEGIN"):
        try:
            key = serialization.load_pem_public_key(value.encode())
        except (ValueError, TypeError) as exc:
            raise AuditKeyError(f"not a PEM public key: {exc}") from None
        if not isinstance(key, Ed25519PublicKey):
            raise AuditKeyError("not an Ed25519 public key")
        return key
    try:
        return Ed25519PublicKey.from_public_bytes(base64.b64decode(value, validate=True))
    except ValueError as exc:
        raise AuditKeyError(f"not an Ed25519 public key: {exc}") from None


class Signer:
    """Signs checkpoints with one private key."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key
        self.public_key = private_key.public_key()
        self.key_id = key_id(self.public_key)

    def sign(self, tree_size: int, head_hash: str, at: float) -> Checkpoint:
        unsigned = Checkpoint(tree_size, head_hash, round(at, 6), self.key_id, "")
        signature = base64.b64encode(self._key.sign(unsigned.signed_bytes())).decode()
        return Checkpoint(tree_size, head_hash, unsigned.at, self.key_id, signature)


def key_path(config_dir: Path | None = None) -> Path:
    """Where the signing key file is: ``tidings.audit.key`` beside the vault's ``tidings.key``
    (``TIDINGS_KEY_FILE`` moves both), by default in the config's directory."""
    from ..security.vault import key_file_path  # not at import time: the vault appends audit entries

    return key_file_path(config_dir).with_name(KEY_FILE)


def load_signer(config_dir: Path | None = None, *, create: bool = False) -> Signer | None:
    """The signing key from ``TIDINGS_AUDIT_KEY`` (PEM) or ``tidings.audit.key`` beside the
    vault's key (mode 0600, refused when others can read it); created when ``create`` and missing."""
    if pem := os.environ.get(KEY_ENV):
        return Signer(_private_from_pem(pem.encode(), KEY_ENV))
    path = key_path(config_dir)
    if not path.exists():
        if not create:
            return None
        key = Ed25519PrivateKey.generate()
        pem_bytes = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem_bytes)
        return Signer(key)
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise AuditKeyError(f"{path} is readable by others (mode {stat.filemode(mode)}); run: chmod 600 {path}")
    return Signer(_private_from_pem(path.read_bytes(), str(path)))


def _private_from_pem(data: bytes, where: str) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise AuditKeyError(f"{where}: not a PEM private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise AuditKeyError(f"{where}: not an Ed25519 key")
    return key


async def make_checkpoint(
    store: Store, signer: Signer, *, at: float | None = None, every: int | None = None, interval: float | None = None
) -> Checkpoint | None:
    """Sign the current head and store the checkpoint; None when the trail is empty, the head is
    checkpointed already, or (with ``every``/``interval``) none is due yet: fewer than ``every``
    entries since the last checkpoint and the oldest of them younger than ``interval`` seconds.

    Idempotent across processes: the decision and the insert happen under the appenders' lock
    (PostgreSQL's advisory lock, SQLite's write lock), so two workers never both sign a size, and
    a checkpoint of the same ``tree_size`` already stored is kept."""
    now = time.time() if at is None else at
    async with store.write() as conn:
        if conn.dialect.name == "postgresql":
            await conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": PG_LOCK_ID})
        head = (
            await conn.execute(select(audit_log.c.seq, audit_log.c.hash).order_by(audit_log.c.seq.desc()).limit(1))
        ).first()
        if head is None:
            return None
        last = (await conn.execute(select(func.max(audit_checkpoints.c.tree_size)))).scalar() or 0
        if last >= head.seq:
            return None
        if every is not None or interval is not None:
            pending = head.seq - last
            oldest = (await conn.execute(select(audit_log.c.at).where(audit_log.c.seq == last + 1))).scalar()
            old_enough = interval is not None and oldest is not None and now - oldest >= interval
            if not (old_enough or (every is not None and pending >= every)):
                return None
        cp = signer.sign(head.seq, head.hash, now)
        ins = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(audit_checkpoints)
        await conn.execute(ins.values(**cp.as_dict()).on_conflict_do_nothing(index_elements=[audit_checkpoints.c.tree_size]))
        return cp


async def head(store: Store) -> tuple[int, int]:
    """(the last entry's ``seq``, the last checkpoint's ``tree_size``); 0 for none."""
    async with store.read() as conn:
        seq = (await conn.execute(select(func.max(audit_log.c.seq)))).scalar()
        size = (await conn.execute(select(func.max(audit_checkpoints.c.tree_size)))).scalar()
    return int(seq or 0), int(size or 0)


async def load_checkpoints(store: Store) -> list[Checkpoint]:
    async with store.read() as conn:
        rows = await conn.execute(select(audit_checkpoints).order_by(audit_checkpoints.c.tree_size))
        return [Checkpoint(r.tree_size, r.head_hash, r.at, r.key_id, r.signature) for r in rows]
