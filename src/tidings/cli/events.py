"""`tidings events`: inbound webhook history, one event, replay."""

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from ._common import ConfigOpt, JsonOpt, _on_hub, _when, cli_actor, emit, group, handled, out, print_json, table

events_app = group("events", "Inbound webhook events: history, details, replay.", lists=True)
EventArg = Annotated[str, typer.Argument(help="an id or a unique start of one")]
IntegrationOpt = Annotated[str | None, typer.Option()]
StatusOpt = Annotated[str | None, typer.Option(help="received, processing, processed, ignored, unsupported, failed")]
LimitOpt = Annotated[int, typer.Option(min=1, max=500)]
BeforeOpt = Annotated[str | None, typer.Option(help="next page: the id printed after the table")]
COLOURS = {"processed": "green", "failed": "red", "received": "yellow", "ignored": "dim", "unsupported": "dim"}


def _list(integration: str | None, status: str | None, limit: int, before: str | None, config: Path | None,
          as_json: bool) -> None:
    from ..inbound import EVENT_STATUSES

    if status is not None and status not in EVENT_STATUSES:
        raise ValueError(f"unknown status {status!r}; use one of {', '.join(EVENT_STATUSES)}")
    page = _on_hub(config, lambda hub: hub.event_list(integration=integration, status=status, limit=limit, before=before))

    def human() -> None:
        t = table("id", "integration", "event", "status", "attempts", "received", "result / error")
        for e in page["items"]:
            c = COLOURS.get(e["status"], "")
            outcome = e["last_error"] or (json.dumps(e["result"]) if e["result"] else "")
            t.add_row(e["id"], e["integration"], e["event_type"], f"[{c}]{e['status']}[/{c}]" if c else e["status"],
                      str(e["attempts"]), _when(e["received_at"]), outcome[:60])
        out.print(t)
        if page["next"]:
            out.print(f"more: --before {page['next']}", highlight=False)

    emit(page, as_json, human)


@events_app.callback()
@handled
def events(
    ctx: typer.Context,
    integration: IntegrationOpt = None,
    status: StatusOpt = None,
    limit: LimitOpt = 50,
    before: BeforeOpt = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Inbound events, newest first, each with its processing result or error."""
    if ctx.invoked_subcommand is None:
        _list(integration, status, limit, before, config, as_json)


@events_app.command("list")
@handled
def events_list(
    integration: IntegrationOpt = None,
    status: StatusOpt = None,
    limit: LimitOpt = 50,
    before: BeforeOpt = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Inbound events, newest first, each with its processing result or error."""
    _list(integration, status, limit, before, config, as_json)


@events_app.command("show")
@handled
def events_show(event_id: EventArg, config: ConfigOpt = None,
                as_json: Annotated[bool, typer.Option("--json", help="(the output is JSON already)")] = True) -> None:
    """One event with the headers and body received (as JSON)."""

    async def _show(hub: Any) -> dict[str, Any]:
        return await hub.event(await hub.resolve_id("event", event_id))

    print_json(_on_hub(config, _show))


@events_app.command("replay")
@handled
def events_replay(event_id: EventArg, config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Process an event again (a running server or worker picks it up)."""

    async def _replay(hub: Any) -> dict[str, Any]:
        return await hub.replay(await hub.resolve_id("event", event_id), actor=cli_actor())

    e = _on_hub(config, _replay)
    emit(e, as_json, f"event {e['id']} ({e['event_type']}) is {e['status']} again")
