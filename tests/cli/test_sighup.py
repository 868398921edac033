"""SIGHUP reloads tidings.yaml in a running `tidings serve` / `tidings worker`: it imports the file
as a revision and switches to it; a file that doesn't parse or validate logs one line per problem
and leaves the running revision. The process never dies of it."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path
from typing import Any

import httpx
import yaml
from cli_support import Project, free_port, start, stop, tidings, wait_until


def log_events(path: Path, event: str) -> list[dict[str, Any]]:
    out = []
    for line in path.read_text().splitlines():
        if line.startswith("{"):
            entry = json.loads(line)
            if entry.get("event") == event:
                out.append(entry)
    return out


def edit(project: Project, change: Any) -> None:
    path = project.path / "tidings.yaml"
    config = yaml.safe_load(path.read_text())
    change(config)
    path.write_text(yaml.safe_dump(config))


def status(project: Project) -> dict[str, Any]:
    ran = tidings(project.path, "config", "status", "--json")
    assert ran.code in (0, 1), ran.err
    return ran.json  # type: ignore[no-any-return]


def test_sighup_reloads_a_running_server_and_survives_bad_files(
    project: Project, processes: list[subprocess.Popen[bytes]]
) -> None:
    p = project.path
    port = free_port()
    proc = start(processes, p, "serve", log="serve", TIDINGS_PORT=str(port))
    auth = {"Authorization": f"Bearer {project.token}"}
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:

        def integrations() -> set[str]:
            assert proc.poll() is None, (p / "serve.err").read_text()
            answer = client.get("/api/v1/integrations", headers=auth)
            return {i["name"] for i in answer.json()} if answer.status_code == 200 else set()

        assert wait_until(integrations, what="the API") == {"inbox"}
        before = status(project)["current"]

        edit(project, lambda c: c["integrations"].update(
            ops={"kind": "webhook", "url": f"http://127.0.0.1:{free_port()}/hook", "allow_destinations": ["127.0.0.1"]}))
        proc.send_signal(signal.SIGHUP)
        wait_until(lambda: "ops" in integrations(), timeout=10, what="the reloaded integration")
        assert status(project)["current"] == before + 1
        # The server records the revision it runs right after it switched: wait for that row too.
        wait_until(lambda: [x["revision"] for x in status(project)["processes"]] == [before + 1], timeout=10,
                   what="the server's row at the new revision")

        # A file that doesn't parse: one line, the revision stays.
        good = (p / "tidings.yaml").read_text()
        (p / "tidings.yaml").write_text(good + "\nroutes: [\n")
        proc.send_signal(signal.SIGHUP)
        refused = wait_until(lambda: log_events(p / "serve.err", "config.reload_refused"), what="the refusal")
        assert len(refused) == 1 and refused[0]["running"] == before + 1

        # A file that parses but is invalid twice over: one line per problem.
        def invalid(c: dict[str, Any]) -> None:
            c["integrations"]["broken"] = {"kind": "no-such-kind"}
            c["default"] = {"to": ["nowhere"]}

        (p / "tidings.yaml").write_text(good)
        edit(project, invalid)
        proc.send_signal(signal.SIGHUP)
        wait_until(lambda: len(log_events(p / "serve.err", "config.reload_refused")) >= 3, what="the problems")
        problems = [e["problem"] for e in log_events(p / "serve.err", "config.reload_refused")[1:]]
        assert len(problems) == 2, problems
        assert any("broken" in x for x in problems) and any("nowhere" in x for x in problems), problems
        assert proc.poll() is None
        (p / "tidings.yaml").write_text(good)  # (the CLI reads the file too)
        assert integrations() == {"inbox", "ops"} and status(project)["current"] == before + 1

    code, _ = stop(proc)
    assert code in (0, -signal.SIGTERM, 128 + signal.SIGTERM), code
    assert "Traceback" not in (p / "serve.err").read_text()
    assert status(project)["processes"] == [], "a stopped process takes its row with it"


def test_sighup_reloads_a_worker(project: Project, processes: list[subprocess.Popen[bytes]]) -> None:
    p = project.path
    proc = start(processes, p, "worker", log="worker")
    wait_until(lambda: status(project)["processes"], what="the worker's row")
    before = status(project)["current"]
    edit(project, lambda c: c["integrations"].update(second={"kind": "inbox"}))
    proc.send_signal(signal.SIGHUP)

    def switched() -> bool:
        assert proc.poll() is None, (p / "worker.err").read_text()
        now = status(project)
        return now["current"] == before + 1 and [x["revision"] for x in now["processes"]] == [before + 1]

    wait_until(switched, timeout=10, what="the worker on the new revision")
    # logged once the reload returns, just after the row was written
    wait_until(lambda: log_events(p / "worker.err", "config.reloaded"), timeout=10, what="the reload logged")
    code, _ = stop(proc)
    assert code in (0, -signal.SIGTERM, 128 + signal.SIGTERM), code
    assert "Traceback" not in (p / "worker.err").read_text()
