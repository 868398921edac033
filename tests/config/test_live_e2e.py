"""Live reload end to end: real `tidings worker` processes follow the configuration while it
changes under a stream of messages.

The test's own hub (no dispatcher) sends the messages through ``Hub.notify`` and commits the
revisions; each revision adds, changes or removes integrations and routes (webhooks to a local
sink that records every request with its delivery id). At the end: every message was delivered
exactly once to the integrations the revision its hub ran routed it to; deliveries of integrations
removed meanwhile were held, with the reason, and delivered once those came back; no process ran
a revision older than the current one for more than 2 s after its commit (``config_processes``).

The PostgreSQL run (slow: two workers, 50 revisions, 5,000 messages) is the issue's; the SQLite
run (one worker, 10 revisions, 500 messages) is its quick version for every test run.
"""

from __future__ import annotations

import asyncio
import collections
import copy
import json
import random
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from helpers import start_worker, stop_all
from sqlalchemy import func, select

from tidings import Message
from tidings.config import load_config, revisions
from tidings.config.document import to_config
from tidings.hub import Hub
from tidings.store.tables import config_processes, config_revisions, deliveries

STALE_LIMIT = 2.0
"""Seconds a process may run a revision older than the current one after its commit."""
POOL = ["base", "w1", "w2", "w3", "w4", "w5", "w6", "slow1", "slow2"]
"""Every integration the scenario may hold; ``base`` (the default route's fallback) stays."""
TEAMS = [f"t{i}" for i in range(7)]
"""A message's ``team`` label picks its route (t6 has none at first: the default)."""
SLOW_DELAY = 0.02
"""The sink answers integrations named slow* late, so they keep a backlog a removal must hold."""


# -- the sink ------------------------------------------------------------------------------------
@dataclass
class Arrival:
    integration: str
    delivery: str
    worker: str
    version: str


@dataclass
class Recorder:
    """An HTTP sink on 127.0.0.1: each integration posts to ``/<its name>``; every request is kept."""

    arrivals: list[Arrival] = field(default_factory=list)
    runner: web.AppRunner | None = None
    port: int = 0

    async def start(self) -> None:
        async def handle(request: web.Request) -> web.Response:
            await request.read()
            name = request.path.strip("/")
            self.arrivals.append(Arrival(name, request.headers.get("Idempotency-Key", ""),
                                         request.headers.get("X-Worker", ""), request.headers.get("X-Version", "")))
            if name.startswith("slow"):
                await asyncio.sleep(SLOW_DELAY)
            return web.Response()

        app = web.Application()
        app.router.add_post("/{name}", handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


# -- the scenario ----------------------------------------------------------------------------------
def integration(sink: Recorder, name: str, version: int) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "kind": "webhook",
        "url": f"http://127.0.0.1:{sink.port}/{name}",
        # Each process resolves ${ENV} itself: the sink learns which worker sent.
        "headers": {"X-Worker": "${WORKER_NAME:-writer}", "X-Version": str(version)},
        "description": f"version {version}",
    }
    if name.startswith("slow"):
        settings["concurrency"] = 2
    return settings


def first_document(sink: Recorder) -> dict[str, Any]:
    return {
        "integrations": {n: integration(sink, n, 1) for n in ("base", "w1", "w2", "w3", "slow1")},
        "routes": [
            {"name": "r-t0", "match": {"labels": {"team": "t0"}}, "to": ["w1"]},
            {"name": "r-t1", "match": {"labels": {"team": "t1"}}, "to": ["w2", "w3"]},
            {"name": "r-t2", "match": {"labels": {"team": "t2"}}, "to": ["slow1"], "continue": True},
            {"name": "r-t2b", "match": {"labels": {"team": "t2"}}, "to": ["w3"]},
            {"name": "r-t3", "match": {"labels": {"team": "t3"}}, "to": ["slow1"]},
        ],
        "default": {"to": ["base"]},
    }


def expected_targets(doc: dict[str, Any], team: str) -> list[str]:
    """Where ``doc`` routes a message of ``team``: the routes in order (``continue`` goes on),
    else the default; each integration once."""
    found: list[str] = []
    for route in doc["routes"]:
        if route["match"]["labels"].get("team") == team:
            found += route["to"]
            if not route.get("continue"):
                break
    return list(dict.fromkeys(found or doc["default"]["to"]))


