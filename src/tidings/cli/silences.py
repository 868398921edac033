"""`tidings silences`: list, add, end."""

from pathlib import Path
from typing import Annotated, Any

import typer

from ._common import ConfigOpt, JsonOpt, _fail, _on_hub, _when, cli_actor, emit, group, handled, out, table

silences_app = group("silences", "Silences: suppress matching messages for a while.", lists=True)


def _list(config: Path | None, as_json: bool) -> None:
    items = [s.to_dict() for s in _on_hub(config, lambda hub: hub.active_silences())]

    def human() -> None:
        t = table("id", "matchers", "until", "by", "reason")
        for s in items:
            matchers = ",".join(f"{k}={v}" for k, v in s["matchers"].items())
            t.add_row(s["id"], matchers, _when(s["until"]), s["created_by"], s["reason"] or "")
        out.print(t)

    emit(items, as_json, human)


@silences_app.callback()
@handled
def silences(ctx: typer.Context, config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """The active silences (also `silences list`)."""
    if ctx.invoked_subcommand is None:
        _list(config, as_json)


@silences_app.command("list")
@handled
def silences_list(config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """The active silences."""
    _list(config, as_json)


@silences_app.command("add")
@handled
def silences_add(
    matchers: Annotated[list[str], typer.Argument(help="label=value (all must match); one bare word means source=WORD")],
    duration: Annotated[str, typer.Option("--for", help="how long: 30m, 2h, 1d (at most 30d)")],
    reason: Annotated[str | None, typer.Option(help="shown beside the silence")] = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Suppress new messages whose labels match for a while.

    A running server applies it within seconds."""
    from ..silences import parse_matchers, parse_silence_duration

    parsed, seconds = parse_matchers(matchers), parse_silence_duration(duration)
    actor = cli_actor()
    silence, _ = _on_hub(config, lambda hub: hub.silence(parsed, seconds, by=actor.name or "cli", reason=reason, actor=actor),
                         create=True)
    s = silence.to_dict()
    emit(s, as_json, f"silence {s['id']} until {_when(s['until'])}")


@silences_app.command("end")
@handled
def silences_end(silence_id: Annotated[str, typer.Argument(help="an id or a unique start of one")],
                 config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """End a silence now."""

    async def _end(hub: Any) -> Any:
        return await hub.unsilence(await hub.resolve_id("silence", silence_id), actor=cli_actor())

    ended = _on_hub(config, _end)
    if ended is None:
        _fail(f"no active silence {silence_id} (it has ended)")
    s = ended.to_dict()
    emit(s, as_json, f"ended silence {s['id']}")
