"""Deliveries: list and retry."""

from __future__ import annotations

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


@app.command()
@handled
def deliveries(
    status: Annotated[str | None, typer.Option(help="pending, sending, retrying, delivered, dead, suppressed")] = None,
    integration: Annotated[str | None, typer.Option()] = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 50,
    before: Annotated[str | None, typer.Option(help="next page: the id printed after the table")] = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List deliveries, newest first."""
    from ..delivery.queries import STATUSES

    if status is not None and status not in STATUSES:
        raise ValueError(f"unknown status {status!r}; use one of {', '.join(STATUSES)}")

    page = _on_hub(config, lambda hub: hub.deliveries(status=status, integration=integration, limit=limit, before=before))
    if as_json:
        _print_json(page)
        return
    table = Table("id", "integration", "status", "attempts", "updated", "title", "last error", show_lines=False)
    colours = {"delivered": "green", "dead": "red", "retrying": "yellow", "suppressed": "dim"}
    for d in page["items"]:
        c = colours.get(d["status"], "")
        table.add_row(d["id"], d["integration"], f"[{c}]{d['status']}[/{c}]" if c else d["status"], str(d["attempts"]),
                      _when(d["updated_at"]), d["title"][:40], (d["last_error"] or "")[:60])
    out.print(table)
    if page["next"]:
        out.print(f"more: --before {page['next']}", highlight=False)


@app.command()
@handled
def retry(delivery_id: str, config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Queue a dead (or waiting) delivery again now, with a fresh retry budget."""

    d = _on_hub(config, lambda hub: hub.retry(delivery_id))
    if as_json:
        _print_json(d)
    else:
        out.print(f"delivery {d['id']} to {d['integration']} is {d['status']} again", highlight=False)