class Scenario:
    """Makes each next document from the last: the steps cycle through adding, changing and
    removing integrations, retargeting, adding, removing and moving routes, and the default."""

    def __init__(self, sink: Recorder, seed: int) -> None:
        self.sink = sink
        self.rng = random.Random(seed)
        self.version = collections.Counter({n: 1 for n in POOL})
        self.step = 0

    def next(self, doc: dict[str, Any]) -> dict[str, Any]:
        while True:
            new = copy.deepcopy(doc)
            getattr(self, f"_op{self.step % 6}")(new)
            self.step += 1
            if new != doc:
                return new

    def restore(self, doc: dict[str, Any]) -> dict[str, Any]:
        """Every integration of the pool back (what was removed had deliveries held)."""
        new = copy.deepcopy(doc)
        for name in POOL:
            if name not in new["integrations"]:
                self.version[name] += 1
                new["integrations"][name] = integration(self.sink, name, self.version[name])
        return new

    def _present(self, doc: dict[str, Any], *, keep_base: bool = False) -> list[str]:
        # Only the pool's: a stored document also names the built-in ``inbox``.
        return [n for n in doc["integrations"] if n in POOL and not (keep_base and n == "base")]

    def _op0(self, doc: dict[str, Any]) -> None:  # add an integration and a route to it
        absent = [n for n in POOL if n not in doc["integrations"]]
        if not absent:
            return self._op2(doc)
        name = self.rng.choice(absent)
        self.version[name] += 1
        doc["integrations"][name] = integration(self.sink, name, self.version[name])
        route = {"name": f"r-{name}-{self.step}", "match": {"labels": {"team": self.rng.choice(TEAMS)}}, "to": [name]}
        doc["routes"].insert(self.rng.randrange(len(doc["routes"]) + 1), route)

    def _op1(self, doc: dict[str, Any]) -> None:  # change an integration (rebuilt, same URL)
        name = self.rng.choice(self._present(doc))
        self.version[name] += 1
        doc["integrations"][name] = integration(self.sink, name, self.version[name])
        doc["integrations"][name]["timeout"] = self.rng.choice(["5s", "10s", "20s"])

    def _op2(self, doc: dict[str, Any]) -> None:  # remove an integration and its place in routes
        present = self._present(doc, keep_base=True)
        if len(present) < 3:
            return self._op0(doc)
        name = self.rng.choice(present)
        del doc["integrations"][name]
        for route in doc["routes"]:
            route["to"] = [n for n in route["to"] if n != name]
        doc["routes"] = [r for r in doc["routes"] if r["to"]]
        if name in doc["default"]["to"]:
            doc["default"]["to"] = ["base"]

    def _op3(self, doc: dict[str, Any]) -> None:  # retarget a route
        if not doc["routes"]:
            return self._op4(doc)
        self.rng.choice(doc["routes"])["to"] = [self.rng.choice(self._present(doc))]

    def _op4(self, doc: dict[str, Any]) -> None:  # add, remove or move a route
        routes = doc["routes"]
        choice = self.rng.random()
        if routes and (choice < 0.35 or len(routes) > 8):
            routes.pop(self.rng.randrange(len(routes)))
        elif routes and choice < 0.7:
            routes.insert(0, routes.pop(self.rng.randrange(len(routes))))
        else:
            routes.append({"name": f"r-{self.step}", "match": {"labels": {"team": self.rng.choice(TEAMS)}},
                           "to": [self.rng.choice(self._present(doc))], "continue": self.rng.random() < 0.3})

    def _op5(self, doc: dict[str, Any]) -> None:  # change the default route
        doc["default"]["to"] = self.rng.sample(self._present(doc), k=min(2, len(doc["integrations"])))


# -- processes -------------------------------------------------------------------------------------
def write_config(path: Path, database: str, doc: dict[str, Any]) -> None:
    # JSON is YAML: the database URL (?options=-csearch_path%3D...) survives as a quoted scalar.
    path.write_text(json.dumps({
        "server": {"database": database, "allow_destinations": ["127.0.0.1"]},
        "dispatcher": {"poll_interval": 0.1, "batch": 250, "shutdown_timeout": 5},
        **doc,
    }))


async def wait_for(check: Callable[[], Awaitable[bool]], timeout: float, what: str | Callable[[], Awaitable[str]]) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            detail = what if isinstance(what, str) else await what()
            raise AssertionError(f"{detail}: not within {timeout}s")
        await asyncio.sleep(0.05)


