"""The GitHub and Jira stand-ins of the tests (tests/peers) in their own process, for bench/sync.py:
their work (rendering pages of issues) does not land on the measured side. The parent drives them
through a pipe: seeding, a person's edits there, and the requests each one answered (its own count,
the server side of what the tracker's ``CallStats`` counts)."""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # the stand-ins: peers.*

REPO = "bench/repo"
JIRA_PROJECT = "BEN"
GITHUB_TOKEN = "ghp_bench"


def _serve(conn: Any) -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(_main(conn))


async def _main(conn: Any) -> None:
    from peers.github_api import GitHubAPI
    from peers.jira_api import JiraCloud

    gh = GitHubAPI(tokens={GITHUB_TOKEN})
    gh.repo(REPO)
    await gh.start()
    jira = await JiraCloud().start()
    jira.add_project(JIRA_PROJECT, "Bench")
    done = asyncio.Event()

    def calls() -> dict[str, Any]:
        return {"github": sum(gh.calls.values()), "github_304": gh.not_modified, "github_by": dict(gh.calls),
                "jira": sum(jira.calls.values()), "jira_by": dict(jira.calls)}

    def run(op: str, *args: Any) -> Any:
        if op == "urls":
            return {"github": gh.url, "jira": jira.url, "jira_email": jira.email, "jira_token": jira.api_token}
        if op == "seed":  # n per tracker, the oldest at ``start``, ``step`` seconds apart
            n, start, step = args
            gh.seed(REPO, n, start=start, step=step)
            jira.seed(JIRA_PROJECT, n, start=start, step=step)
            return None
        if op == "edit":  # a person edits issues 1, 1 + every, ... on both (the title)
            n, every, tag = args
            for i in range(n):
                number = 1 + i * every
                gh.edit(REPO, number, title=f"Issue {number} {tag}")
                jira.edit(f"{JIRA_PROJECT}-{number}", summary=f"Seeded issue {number} {tag}")
            return None
        if op == "titles":  # the issues' titles now, for checking pushes arrived
            numbers = args[0]
            return {"github": [gh.issue(REPO, n).title for n in numbers],
                    "jira": [jira.issue(f"{JIRA_PROJECT}-{n}").summary for n in numbers]}
        if op == "calls":
            return calls()
        if op == "reset":
            gh.calls.clear()
            gh.not_modified = 0
            gh.requests.clear()
            jira.calls.clear()
            jira.requests.clear()
            return None
        if op == "stop":
            done.set()
            return None
        raise ValueError(op)

    def on_message() -> None:
        op, args = conn.recv()
        try:
            conn.send(("ok", run(op, *args)))
        except Exception as exc:  # the parent raises it
            conn.send(("error", f"{type(exc).__name__}: {exc}"))

    asyncio.get_running_loop().add_reader(conn.fileno(), on_message)
    await done.wait()
    await gh.stop()
    await jira.stop()


class Trackers:
    """``with Trackers() as t:`` both stand-ins in a forked process; ``t.do(op, *args)`` (blocking:
    call it between measured phases)."""

    def __enter__(self) -> Trackers:
        ctx = mp.get_context("fork")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_serve, args=(child,), daemon=True)
        self.proc.start()
        self.urls: dict[str, str] = self.do("urls")
        return self

    def do(self, op: str, *args: Any) -> Any:
        self.conn.send((op, args))
        if not self.conn.poll(300):
            raise SystemExit(f"the stand-ins did not answer {op!r}")
        status, value = self.conn.recv()
        if status != "ok":
            raise SystemExit(f"the stand-ins failed {op!r}: {value}")
        return value

    def __exit__(self, *exc: object) -> None:
        try:
            self.do("stop")
        except (OSError, EOFError, SystemExit):
            pass
        self.proc.join(5)
        if self.proc.is_alive():
            self.proc.terminate()
