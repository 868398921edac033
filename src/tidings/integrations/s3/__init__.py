"""Amazon S3 (and S3-compatible stores: MinIO, Ceph, R2) as an archive of every message routed to it.

Each message is one JSON object at ``<prefix>/yyyy/mm/dd/<message id>.json`` (the UTC date it was
created), shaped as the API shows the message (id, project, created_at, title, body, priority,
format, fields, links, labels, keys, source) and, with ``include: [deliveries]``, its delivery
outcomes known at write time. The key is the message id, so a retry overwrites the same object;
with ``skip_existing`` (on by default with Object Lock, whose buckets are versioned) a HeadObject
first finds an object already holding the same bytes and skips the put.

With ``batch: true`` the deliveries the dispatcher hands over together (up to ``max_batch``, see
:class:`~tidings.integrations.base.BatchNotifier`) are one gzip JSON-lines object at
``<prefix>/yyyy/mm/dd/HH-MM-<worker>-<seq>.jsonl.gz`` (the UTC minute of the write); a retried
batch is a new object, so a lost answer can archive a message twice (at least once). See docs/s3.md.
"""

from __future__ import annotations

import asyncio
import gzip
import itertools
import json
import os
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from ...message import Message
from ..base import NO_OPTIONS, RETIRE_GRACE, Attempt, BatchNotifier, IntegrationSettings, Outcome, RenderOptions
from .client import Put, S3Client, classify
from .settings import ObjectLock, S3Settings

CONTENT_TYPE = "application/json"
WORKER = f"{os.getpid()}{uuid.uuid4().hex[:6]}"
"""Names this process in batch keys, so that two workers never write the same key."""
_SEQ = itertools.count(1)


@dataclass(frozen=True, slots=True)
class ArchiveObject:
    """What :meth:`S3Notifier.render` makes: the message's record; the id, time and key come with the attempt."""

    record: dict[str, Any]


def object_key(prefix: str, created_at: float, message_id: str) -> str:
    day = datetime.fromtimestamp(created_at, UTC)
    return f"{prefix}{day:%Y/%m/%d}/{message_id}.json"


