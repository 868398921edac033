"""The syslog channel of bench/throughput.py: a real rsyslog (tests/rsyslog.py: imtcp with gtls, a
test CA) as the peer, and as the baseline a bare asyncio TLS writer sending the same frames over
one connection to the same rsyslog. Messages are counted as rsyslog writes them to its file (the
distinct markers ``benchref<n>x``), read incrementally."""

from __future__ import annotations

import asyncio
import re
import ssl
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _durable import Journal

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from rsyslog import Rsyslog, available, gtls_available  # noqa: E402

MARKER = re.compile(rb"benchref(\d+)x")


def rsyslog_available() -> bool:
    return available() and gtls_available()


class RsyslogPeer:
    """What throughput.py asks of a peer: ``distinct``, ``reset()``, ``wait_ready()``, a context."""

    def __init__(self) -> None:
        if not rsyslog_available():
            raise SystemExit("the syslog channel needs rsyslogd with gtls: apt-get install -y rsyslog rsyslog-gnutls")
        self._tmp = tempfile.TemporaryDirectory()
        self.server = Rsyslog(Path(self._tmp.name))
        self.port = self.server.tls
        self._offset = 0
        self._seen: set[bytes] = set()
        self._tail = b""

    def __enter__(self) -> RsyslogPeer:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop()
        self._tmp.cleanup()

    def wait_ready(self) -> None:
        """start() already waits until every port listens."""

    @property
    def log(self) -> Path:
        return self.server.dir / "tls.log"

    def reset(self) -> None:
        self._offset = self.log.stat().st_size if self.log.exists() else 0
        self._seen.clear()
        self._tail = b""

    @property
    def distinct(self) -> int:
        if self.log.exists():
            with self.log.open("rb") as f:
                f.seek(self._offset)
                chunk = f.read()
            self._offset += len(chunk)
            data, _, self._tail = (self._tail + chunk).rpartition(b"\n")
            self._seen.update(MARKER.findall(data))
        return len(self._seen)

    def integration(self) -> dict[str, Any]:
        return {"kind": "syslog", "host": "127.0.0.1", "port": self.port, "transport": "tls",
                "tls_ca_file": str(self.server.pki.ca), "tls_server_name": "localhost"}


def frames(peer: RsyslogPeer, messages: list[Any]) -> list[bytes]:
    """The frames tidings sends for ``messages`` (rendered here, before any clock starts)."""
    from tidings.integrations.base import Attempt, Context
    from tidings.integrations.syslog import SyslogNotifier, SyslogSettings
    from tidings.security.outbound import Destinations

    n = SyslogNotifier("bench", SyslogSettings(**peer.integration()),
                       Context(store=None, threads=None, destinations=Destinations.anywhere()))  # type: ignore[arg-type]
    now = time.time()
    out = []
    for i, m in enumerate(messages):
        raw = n.frame(n.render(m), Attempt(f"dlv{i}", f"msg{i}", 1, now, m))
        out.append(n.connection.framed(raw))
    return out


CHUNK = 64
"""Frames written between two drains."""


async def tls_writer(peer: RsyslogPeer, data: list[bytes], wait: Any, journal: Journal | None = None,
                     ) -> tuple[float, float]:
    """A bare asyncio TLS client: one connection, the frames written back to back; timed until
    rsyslog has written every one. Frames per second, and this process's CPU seconds meanwhile.
    With a ``journal``, each chunk of frames is committed to it before it is written and marked
    sent once drained."""
    ctx = ssl.create_default_context(cafile=str(peer.server.pki.ca))
    started, cpu = time.perf_counter(), time.process_time()
    reader, writer = await asyncio.open_connection("127.0.0.1", peer.port, ssl=ctx, server_hostname="localhost")
    for k in range(0, len(data), CHUNK):
        chunk = data[k:k + CHUNK]
        if journal is not None:
            await journal.keep(k, chunk)
        for frame in chunk:
            writer.write(frame)
        await writer.drain()
        if journal is not None:
            await journal.sent(k, len(chunk))
    await wait(peer, len(data))
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    writer.close()
    try:
        await writer.wait_closed()
    except (OSError, ssl.SSLError):
        pass
    return len(data) / elapsed, cpu
