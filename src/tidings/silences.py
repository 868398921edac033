"""Silences: for a while, messages whose labels match are recorded as ``suppressed``, not sent.

A silence is a set of matchers (label -> value, all of which a message must carry, exactly) and
an end time. ``silence alertname=DiskFull,instance=web-01 2h`` silences every message labelled
``alertname=DiskFull`` *and* ``instance=web-01`` for two hours; a bare word is shorthand for the
message's source, so ``silence github 30m`` silences everything the ``github`` receiver emits
(``source=github``). Like Alertmanager, a silenced message is not delivered at all, its
resolution included: each of its deliveries is stored ``suppressed`` (visible in its history).

The check runs on every ``Hub.notify``, so it never queries the database: :class:`Silences`
keeps the active ones in memory, reloaded when this process changes one and every
``refresh`` seconds (so a silence made by another worker applies there within that time).

A silence belongs to a project and silences only that project's messages.
"""

from __future__ import annotations

import asyncio
import re
import shlex
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite

from .audit import SYSTEM, Actor, append
from .background import Background, Loads
from .errors import TidingsError
from .ids import new_id
from .integrations.base import DEFAULT_PROJECT
from .store.engine import Store
from .store.tables import silences
from .units import parse_duration

log = structlog.get_logger("tidings.silences")

MAX_DURATION = 30 * 86400.0
"""The longest silence: anything longer is a route change, not a silence."""
MAX_MATCHERS = 20
_LABEL = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]{0,99}$")
_DURATION = re.compile(r"^(?:\d+(?:\.\d+)?(?:ms|s|m|h|d|w))+$", re.IGNORECASE)
_QUOTES = str.maketrans({"“": '"', "”": '"', "„": '"', "‘": "'", "’": "'"})
"""Slack turns typed quotes into typographic ones."""


class SilenceError(TidingsError):
    """A silence that can't be made (bad matchers or duration), with a reason for the user."""


@dataclass(frozen=True, slots=True)
class Silence:
    id: str
    matchers: dict[str, str]
    until: float
    created_at: float
    created_by: str
    reason: str | None = None
    project: str = DEFAULT_PROJECT

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(labels.get(k) == v for k, v in self.matchers.items())

    def describe(self) -> str:
        return ",".join(f"{k}={v}" for k, v in self.matchers.items())

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "matchers": dict(self.matchers), "until": self.until, "created_at": self.created_at,
            "created_by": self.created_by, "reason": self.reason, "project": self.project,
        }


# -- parsing --------------------------------------------------------------------------------------
def is_duration(word: str) -> bool:
    """A duration with its unit (``30m``, ``2h``, ``1d``, ``1h30m``); a bare number is not one."""
    return bool(_DURATION.match(word))


def parse_silence_duration(word: str) -> float:
    if not is_duration(word):
        raise SilenceError(f"{word!r} is not a duration: write e.g. 30m, 2h, 1d")
    seconds = parse_duration(word)
    if seconds <= 0:
        raise SilenceError("a silence lasts longer than 0s")
    if seconds > MAX_DURATION:
        raise SilenceError("a silence lasts at most 30d (change the routes for longer)")
    return seconds


def parse_matchers(words: list[str]) -> dict[str, str]:
    """``label=value`` words (or comma-separated in one word); one bare word means ``source=word``."""
    if not words:
        raise SilenceError("say what to silence: label=value[,label=value...] or a source name")
    if len(words) == 1 and "=" not in words[0]:
        words = [f"source={words[0]}"]
    matchers: dict[str, str] = {}
    for word in words:
        for part in word.split(","):
            if not part:
                continue
            name, eq, value = part.partition("=")
            if not eq:
                raise SilenceError(f"{part!r}: write label=value")
            matchers[name.strip()] = value
    if not matchers:
        raise SilenceError("say what to silence: label=value[,label=value...]")
    return check_matchers(matchers)


def check_matchers(matchers: dict[str, str]) -> dict[str, str]:
    """``matchers`` if every name is a label name and every value one a label can have; else SilenceError."""
    for name, value in matchers.items():
        if not _LABEL.match(name):
            raise SilenceError(f"{name!r} is not a label name (letters, digits, _ . -)")
        if not value:
            raise SilenceError(f"{name}=: give the value to match")
        if len(value) > 500:
            raise SilenceError(f"{name}: a label value is at most 500 characters")
        if "\x00" in value:
            raise SilenceError(f"{name}: a label value has no NUL characters")
    if len(matchers) > MAX_MATCHERS:
        raise SilenceError(f"at most {MAX_MATCHERS} matchers")
    return matchers


def split_words(text: str) -> list[str]:
    """Command text split like a shell (``alertname="Disk full"`` is one word)."""
    try:
        return shlex.split(text.translate(_QUOTES))
    except ValueError as exc:
        raise SilenceError(f"can't read the command: {exc}") from None


def parse_silence(words: list[str]) -> tuple[dict[str, str], float, str | None]:
    """``<matchers...> <duration> [reason...]`` -> (matchers, seconds, reason)."""
    at = next((i for i, w in enumerate(words) if "=" not in w and is_duration(w)), None)
    if at is None:
        raise SilenceError("give a duration with its unit after the matchers, e.g. 2h")
    matchers = parse_matchers(words[:at])
    seconds = parse_silence_duration(words[at])
    reason = " ".join(words[at + 1 :]).strip()[:1000] or None
    return matchers, seconds, reason