class Tracker:
    """Samples ``config_processes`` every 50 ms: for each process, the revisions seen and when it
    says it switched to each (``applied_at``), and any problem it reported."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.seen: dict[str, dict[int, float]] = collections.defaultdict(dict)
        self.problems: list[tuple[str, int, str]] = []
        self.task: asyncio.Task[None] | None = None

    async def sample(self) -> list[Any]:
        async with self.hub.require_store().read() as conn:
            rows = (await conn.execute(select(config_processes))).all()
        for row in rows:
            self.seen[row.owner].setdefault(row.revision, row.applied_at)
            if row.problem:
                self.problems.append((row.owner, row.revision, row.problem))
        return rows

    async def run(self) -> None:
        while True:
            await self.sample()
            await asyncio.sleep(0.05)

    def lags(self, committed: dict[int, float]) -> dict[str, list[float]]:
        """Per process, for each revision committed: seconds from its commit until the process
        ran it or a later one (an upper bound when samples skipped a revision)."""
        out: dict[str, list[float]] = {}
        for owner, applied in self.seen.items():
            out[owner] = []
            for number, created in committed.items():
                later = [at for rev, at in applied.items() if rev >= number]
                out[owner].append(min(later) - created if later else float("inf"))
        return out


# -- the run ---------------------------------------------------------------------------------------
@dataclass
class Sent:
    message: str
    revision: int
    team: str
    deliveries: list[tuple[str, str]]  # (delivery id, integration)


async def run_scenario(
    database: str, tmp_path: Path, *, workers: int, steps: int, per_step: int, seed: int,
    capfd: pytest.CaptureFixture[str] | None = None,
) -> None:
    started = time.monotonic()
    sink = Recorder()
    await sink.start()
    scenario = Scenario(sink, seed)
    config = tmp_path / "tidings.yaml"
    doc = first_document(sink)
    write_config(config, database, doc)
    loaded = load_config(config)
    # Sends and routes like a `tidings serve --no-dispatch`: follows the revisions, sends nothing.
    writer = Hub(loaded, config_dir=tmp_path, dispatch=False, watch=True)
    await writer.start()  # migrates, imports the file as revision 1, before the workers start
    store = writer.require_store()
    procs = {f"worker{i}": start_worker(tmp_path, config, f"worker{i}") for i in range(workers)}
    tracker = Tracker(writer)
    documents: dict[int, dict[str, Any]] = {}
    documents_at: dict[int, float] = {}
    writer_lags: list[float] = []
    """Seconds from each commit until the test's own hub ran it (measured here, not sampled)."""
    sent: list[Sent] = []
    try:
        async with store.read() as conn:
            first = await revisions.current(conn)
        assert first is not None
        documents[first.number] = first.document

        def alive() -> None:
            for name, proc in procs.items():
                assert proc.poll() is None, f"{name} exited:\n{(tmp_path / f'{name}.err').read_text()}"

        async def all_started() -> bool:
            alive()
            return all("started" in (tmp_path / f"{n}.err").read_text() for n in procs)

        await wait_for(all_started, 30, "the workers started")
        tracker.task = asyncio.create_task(tracker.run())
        await wait_for(lambda: _count_owners(tracker, workers), 10, "every worker registered in config_processes")

        async def commit(new: dict[str, Any], comment: str) -> int:
            async with store.write() as conn:
                revision, made = await revisions.commit(
                    conn, new, source="api", comment=comment, validate=lambda d: to_config(d, writer.file_config))
            assert made, comment
            documents[revision.number] = revision.document
            documents_at[revision.number] = revision.created_at
            return revision.number

        async def send(i: int) -> None:
            team = TEAMS[i % len(TEAMS)]
            # The revision and the routing are read in the same step of the event loop (notify
            # routes before its first await): what the hub ran when it routed this message.
            running = writer.revision
            receipt = await writer.notify(Message(f"m{i}", labels={"team": team, "seq": str(i)}))
            sent.append(Sent(receipt.id, running, team, [(d.id, d.integration) for d in receipt.deliveries]))

        async def followed(number: int) -> None:
            """Until this process's hub runs ``number``: half of each step's messages are sent
            before (routed by the revision before, racing the switch), half after."""
            committed_at = documents_at[number]
            while writer.revision < number:
                if time.time() - committed_at > 2 * STALE_LIMIT:
                    raise AssertionError(f"the test's hub still runs revision {writer.revision}, not {number}")
                await asyncio.sleep(0.01)
            writer_lags.append(time.time() - committed_at)

        async def step(new: dict[str, Any], index: int) -> int:
            number = await commit(new, f"step {index}")
            first_half = per_step // 2
            await asyncio.gather(*(send(index * per_step + k) for k in range(first_half)))
            await followed(number)
            await asyncio.gather(*(send(index * per_step + k) for k in range(first_half, per_step)))
            alive()
            return number

        number = 0
        for index in range(steps - 1):
            doc = scenario.next(doc)
            number = await step(doc, index)

        # Before the last revision: everything sent or held, nothing stuck.
        async def settled() -> bool:
            alive()
            return await _waiting(store) == 0

        await wait_for(settled, 30, lambda: _stuck(store, documents[number]))
        held = await _held(store)
        present = set(documents[number]["integrations"])
        assert not [h for h in held if h[1] in present], f"held deliveries of present integrations: {held[:5]}"
        for _, name, reason in held:  # why: the revision that removed it (the commit's or a process's hold)
            found = re.fullmatch(r"held: integration removed in configuration revision (\d+)", reason or "")
            assert found and name not in documents[int(found[1])]["integrations"], (name, reason)

        # The last revision brings every integration back: what was held is sent now.
        doc = scenario.restore(doc)
        number = await step(doc, steps - 1)

        total = sum(len(s.deliveries) for s in sent)

        async def done() -> bool:
            alive()
            return await _delivered(store) == total

        await wait_for(done, 45, lambda: _statuses(store))

        async def all_current() -> bool:
            alive()
            rows = await tracker.sample()
            return writer.revision == number and len(rows) >= workers and all(r.revision == number for r in rows)

        await wait_for(all_current, 5, f"every process runs revision {number}")

        # Every process sends through each integration as the last revision has it (rebuilt
        # with its last settings): one message straight to each, its version in a header.
        probes = {name: (await writer.notify(Message(f"probe {name}"), to=[name])).deliveries[0].id for name in POOL}

        async def probed() -> bool:
            alive()
            return await _delivered(store) == total + len(probes)

        await wait_for(probed, 10, lambda: _statuses(store))
    finally:
        if tracker.task is not None:
            tracker.task.cancel()
        codes = stop_all(procs)
        async with store.read() as conn:
            rows = (await conn.execute(select(config_revisions.c.number, config_revisions.c.created_at))).all()
            by_status = dict((await conn.execute(
                select(deliveries.c.status, func.count()).group_by(deliveries.c.status))).all())
        await writer.stop()
        await sink.stop()

    for name, code in codes.items():
        err = (tmp_path / f"{name}.err").read_text()
        assert code == 0, f"{name} exited {code}:\n{err}"
        assert "Traceback" not in err, err
        errors = [line for line in err.splitlines() if '"level": "error"' in line]
        assert not errors, f"{name} logged errors: {errors[:5]}"

    # Only what changed was rebuilt: each switch a worker logged names what differs between the
    # revision it ran and the one it switched to.
    for name in procs:
        ran = first.number
        for line in (tmp_path / f"{name}.err").read_text().splitlines():
            if '"config.switched"' not in line:
                continue
            event = json.loads(line)
            old, new = documents[ran]["integrations"], documents[event["revision"]]["integrations"]
            assert (sorted(event["added"]), sorted(event["removed"]), sorted(event["changed"])) == (
                sorted(set(new) - set(old)), sorted(set(old) - set(new)),
                sorted(n for n in set(old) & set(new) if old[n] != new[n])), (name, ran, event)
            ran = event["revision"]
        assert ran == number, f"{name} logged no switch to revision {number}"
    if capfd is not None:
        errors = [line for line in capfd.readouterr().err.splitlines() if '"level": "error"' in line]
        assert not errors, f"the test's hub logged errors: {errors[:5]}"

    # Revisions: the first (the file) and one per step, each different from the last.
    committed = {n: at for n, at in rows if n > first.number}
    assert len(committed) == steps == number - first.number

    # Routing: each message went where the revision its hub ran at the time says.
    assert len(sent) == steps * per_step
    wrong = [s for s in sent if sorted(i for _, i in s.deliveries) != sorted(expected_targets(documents[s.revision], s.team))]
    assert not wrong, f"{len(wrong)} messages routed unlike their revision, e.g. {wrong[:3]}"
    used = collections.Counter(s.revision for s in sent)
    assert set(committed) <= set(used), f"every revision routed messages: {dict(used)}"

    # The probes: each integration's last settings, whichever worker sent.
    versions = {a.integration: a.version for a in sink.arrivals if a.delivery in set(probes.values())}
    assert versions == {n: str(scenario.version[n]) for n in POOL}, versions

    # Exactly once: every delivery arrived once, at its integration's path; nothing else arrived.
    where = {d: name for s in sent for d, name in s.deliveries} | {d: name for name, d in probes.items()}
    arrived = collections.Counter(a.delivery for a in sink.arrivals)
    duplicates = {d: n for d, n in arrived.items() if n > 1}
    assert not duplicates, f"{len(duplicates)} deliveries arrived more than once, e.g. {list(duplicates.items())[:3]}"
    assert set(arrived) == set(where), (f"missing {len(set(where) - set(arrived))}, "
                                        f"unknown {len(set(arrived) - set(where))}")
    misplaced = [a for a in sink.arrivals if where[a.delivery] != a.integration]
    assert not misplaced, misplaced[:3]
    assert by_status == {"delivered": len(where)}, by_status
    senders = collections.Counter(a.worker for a in sink.arrivals)
    assert set(senders) == set(procs), f"every worker sends, only workers send: {dict(senders)}"

    # Staleness: from each commit until every process ran it (or a later one).
    assert not tracker.problems, tracker.problems[:5]
    lags = tracker.lags(committed)
    assert len(lags) >= workers
    worst = {owner: max(values) for owner, values in lags.items()}
    every = sorted(v for values in lags.values() for v in values)
    print(f"{len(committed)} revisions, {len(sent)} messages, {len(where)} deliveries "
          f"({len(held)} held before the last revision); switch lag p50 {every[len(every) // 2]:.3f}s "
          f"max {every[-1]:.3f}s over {len(lags)} processes (this one's max {max(writer_lags):.3f}s); "
          f"{time.monotonic() - started:.1f}s")
    assert all(v <= STALE_LIMIT for v in worst.values()), f"a process ran a stale revision too long: {worst}"
    assert max(writer_lags) <= STALE_LIMIT, f"the test's hub ran a stale revision too long: {max(writer_lags):.3f}s"


