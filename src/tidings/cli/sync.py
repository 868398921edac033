"""`tidings sync`: run task sync now, plan it, read the sync log, settle parked conflicts."""

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ._common import ConfigOpt, JsonOpt, _on_hub, _when, cli_actor, emit, group, handled, out, table

if TYPE_CHECKING:
    from ..hub import Hub

sync_app = group("sync", "Task sync with trackers: run, plan, log, conflicts.")
ProjectArg = Annotated[str, typer.Argument(help="the project's slug")]
IntegrationArg = Annotated[str | None, typer.Argument(help="one mapping (a tracker integration); default: all")]
COLOURS = {"ok": "green", "partial": "yellow", "failed": "red", "rate_limited": "yellow", "running": "cyan"}


async def _project(hub: "Hub", project: str) -> None:
    from ..errors import NotFound

    if not await hub.project_exists(project):
        raise NotFound(f"no project {project!r}")


def _status(status: str) -> str:
    c = COLOURS.get(status)
    return f"[{c}]{status}[/{c}]" if c else status


def _runs_table(items: list[dict[str, Any]]) -> None:
    t = table("id", "integration", "trigger", "status", "started", "created", "updated", "unchanged", "conflicts",
              "errors", "calls", "304s", "waits", "error")
    for r in items:
        t.add_row(r["id"], r["integration"], r["trigger"], _status(r["status"]), _when(r["started_at"]),
                  *(str(r[k]) for k in ("created", "updated", "unchanged", "conflicts", "errors", "api_calls",
                                        "not_modified", "rate_limit_waits")), (r["error"] or "")[:60])
    out.print(t)


@sync_app.command("run")
@handled
def sync_run(project: ProjectArg, integration: IntegrationArg = None, config: ConfigOpt = None,
             as_json: JsonOpt = False) -> None:
    """Sweep the project's mappings (or one) now and wait for the runs to end; audited as sync.run."""

    async def _run(hub: "Hub") -> list[dict[str, Any]]:
        from ..sync.runs import get_run
        from ..sync.service import SyncService

        await _project(hub, project)
        service = SyncService.of(hub)
        ids = await service.run_now(project, integration, actor=cli_actor())
        await service.settle()
        async with hub.require_store().read() as conn:
            return [await get_run(conn, project, i) for i in ids]

    done = _on_hub(config, _run)

    def human() -> None:
        if not done:
            out.print(f"no sync mapping is enabled in project {project}", highlight=False)
            return
        _runs_table(done)
        for r in done:
            for p in r["problems"]:
                out.print(f"  {r['integration']}: {p.get('remote') or p.get('task') or ''} {p.get('error', '')}",
                          highlight=False)
            if r["status"] in ("failed", "rate_limited"):
                out.print(f"  {r['integration']}: {r['status']}: {r['error']}", highlight=False)
            if r["status"] == "running":
                out.print(f"  {r['integration']}: another worker is running it (run {r['id']})", highlight=False)

    emit(done, as_json, human)
    if any(r["status"] == "failed" for r in done):
        raise typer.Exit(1)


@sync_app.command("plan")
@handled
def sync_plan(project: ProjectArg, integration: IntegrationArg = None, config: ConfigOpt = None,
              as_json: JsonOpt = False) -> None:
    """What a sync would create, update, transition and which conflicts it would raise; writes nothing."""

    async def _plan(hub: "Hub") -> list[dict[str, Any]]:
        from ..sync.service import SyncService

        await _project(hub, project)
        return await SyncService.of(hub).plan(project, integration)

    items = _on_hub(config, _plan)

    def human() -> None:
        if not items:
            out.print("nothing to do", highlight=False)
            return
        t = table("integration", "action", "what")
        for p in items:
            rest = {k: v for k, v in p.items() if k not in ("integration", "action")}
            t.add_row(p["integration"], p["action"], json.dumps(rest, default=str)[:200])
        out.print(t)

    emit(items, as_json, human)