def silence_id_for(seed: str) -> str:
    """A stable silence id for a request (an inbound event id): doing it twice makes one silence."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"tidings:silence:{seed}"))


# -- the in-memory view ---------------------------------------------------------------------------
class Silences(Background):
    """The active silences of one store, in memory, reloaded every ``refresh`` seconds."""

    task_name = "tidings-silences"

    def __init__(self, store: Store, *, refresh: float = 5.0) -> None:
        self.store = store
        self.refresh = refresh
        self._active: tuple[Silence, ...] = ()
        self._by_project: dict[str, tuple[Silence, ...]] = {}
        self._loads = Loads()

    def match(self, labels: Mapping[str, str], now: float | None = None, project: str = DEFAULT_PROJECT) -> Silence | None:
        """The active silence of ``project`` covering these labels, if any. No I/O."""
        if not self._active:
            return None
        now = time.time() if now is None else now
        for s in self._by_project.get(project, ()):
            if s.until > now and s.matches(labels):
                return s
        return None

    @property
    def active(self) -> list[Silence]:
        """The active silences of every project."""
        now = time.time()
        return [s for s in self._active if s.until > now]

    def active_in(self, project: str | None) -> list[Silence]:
        """The active silences of ``project`` (None: of every project)."""
        return self.active if project is None else [s for s in self.active if s.project == project]

    async def load(self) -> None:
        load = self._loads.begin()
        now = time.time()
        async with self.store.read() as conn:
            rows = (await conn.execute(select(silences).where(silences.c.until > now).order_by(silences.c.until))).all()
        if not self._loads.show(load):
            return
        active = tuple(_silence(r) for r in rows)
        by_project: dict[str, list[Silence]] = {}
        for s in active:
            by_project.setdefault(s.project, []).append(s)
        self._active, self._by_project = active, {p: tuple(v) for p, v in by_project.items()}

    async def ended(self, project: str | None, limit: int = 50) -> list[Silence]:
        """The silences of ``project`` (None: of every project) that have ended, most recently ended
        first, at most ``limit``. Read from the store: the in-memory view keeps only active ones."""
        q = select(silences).where(silences.c.until <= time.time())
        if project is not None:
            q = q.where(silences.c.project == project)
        async with self.store.read() as conn:
            rows = (await conn.execute(q.order_by(silences.c.until.desc(), silences.c.id).limit(limit))).all()
        return [_silence(r) for r in rows]

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.refresh)
            try:
                await self.load()
            except Exception as exc:  # keep the last known silences; try again later
                log.warning("silences.reload_failed", error=f"{type(exc).__name__}: {exc}")

    async def create(
        self,
        matchers: Mapping[str, str],
        seconds: float,
        *,
        by: str,
        reason: str | None = None,
        silence_id: str | None = None,
        project: str = DEFAULT_PROJECT,
        actor: Actor = SYSTEM,
    ) -> tuple[Silence, bool]:
        """Store a silence of ``project`` (``silence_id`` makes it idempotent); (the silence, whether
        it is new). A new silence is audited (``silence.create``) in the same transaction."""
        if not matchers:
            raise SilenceError("a silence needs at least one matcher")
        if not 0 < seconds <= MAX_DURATION:
            raise SilenceError("a silence lasts more than 0s and at most 30d")
        now = time.time()
        row = {
            "id": silence_id or new_id(), "matchers": dict(matchers), "until": now + seconds, "created_at": now,
            "created_by": by[:200], "reason": reason, "project": project,
        }
        async with self.store.write() as conn:
            ins = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(silences)
            stmt = ins.values(**row).on_conflict_do_nothing(index_elements=[silences.c.id]).returning(silences.c.id)
            created = (await conn.execute(stmt)).first() is not None
            found = (await conn.execute(select(silences).where(silences.c.id == row["id"]))).one()
            if created:
                await append(conn, actor, "silence.create", target=f"silence/{found.id}", project=found.project,
                             after=_silence(found).to_dict(), at=now)
        await self.load()
        return _silence(found), created

    async def expire(self, silence_id: str, project: str | None = None, *, actor: Actor = SYSTEM) -> Silence | None:
        """End a silence now (audited as ``silence.end``); None when there is no active silence
        with that id (or id prefix) in ``project`` (None: in any project)."""
        now = time.time()
        async with self.store.write() as conn:
            q = select(silences).where(silences.c.until > now)
            if project is not None:
                q = q.where(silences.c.project == project)
            rows = (await conn.execute(q)).all()
            hits = [r for r in rows if r.id == silence_id] or [r for r in rows if r.id.startswith(silence_id)]
            if len(hits) != 1:
                return None
            await conn.execute(update(silences).where(silences.c.id == hits[0].id).values(until=now))
            found = _silence(hits[0])
            await append(conn, actor, "silence.end", target=f"silence/{found.id}", project=hits[0].project,
                         before={"until": found.until}, after={"until": now}, at=now)
        await self.load()
        return found


def _silence(row: Any) -> Silence:
    return Silence(row.id, dict(row.matchers), row.until, row.created_at, row.created_by, row.reason, row.project)
