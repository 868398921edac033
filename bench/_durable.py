"""A journal for the durable baselines of bench/throughput.py's splunk and syslog channels.

What any sender that must not lose what it was handed does at the least: each batch written and
committed before it goes out, and marked sent (another commit) once the peer has it. SQLite in WAL
mode with ``synchronous=FULL``, as tidings' store, the statements in a thread as tidings' are; one row
per event, no index but the key. tidings does more per message (routing, a message row and a
delivery row per target, leases, its outcome's details), so this is a floor for a durable sender,
not a copy of tidings."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path


class Journal:
    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("CREATE TABLE IF NOT EXISTS sent (id INTEGER PRIMARY KEY, body BLOB NOT NULL, done INTEGER NOT NULL)")
        self.lock = threading.Lock()

    def _run(self, sql: str, rows: list[tuple[object, ...]]) -> None:
        with self.lock:
            self.db.execute("BEGIN")
            self.db.executemany(sql, rows)
            self.db.execute("COMMIT")

    async def keep(self, first: int, bodies: list[bytes]) -> None:
        """Rows ``first``... for ``bodies``, committed."""
        rows = [(first + i, body, 0) for i, body in enumerate(bodies)]
        await asyncio.to_thread(self._run, "INSERT INTO sent (id, body, done) VALUES (?, ?, ?)", rows)

    async def sent(self, first: int, count: int) -> None:
        """Rows ``first``... (``count`` of them) marked sent, committed."""
        rows = [(first + i,) for i in range(count)]
        await asyncio.to_thread(self._run, "UPDATE sent SET done = 1 WHERE id = ?", rows)

    def close(self) -> None:
        self.db.close()
