"""Cost of access control and of the audit trail on the HTTP API, each beside its baseline in one run.

    python bench/authz.py [--requests 600] [--writes 800] [--concurrency 32] [--rounds 9] [--slices 8]
                          [--database postgresql://postgres@127.0.0.1:5432/test]

Two ``tidings serve`` processes on 127.0.0.1 with the same configuration (five webhook
integrations), each on its own database (SQLite files, or with ``--database`` a fresh schema
each on that PostgreSQL server, dropped afterwards):

  authz    ``GET /api/v1/integrations`` with a project-scoped member token (a user who is
           ``member`` of project ``default``) against the baseline, today's single-admin token
           check: a token made before any user existed (``user_id`` NULL, acting as site admin).
           Same server, same data; only the ``Authorization`` header differs.
  audit    ``POST /api/v1/silences`` (each request with its own matchers, so each creates a new
           silence) on the server as shipped, whose silence path appends an audit entry in the
           change's transaction, against the second server, where ``bench/_serve.py --no-audit``
           made the audit append a no-op. The bench fails unless the first server appended an
           entry per silence and the second none. Silences last ``--silence-duration`` (20 ms)
           so the set of active silences, which the path reloads after every change, stays a
           handful the whole run instead of growing with the request count.

An aiohttp client, ``--concurrency`` requests at a time on connections kept open per side,
drives both sides of each comparison in rounds of ``--slices`` alternating slices (A B B A A B B A,
B A A B ... in every other round), so that a drift of the machine's speed lands on both sides;
only answers with the expected status count. Besides requests/s it reads
each server's CPU time per request (/proc), steadier than wall-clock rates on a shared machine.
Each ratio is the median of the per-round ratios. The last line is one JSON object:
{"authz_ratio", "audited_write_ratio", "member_rps", "admin_rps", "audited_rps", "unaudited_rps", ...};
the goals are authz_ratio >= 0.9 and audited_write_ratio >= 0.7.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median

import aiohttp
import orjson

import tidings
from tidings.store.engine import Store

sys.path.insert(0, str(Path(__file__).parent))
from _sink import cpu_seconds, free_port, fresh_databases, wait_ok  # noqa: E402

BENCH = Path(__file__).resolve().parent
SRC = Path(tidings.__file__).resolve().parent.parent
"""Where this process imports tidings from: the servers run the same code."""
MEMBER = "member@bench.example"
INTEGRATIONS = 5
KEEPALIVE = 3.0
"""Seconds the client keeps an idle connection: less than the server's (uvicorn: 5 s)."""


@dataclass
class Server:
    """One ``tidings serve`` (``audit`` False: with the append disabled) and its database."""

    name: str
    audit: bool
    url: str
    tmp: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    store: Store | None = None
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.tmp / f"{self.name}.log"

    async def prepare(self) -> None:
        """Migrate, then the tokens: ``admin`` before any user exists (user_id NULL), then the
        member of ``default`` and its project-scoped token."""
        from tidings.accounts.projects import set_member
        from tidings.accounts.users import create_user
        from tidings.audit import SYSTEM
        from tidings.security.tokens import create_token

        self.store = Store(self.url)
        await self.store.migrate()
        self.tokens["admin"] = await create_token(self.store, "bench-admin")
        async with self.store.write() as conn:
            await create_user(conn, SYSTEM, email=MEMBER, name="Bench member")
            await set_member(conn, SYSTEM, "default", MEMBER, "member")
        self.tokens["member"] = await create_token(self.store, "bench-member", user=MEMBER, project="default")

    def start(self) -> None:
        config = self.tmp / f"{self.name}.yaml"
        config.write_text(json.dumps({
            "server": {"database": self.url, "allow_destinations": ["127.0.0.1/32"]},
            "integrations": {f"hook{i}": {"kind": "webhook", "url": f"http://127.0.0.1:9/hook{i}"} for i in range(INTEGRATIONS)},
        }))
        env = {**os.environ, "TIDINGS_CONFIG": str(config), "TIDINGS_KEY_FILE": str(self.tmp / f"{self.name}.key"),
               "TIDINGS_PORT": str(self.port), "TIDINGS_LOG_LEVEL": "WARNING",
               "PYTHONPATH": os.pathsep.join([str(SRC), *filter(None, [os.environ.get("PYTHONPATH")])])}
        cmd = [sys.executable, str(BENCH / "_serve.py"), *([] if self.audit else ["--no-audit"])]
        with self.log.open("w") as log:
            self.proc = subprocess.Popen(cmd, env=env, cwd=self.tmp, stdout=subprocess.DEVNULL, stderr=log)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(60)

    async def audit_entries(self) -> int:
        from sqlalchemy import func, select

        from tidings.store.tables import audit_log

        assert self.store is not None
        async with self.store.read() as conn:
            return int((await conn.execute(select(func.count()).select_from(audit_log))).scalar() or 0)

    def errors(self) -> str | None:
        """The first error the server logged, with what follows it; None when there is none."""
        lines = self.log.read_text(errors="replace").splitlines()
        hits = [i for i, line in enumerate(lines) if '"level": "error"' in line or line.startswith("Traceback")]
        return None if not hits else f"{self.name} logged {len(hits)} errors; the first:\n" + "\n".join(lines[hits[0]:hits[0] + 30])