def encode(data: dict[str, Any]) -> bytes:
    """Compact, key-ordered UTF-8 JSON: the same record is the same bytes (the skip_existing check relies on it)."""
    return json.dumps(data, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


def batch_key(prefix: str, now: float, seq: int) -> str:
    minute = datetime.fromtimestamp(now, UTC)
    return f"{prefix}{minute:%Y/%m/%d/%H-%M}-{WORKER}-{seq:06d}.jsonl.gz"


class S3Notifier(BatchNotifier):
    kind = "s3"
    Settings = S3Settings
    concurrency = 8
    timeout = 30.0
    settings: S3Settings

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.client = S3Client(self.settings, self.destinations, self.effective_timeout, self.effective_concurrency)

    def reconfigure(self, settings: IntegrationSettings) -> None:
        """New settings (rotated keys), a new client for the next put; the old one closes once its puts are over."""
        old = self.client
        super().reconfigure(settings)
        if old is not self.client:
            async def retire() -> None:
                await asyncio.sleep(self.effective_timeout + RETIRE_GRACE)
                await old.close()

            asyncio.get_running_loop().create_task(retire(), name=f"tidings-retire-{self.name}")

    @property
    def effective_max_batch(self) -> int:
        """One delivery a send, unless ``batch``."""
        return self.settings.max_batch if self.settings.batch else 1

    # -- rendering -------------------------------------------------------------------------------
    def render(self, message: Message, options: RenderOptions = NO_OPTIONS) -> ArchiveObject:
        return ArchiveObject({"project": self.settings.project, **message.to_dict(), "source": message.source})

    def preview(self, payload: ArchiveObject) -> dict[str, Any]:
        record = {"id": "(message id)", "created_at": "(time of the message)", **payload.record}
        if "deliveries" in self.settings.include:
            record["deliveries"] = "(delivery outcomes at write time)"
        if self.settings.batch:
            return {"bucket": self.settings.bucket, "line": record,
                    "key": f"{self.settings.key_prefix}yyyy/mm/dd/HH-MM-(worker)-(seq).jsonl.gz"}
        return {
            "bucket": self.settings.bucket,
            "key": f"{self.settings.key_prefix}yyyy/mm/dd/(message id).json",
            "object": record,
        }

    async def build(self, payload: ArchiveObject, attempt: Attempt) -> Put:
        """The object written for ``attempt``: the same bytes on every retry (without ``include``)."""
        record = {"id": attempt.message_id, "created_at": attempt.created_at, **payload.record}
        if "deliveries" in self.settings.include:
            record["deliveries"] = await self._deliveries(attempt.message_id)
        return Put(object_key(self.settings.key_prefix, attempt.created_at, attempt.message_id), encode(record),
                   CONTENT_TYPE)

    async def _deliveries(self, message_id: str) -> list[dict[str, Any]]:
        from ...store.tables import deliveries as table

        columns = (table.c.id, table.c.integration, table.c.route, table.c.status, table.c.attempts,
                   table.c.delivered_at, table.c.remote_id, table.c.last_error)
        async with self.context.store.read() as conn:
            rows = await conn.execute(select(*columns).where(table.c.message_id == message_id).order_by(table.c.id))
            return [dict(r._mapping) for r in rows]

    # -- sending ---------------------------------------------------------------------------------
    async def send_batch(self, payloads: list[ArchiveObject], attempts: list[Attempt]) -> list[Outcome]:
        if not self.settings.batch:
            return [await self.send(p, a) for p, a in zip(payloads, attempts, strict=True)]
        lines = b"".join(encode({"id": a.message_id, "created_at": a.created_at, **p.record}) + b"\n"
                         for p, a in zip(payloads, attempts, strict=True))
        put = Put(batch_key(self.settings.key_prefix, time.time(), next(_SEQ)), gzip.compress(lines, mtime=0),
                  "application/gzip")
        try:
            etag = await self.client.put(put)
        except Exception as exc:
            return [classify(exc, self.settings)] * len(attempts)
        where = f"s3://{self.settings.bucket}/{put.key}"
        return [Outcome.delivered(f"{where} line {n} {etag}".rstrip()) for n in range(1, len(attempts) + 1)]

    async def send(self, payload: ArchiveObject, attempt: Attempt) -> Outcome:
        if self.settings.batch:
            return (await self.send_batch([payload], [attempt]))[0]
        try:
            put = await self.build(payload, attempt)
            etag = await self.client.put(put, check_existing=self.settings.checks_existing)
        except Exception as exc:  # every failure is classified: a send never raises for the peer's
            return classify(exc, self.settings)
        return Outcome.delivered(f"s3://{self.settings.bucket}/{put.key} {etag}".rstrip())

    async def put(self, key: str, body: bytes, content_type: str = CONTENT_TYPE) -> Outcome:
        """Write another object under the prefix (audit exports and checkpoints), with the integration's
        encryption and retention; never raises for S3's failures."""
        try:
            etag = await self.client.put(Put(self.settings.key_prefix + key, body, content_type))
        except Exception as exc:
            return classify(exc, self.settings)
        return Outcome.delivered(f"s3://{self.settings.bucket}/{self.settings.key_prefix}{key} {etag}".rstrip())

    async def test(self) -> Outcome:
        """HeadBucket (and with object_lock, GetObjectLockConfiguration); writes nothing."""
        try:
            what = await self.client.check()
        except Exception as exc:
            return classify(exc, self.settings)
        return Outcome.delivered(what)

    async def close(self) -> None:
        await self.client.close()
        await super().close()


__all__ = ["ArchiveObject", "ObjectLock", "S3Notifier", "S3Settings", "batch_key", "object_key"]