@sync_app.command("log")
@handled
def sync_log(
    project: ProjectArg,
    integration: Annotated[str | None, typer.Option(help="only this mapping's runs")] = None,
    status: Annotated[str | None, typer.Option(help="ok, partial, failed, rate_limited, running")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 20,
    before: Annotated[str | None, typer.Option(help="next page: the id printed after the table")] = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The sync log: runs newest first, with their counts, API calls, 304s and rate-limit waits."""
    from ..sync.runs import STATUSES

    if status is not None and status not in STATUSES:
        raise ValueError(f"unknown status {status!r}; use one of {', '.join(STATUSES)}")

    async def _log(hub: "Hub") -> dict[str, Any]:
        from ..sync.runs import list_runs

        await _project(hub, project)
        async with hub.require_store().read() as conn:
            return await list_runs(conn, project, integration, status=status, limit=limit, cursor=before)

    page = _on_hub(config, _log)

    def human() -> None:
        _runs_table(page["items"])
        if page["next"]:
            out.print(f"more: --before {page['next']}", highlight=False)

    emit(page, as_json, human)


@sync_app.command("conflicts")
@handled
def sync_conflicts(
    project: ProjectArg,
    task: Annotated[str | None, typer.Option(help="one task's: T-12, 12 or its id")] = None,
    all_: Annotated[bool, typer.Option("--all", help="resolved ones too")] = False,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Fields changed on both sides under the manual policy, with both values and the base."""

    async def _list(hub: "Hub") -> list[dict[str, Any]]:
        from ..errors import NotFound
        from ..sync.conflicts import list_conflicts
        from ..sync.tasks import get_task

        await _project(hub, project)
        async with hub.require_store().read() as conn:
            task_id = None
            if task is not None:
                found = await get_task(conn, project, task)
                if found is None:
                    raise NotFound(f"no task {task!r} in project {project!r}")
                task_id = found["id"]
            return await list_conflicts(conn, project, task_id=task_id, open_only=not all_)

    items = _on_hub(config, _list)

    def human() -> None:
        if not items:
            out.print("no conflicts", highlight=False)
            return
        t = table("id", "task", "integration", "field", "base", "local", "remote", "resolved")
        for c in items:
            t.add_row(c["id"], c["task_id"], c["integration"], c["field"],
                      *(json.dumps(c[k], default=str)[:40] for k in ("base", "local", "remote")),
                      _when(c["resolved_at"]))
        out.print(t)

    emit(items, as_json, human)


def _value(text: str) -> Any:
    """``--value``: JSON when it reads as a list or null (labels, clearing a field), else the text."""
    if text.strip().startswith("[") or text.strip() == "null":
        return json.loads(text)
    return text


@sync_app.command("resolve")
@handled
def sync_resolve(
    conflict_id: Annotated[str, typer.Argument(help="the conflict's id (`tidings sync conflicts`)")],
    local: Annotated[bool, typer.Option("--local", help="keep the task's value")] = False,
    remote: Annotated[bool, typer.Option("--remote", help="take the tracker's value")] = False,
    value: Annotated[str | None, typer.Option(help="write this value to both sides (a list as JSON: '[\"a\"]')")] = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Settle a parked conflict by a side or a value; audited."""
    if local + remote + (value is not None) != 1:
        raise ValueError("give one of --local, --remote or --value")
    choice = "local" if local else "remote" if remote else None
    chosen = _value(value) if value is not None else None

    async def _resolve(hub: "Hub") -> dict[str, Any]:
        from ..sync.service import SyncService

        return await SyncService.of(hub).resolve(conflict_id, choice=choice, value=chosen, actor=cli_actor())

    done = _on_hub(config, _resolve)
    emit(done, as_json, f"conflict {done['id']} ({done['field']}) resolved: {json.dumps(done['resolution'], default=str)}")
