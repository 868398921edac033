"""`tidings silences`."""

from __future__ import annotations

import os
from typing import Annotated

import typer
from rich.table import Table

from ._common import (
    ConfigOpt,
    JsonOpt,
    _fail,
    _on_hub,
    _print_json,
    _when,
    app,
    handled,
    out,
)

silences_app = typer.Typer(help="Silences: suppress matching messages for a while.", invoke_without_command=True)
app.add_typer(silences_app, name="silences")


@silences_app.callback()
@handled
def silences_list(ctx: typer.Context, config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """The active silences."""
    if ctx.invoked_subcommand is not None:
        return

    items = [s.to_dict() for s in _on_hub(config, lambda hub: hub.active_silences())]
    if as_json:
        _print_json(items)
        return
    table = Table("id", "matchers", "until", "by", "reason")
    for s in items:
        matchers = ",".join(f"{k}={v}" for k, v in s["matchers"].items())
        table.add_row(s["id"], matchers, _when(s["until"]), s["created_by"], s["reason"] or "")
    out.print(table)


@silences_app.command("add")
@handled
def silences_add(
    matchers: Annotated[list[str], typer.Argument(help="label=value (all must match); one bare word means source=WORD")],
    duration: Annotated[str, typer.Option("--for", help="how long: 30m, 2h, 1d (at most 30d)")],
    reason: Annotated[str | None, typer.Option(help="shown beside the silence")] = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Suppress new messages whose labels match for a while (a running server applies it within seconds)."""
    from ..silences import parse_matchers, parse_silence_duration

    parsed, seconds = parse_matchers(matchers), parse_silence_duration(duration)
    by = f"cli:{os.environ.get('USER') or 'unknown'}"

    silence, _ = _on_hub(config, lambda hub: hub.silence(parsed, seconds, by=by, reason=reason))
    s = silence.to_dict()
    if as_json:
        _print_json(s)
    else:
        out.print(f"silence {s['id']} until {_when(s['until'])}", highlight=False)


@silences_app.command("end")
@handled
def silences_end(silence_id: str, config: ConfigOpt = None) -> None:
    """End a silence now (its id, or a unique start of it)."""

    if _on_hub(config, lambda hub: hub.unsilence(silence_id)) is None:
        _fail(f"no active silence {silence_id!r}")
    out.print(f"ended silence {silence_id}", highlight=False)
