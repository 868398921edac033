"""The hub's background signer: a checkpoint every ``audit.checkpoint_every`` entries or once the
oldest unsigned entry is ``audit.checkpoint_interval`` old, whichever comes first.

Every dispatching worker runs one; :func:`make_checkpoint` decides under the appenders' lock, so
with many workers on PostgreSQL a given tree size is signed once. With ``audit.archive`` the worker
that signed a checkpoint copies it to that integration (:mod:`.archive`); a copy that fails is
tried again on the next look, while the worker runs."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import structlog
from sqlalchemy import func, select

from ..background import Background
from ..config.models import AuditSettings
from ..security.redact import clip
from ..store.engine import Store
from ..store.tables import audit_checkpoints, audit_log
from .archive import ObjectArchive, checkpoint_body, checkpoint_key
from .checkpoints import KEY_ENV, KEY_FILE, Checkpoint, Signer, load_signer, make_checkpoint

log = structlog.get_logger("tidings.audit")


class Checkpointer(Background):
    """Signs checkpoints while the hub runs, looking every ``poll`` seconds."""

    task_name = "tidings-audit-checkpoints"

    def __init__(self, store: Store, signer: Signer, settings: AuditSettings, *, poll: float = 5.0,
                 archive: ObjectArchive | None = None) -> None:
        self.store = store
        self.signer = signer
        self.settings = settings
        self.poll = min(poll, settings.checkpoint_interval)
        self.archive = archive
        self.uncopied: list[Checkpoint] = []

    async def due(self, now: float | None = None) -> bool:
        """Whether a checkpoint is due (a read only: most looks find nothing to do and take no lock)."""
        now = time.time() if now is None else now
        async with self.store.read() as conn:
            head = (await conn.execute(select(func.max(audit_log.c.seq)))).scalar() or 0
            last = (await conn.execute(select(func.max(audit_checkpoints.c.tree_size)))).scalar() or 0
            if head <= last:
                return False
            if head - last >= self.settings.checkpoint_every:
                return True
            oldest = (await conn.execute(select(audit_log.c.at).where(audit_log.c.seq == last + 1))).scalar()
        return oldest is not None and now - oldest >= self.settings.checkpoint_interval

    async def tick(self) -> Checkpoint | None:
        """Sign a checkpoint if one is due (and copy what is still to be copied); the checkpoint, or None."""
        cp = None
        if await self.due():
            cp = await make_checkpoint(self.store, self.signer, every=self.settings.checkpoint_every,
                                       interval=self.settings.checkpoint_interval)
            if cp is not None:
                log.info("audit.checkpoint", tree_size=cp.tree_size, key_id=cp.key_id)
                if self.archive is not None:
                    self.uncopied = [*self.uncopied, cp][-1000:]
        await self.copy()
        return cp

    async def copy(self) -> None:
        """Copy the signed checkpoints not copied yet to ``audit.archive``, oldest first."""
        while self.uncopied and self.archive is not None:
            cp = self.uncopied[0]
            outcome = await self.archive.put(checkpoint_key(cp), checkpoint_body(cp))
            if not outcome.ok:
                log.warning("audit.checkpoint_copy_failed", tree_size=cp.tree_size, archive=self.settings.archive,
                            error=clip(outcome.error or "", 300))
                return
            self.uncopied.pop(0)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.poll)
            try:
                await self.tick()
            except Exception as exc:  # the next look tries again; the entries wait, signed later
                log.warning("audit.checkpoint_failed", error=clip(f"{type(exc).__name__}: {exc}", 300))


def checkpointer_for(store: Store, config_dir: Path, settings: AuditSettings, *, poll: float,
                     archive: ObjectArchive | None = None) -> Checkpointer | None:
    """A checkpointer with the key of ``config_dir`` (or ``TIDINGS_AUDIT_KEY``); None, with a log
    line saying why, when there is no key. A key that others can read stops the start."""
    signer = load_signer(config_dir)
    if signer is None:
        log.info("audit.checkpoints_off", reason=f"no signing key: set {KEY_ENV} or run `tidings audit keygen` "
                 f"(writes {config_dir / KEY_FILE})")
        return None
    return Checkpointer(store, signer, settings, poll=poll, archive=archive)
