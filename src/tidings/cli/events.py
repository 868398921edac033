"""`tidings events`."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from ._common import (
    ConfigOpt,
    JsonOpt,
    _on_hub,
    _print_json,
    _when,
    app,
    handled,
    out,
)

events_app = typer.Typer(help="Inbound webhook events: history, details, replay.", invoke_without_command=True)
app.add_typer(events_app, name="events")


@events_app.callback()
@handled
def events(
    ctx: typer.Context,
    integration: Annotated[str | None, typer.Option()] = None,
    status: Annotated[str | None, typer.Option(help="received, processing, processed, ignored, unsupported, failed")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 50,
    before: Annotated[str | None, typer.Option(help="next page: the id printed after the table")] = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Inbound events, newest first, each with its processing result or error."""
    from ..inbound import EVENT_STATUSES

    if ctx.invoked_subcommand is not None:
        return
    if status is not None and status not in EVENT_STATUSES:
        raise ValueError(f"unknown status {status!r}; use one of {', '.join(EVENT_STATUSES)}")

    page = _on_hub(config, lambda hub: hub.event_list(integration=integration, status=status, limit=limit, before=before))
    if as_json:
        _print_json(page)
        return
    table = Table("id", "integration", "event", "status", "attempts", "received", "result / error")
    colours = {"processed": "green", "failed": "red", "received": "yellow", "ignored": "dim", "unsupported": "dim"}
    for e in page["items"]:
        c = colours.get(e["status"], "")
        outcome = e["last_error"] or (json.dumps(e["result"]) if e["result"] else "")
        table.add_row(e["id"], e["integration"], e["event_type"], f"[{c}]{e['status']}[/{c}]" if c else e["status"],
                      str(e["attempts"]), _when(e["received_at"]), outcome[:60])
    out.print(table)
    if page["next"]:
        out.print(f"more: --before {page['next']}", highlight=False)


@events_app.command("show")
@handled
def events_show(event_id: str, config: ConfigOpt = None) -> None:
    """One event with the headers and body received (as JSON)."""

    _print_json(_on_hub(config, lambda hub: hub.event(event_id)))


@events_app.command("replay")
@handled
def events_replay(event_id: str, config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Process an event again (a running server or worker picks it up)."""

    e = _on_hub(config, lambda hub: hub.replay(event_id))
    if as_json:
        _print_json(e)
    else:
        out.print(f"event {e['id']} ({e['event_type']}) is {e['status']} again", highlight=False)