async def _count_owners(tracker: Tracker, n: int) -> bool:
    return len(await tracker.sample()) >= n


async def _waiting(store: Any) -> int:
    async with store.read() as conn:
        return int((await conn.execute(select(func.count()).where(
            deliveries.c.status.in_(["pending", "retrying", "sending"])))).scalar() or 0)


async def _delivered(store: Any) -> int:
    async with store.read() as conn:
        return int((await conn.execute(select(func.count()).where(deliveries.c.status == "delivered"))).scalar() or 0)


async def _held(store: Any) -> list[tuple[str, str, str | None]]:
    async with store.read() as conn:
        rows = (await conn.execute(select(deliveries.c.id, deliveries.c.integration, deliveries.c.last_error)
                                   .where(deliveries.c.status == "held"))).all()
    return [tuple(r) for r in rows]  # type: ignore[misc]


async def _statuses(store: Any) -> str:
    async with store.read() as conn:
        rows = (await conn.execute(select(deliveries.c.integration, deliveries.c.status, func.count())
                                   .group_by(deliveries.c.integration, deliveries.c.status))).all()
    return "deliveries by integration and status " + ", ".join(f"{i}/{s}: {n}" for i, s, n in rows)


async def _stuck(store: Any, doc: dict[str, Any]) -> str:
    return (await _statuses(store)) + f"; the current revision has {sorted(doc['integrations'])}"


@pytest.mark.slow
@pytest.mark.postgres
async def test_two_workers_follow_50_revisions_under_5000_messages(
    pg_url: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    started = time.monotonic()
    await run_scenario(pg_url, tmp_path, workers=2, steps=50, per_step=100, seed=13, capfd=capfd)
    assert time.monotonic() - started < 90


@pytest.mark.slow
async def test_a_worker_follows_10_revisions_on_sqlite(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    started = time.monotonic()
    await run_scenario(f"sqlite:///{tmp_path / 'tidings.db'}", tmp_path, workers=1, steps=10, per_step=50, seed=7,
                       capfd=capfd)
    assert time.monotonic() - started < 30
