"""`tidings incidents`: what tidings noticed about itself (failing integrations, open circuits,
dead deliveries, inbound senders failing verification, broken sync mappings and connections)."""

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ._common import ConfigOpt, JsonOpt, _on_hub, _when, emit, group, handled, out, table

if TYPE_CHECKING:
    from ..hub import Hub

incidents_app = group("incidents", "Incidents of tidings watching itself (see docs/watching.md).", lists=True)
ProjectOpt = Annotated[str, typer.Option("--project", "-p", help="the project's slug")]
OpenOpt = Annotated[bool, typer.Option("--open", help="only incidents still open")]
LimitOpt = Annotated[int, typer.Option(min=1, max=500)]
BeforeOpt = Annotated[str | None, typer.Option(help="next page: the id printed after the table")]


def _list(config: Path | None, project: str, open_only: bool, limit: int, before: str | None, as_json: bool) -> None:
    async def _read(hub: "Hub") -> dict[str, Any]:
        from ..errors import NotFound
        from ..watch import list_incidents

        if not await hub.project_exists(project):
            raise NotFound(f"no project {project!r}")
        async with hub.require_store().read() as conn:
            return await list_incidents(conn, project, status="open" if open_only else None, limit=limit,
                                        cursor=before)

    page = _on_hub(config, _read)

    def human() -> None:
        if not page["items"]:
            out.print("no open incidents" if open_only else "no incidents", highlight=False)
            return
        t = table("id", "subject", "kind", "status", "opened", "count", "notified", "resolved", "notice")
        for i in page["items"]:
            colour = "red" if i["status"] == "open" else "green"
            t.add_row(i["id"], i["subject"], i["kind"], f"[{colour}]{i['status']}[/{colour}]", _when(i["opened_at"]),
                      str(i["count"]), _when(i["notified_at"]), _when(i["resolved_at"]), (i["notice"] or "")[:60])
        out.print(t)
        if page["next"]:
            out.print(f"more: --before {page['next']}", highlight=False)

    emit(page, as_json, human)


@incidents_app.callback()
@handled
def incidents(ctx: typer.Context, project: ProjectOpt = "default", open_only: OpenOpt = False, limit: LimitOpt = 20,
              before: BeforeOpt = None, config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """A project's incidents, newest first (also `incidents list`)."""
    if ctx.invoked_subcommand is None:
        _list(config, project, open_only, limit, before, as_json)


@incidents_app.command("list")
@handled
def incidents_list(project: ProjectOpt = "default", open_only: OpenOpt = False, limit: LimitOpt = 20,
                   before: BeforeOpt = None, config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """A project's incidents, newest first."""
    _list(config, project, open_only, limit, before, as_json)