@dataclass
class Measured:
    requests: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    """the server's"""

    def __add__(self, other: Measured) -> Measured:
        return Measured(self.requests + other.requests, self.seconds + other.seconds, self.cpu_seconds + other.cpu_seconds)

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    @property
    def cpu_us(self) -> float:
        """server CPU per request"""
        return self.cpu_seconds / self.requests * 1e6


Request = Callable[[aiohttp.ClientSession, int], Awaitable[int | None]]
"""Sends request ``i``; None when answered as expected, else the status."""


async def drive(server: Server, session: aiohttp.ClientSession, n: int, concurrency: int, request: Request) -> Measured:
    """``n`` requests, ``concurrency`` at a time; fails unless every answer was the expected one."""
    assert server.proc is not None
    wrong: Counter[int] = Counter()
    it = iter(range(n))

    async def client() -> None:
        for i in it:
            if (status := await request(session, i)) is not None:
                wrong[status] += 1

    cpu_before = cpu_seconds(server.proc.pid)
    started = asyncio.get_running_loop().time()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    elapsed = asyncio.get_running_loop().time() - started
    cpu = cpu_seconds(server.proc.pid) - cpu_before
    if wrong:
        raise SystemExit(f"{server.name}: {wrong.total()} of {n} requests got an unexpected answer: {dict(wrong)}")
    return Measured(n, elapsed, cpu)


Side = Callable[[str, int], Awaitable[Measured]]
"""Runs ``n`` requests of one side of a comparison (the ``str`` tells its segments apart)."""


async def paired(a: Side, b: Side, n: int, r: int, slices: int) -> tuple[Measured, Measured]:
    """``n`` requests of each side in ``slices`` alternating slices, A B B A A B B A ... (B A A B
    ... in odd rounds): a drift of the machine's speed during the round lands on both sides alike."""
    done = {"a": Measured(), "b": Measured()}
    sides = {"a": a, "b": b}
    pattern = "abba" if r % 2 == 0 else "baab"
    per_side = slices // 2
    for k in range(slices):
        name = pattern[k % 4]
        done[name] += await sides[name](f"r{r}s{k}", n // per_side + (k >= slices - 2) * (n % per_side))
    return done["a"], done["b"]


def lister(server: Server, token: str) -> Request:
    headers = {"Authorization": f"Bearer {server.tokens[token]}"}
    url = server.base + "/api/v1/integrations"

    async def get(session: aiohttp.ClientSession, _: int) -> int | None:
        async with session.get(url, headers=headers) as r:
            await r.read()
            return None if r.status == 200 else r.status

    return get


def silencer(server: Server, tag: str, duration: str) -> Request:
    """POSTs of new silences by the member, each with matchers of its own."""
    headers = {"Authorization": f"Bearer {server.tokens['member']}", "Content-Type": "application/json"}
    url = server.base + "/api/v1/silences"

    async def post(session: aiohttp.ClientSession, i: int) -> int | None:
        body = orjson.dumps({"matchers": {"service": f"bench-{tag}-{i}", "source": "bench"}, "duration": duration,
                             "reason": "bench/authz.py", "created_by": "bench"})
        async with session.post(url, data=body, headers=headers) as r:
            await r.read()
            return None if r.status == 201 else r.status

    return post


async def check_listing(server: Server) -> None:
    """Both tokens see the configured integrations (a figure for a token that sees none would mean nothing)."""
    async with aiohttp.ClientSession() as session:
        for token in ("admin", "member"):
            async with session.get(server.base + "/api/v1/integrations",
                                   headers={"Authorization": f"Bearer {server.tokens[token]}"}) as r:
                body = await r.json()
                names = {i["name"] for i in body} if r.status == 200 else set()
                if not {f"hook{i}" for i in range(INTEGRATIONS)} <= names:
                    raise SystemExit(f"{token} token: GET /api/v1/integrations answered {r.status}: {body}"
                                     f" (expected the {INTEGRATIONS} configured integrations)")


async def audited(server: Server, n: int, run: Awaitable[Measured]) -> Measured:
    """``run``, checking the audit entries it appended: one per change or more on the server
    that audits, none on the one that doesn't."""
    before = await server.audit_entries()
    measured = await run
    added = await server.audit_entries() - before
    if server.audit and added < n:
        raise SystemExit(f"{server.name}: {n} silences created but {added} audit entries appended: this branch's"
                         " silence path does not audit, so the audited figure would measure nothing")
    if not server.audit and added:
        raise SystemExit(f"{server.name}: the audit append was to be disabled but {added} entries were appended")
    return measured


async def check_us(server: Server, calls: int = 20_000, uncached_calls: int = 500) -> dict[str, float]:
    """The access check alone, in this process (no server, no network): µs per call of the
    server's ``authenticate`` + ``authorize`` for each token, with the token cache warm (every
    request but one per token every 10 s) and with it cleared before each call (the database
    asked: the token for both, the user and their roles for the member). Best of 5 runs."""
    from types import SimpleNamespace

    from tidings.accounts import authorize
    from tidings.server.auth import TokenCache, authenticate

    state = SimpleNamespace(tokens=TokenCache(), hub=SimpleNamespace(store=server.store))
    loop = asyncio.get_running_loop()
    out: dict[str, float] = {}
    for token in ("admin", "member"):
        header = f"Bearer {server.tokens[token]}"
        for label, n, clear in (("cached", calls, False), ("uncached", uncached_calls, True)):
            best = float("inf")
            for _ in range(5):
                started = loop.time()
                for _ in range(n):
                    if clear:
                        state.tokens.clear()
                    authorize(await authenticate(state, header), "integration:read", "default")
                best = min(best, (loop.time() - started) / n * 1e6)
            out[f"{token}_{label}"] = round(best, 2)
    return out


@contextlib.asynccontextmanager
async def databases(database: str | None, tmp: Path) -> AsyncIterator[tuple[str, str]]:
    """Two empty databases: SQLite files in ``tmp``, or two fresh schemas on ``database`` (PostgreSQL)."""
    async with fresh_databases(database, tmp, ["audited", "unaudited"]) as (audited, unaudited):
        yield audited, unaudited


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=600, help="GETs of each token per round")
    ap.add_argument("--writes", type=int, default=800, help="POSTs (new silences) on each server per round")
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=9, help="rounds; the medians of their ratios are reported")
    ap.add_argument("--slices", type=int, default=8, help="alternating slices per round (even)")
    ap.add_argument("--silence-duration", default="20ms", help="how long each silence lasts")
    ap.add_argument("--database", metavar="URL", help="a PostgreSQL on 127.0.0.1 (default: SQLite files)")
    args = ap.parse_args()
    if args.slices < 2 or args.slices % 2:
        ap.error("--slices takes an even number, at least 2")
    n, writes, c = args.requests, args.writes, args.concurrency
    rates: dict[str, list[Measured]] = {"admin": [], "member": [], "unaudited": [], "audited": []}
    authz_ratios: list[float] = []
    write_ratios: list[float] = []
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        async with databases(args.database, tmp) as (audited_url, unaudited_url), contextlib.AsyncExitStack() as stack:
            servers = {"audited": Server("audited", True, audited_url, tmp),
                       "unaudited": Server("unaudited", False, unaudited_url, tmp)}
            for server in servers.values():
                await server.prepare()
                assert server.store is not None
                stack.push_async_callback(server.store.close)
            with contextlib.ExitStack() as running:  # the servers stop before the stores close
                for server in servers.values():
                    server.start()
                    running.callback(server.stop)
                for server in servers.values():
                    await wait_ok(server.base + "/readyz")
                main_server = servers["audited"]
                await check_listing(main_server)
                # One client session per side, its connections kept open between the slices (and
                # dropped before uvicorn's 5 s keep-alive ends: a request never races the close).
                sessions = {key: await stack.enter_async_context(aiohttp.ClientSession(
                    connector=aiohttp.TCPConnector(limit=c, keepalive_timeout=KEEPALIVE))) for key in rates}

                def get(token: str) -> Side:
                    return lambda _, m: drive(main_server, sessions[token], m, c, lister(main_server, token))

                def post(name: str) -> Side:
                    s = servers[name]
                    return lambda tag, m: audited(s, m, drive(s, sessions[name], m, c, silencer(s, tag, args.silence_duration)))

                await paired(get("admin"), get("member"), 500, -1, 2)  # warm up
                await paired(post("unaudited"), post("audited"), 200, -1, 2)
                for r in range(args.rounds):
                    admin, member = await paired(get("admin"), get("member"), n, r, args.slices)
                    unaudited, audited_ = await paired(post("unaudited"), post("audited"), writes, r, args.slices)
                    for key, m in zip(rates, (admin, member, unaudited, audited_), strict=True):
                        rates[key].append(m)
                    authz_ratios.append(member.rate / admin.rate)
                    write_ratios.append(audited_.rate / unaudited.rate)
                    line = "; ".join(f"{k} {v[-1].rate:,.0f}/s ({v[-1].cpu_us:.0f} µs CPU)" for k, v in rates.items())
                    print(f"round {r + 1}: {line}; authz {authz_ratios[-1]:.3f}, audited write {write_ratios[-1]:.3f}",
                          file=sys.stderr)
            for server in servers.values():
                if (errors := server.errors()) is not None:
                    print(errors, file=sys.stderr)
            check = await check_us(servers["audited"])
    rps = {k: median(m.rate for m in v) for k, v in rates.items()}
    cpu = {k: median(m.cpu_us for m in v) for k, v in rates.items()}
    authz_ratio, write_ratio = median(authz_ratios), median(write_ratios)
    dialect = "postgresql" if args.database else "sqlite"
    print(f"\n{dialect + ', concurrency ' + str(c):<42} {'requests/s':>12} {'server CPU µs/req':>18}")
    labels = {"admin": "GET, admin token (user_id NULL)", "member": "GET, member token (project default)",
              "unaudited": "POST silence, audit append disabled", "audited": "POST silence, audited"}
    for key, label in labels.items():
        print(f"{label:<42} {rps[key]:>12,.0f} {cpu[key]:>18.0f}")
    print(f"{'authz ratio (member / admin)':<42} {authz_ratio:>12.3f} {cpu['admin'] / cpu['member']:>18.3f}")
    print(f"{'audited write ratio (with / without)':<42} {write_ratio:>12.3f} {cpu['unaudited'] / cpu['audited']:>18.3f}")
    print(f"the access check alone, in process: admin {check['admin_cached']:.1f} µs, member {check['member_cached']:.1f} µs"
          f" with the token cached; {check['admin_uncached']:.0f} and {check['member_uncached']:.0f} µs when it asks the database\n")
    print(json.dumps({
        "authz_ratio": round(authz_ratio, 3),
        "audited_write_ratio": round(write_ratio, 3),
        "member_rps": round(rps["member"], 1),
        "admin_rps": round(rps["admin"], 1),
        "audited_rps": round(rps["audited"], 1),
        "unaudited_rps": round(rps["unaudited"], 1),
        "authz_ratio_by_round": [round(x, 3) for x in authz_ratios],
        "audited_write_ratio_by_round": [round(x, 3) for x in write_ratios],
        "server_cpu_us_per_request": {k: round(v, 1) for k, v in cpu.items()},
        "authz_cpu_ratio": round(cpu["admin"] / cpu["member"], 3),
        "audited_write_cpu_ratio": round(cpu["unaudited"] / cpu["audited"], 3),
        "check_us": check,
        "database": dialect,
        "requests": n,
        "writes": writes,
        "concurrency": c,
        "rounds": args.rounds,
        "silence_duration": args.silence_duration,
    }))


if __name__ == "__main__":
    asyncio.run(main())
