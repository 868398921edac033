"""`tidings integrations`: health and stats, test, enable, disable."""

from pathlib import Path
from typing import Annotated

import typer

from ._common import ConfigOpt, JsonOpt, _on_hub, cli_actor, emit, group, handled, out
from ._common import table as make_table

integrations_app = group("integrations", "Integrations: health, stats, test, enable, disable.", lists=True)
NameArg = Annotated[str, typer.Argument(help="the integration's name in tidings.yaml")]


def _list(config: Path | None, as_json: bool) -> None:
    items = _on_hub(config, lambda hub: hub.integrations())

    def human() -> None:
        table = make_table("name", "kind", "health", "sent", "failed", "suppressed", "success", "p95 ms", "last error", ids=())
        for i in items:
            s = i.get("stats")
            if s is None:  # receives only
                inbound = i.get("inbound", {})
                table.add_row(i["name"], i["kind"], i["health"], "", str(inbound.get("failed", "")), "", "-", "-", "")
                continue
            rate = f"{s['success_rate']:.1f}%" if s["success_rate"] is not None else "-"
            p95 = f"{s['latency_p95_ms']:.0f}" if s["latency_p95_ms"] is not None else "-"
            table.add_row(i["name"], i["kind"], i["health"], str(s["sent"]), str(s["failed"]), str(s["suppressed"]), rate,
                          p95, (s["last_error"] or "")[:50])
        out.print(table)

    emit(items, as_json, human)


@integrations_app.callback()
@handled
def integrations(ctx: typer.Context, config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Each integration with its health and stats (also `integrations list`)."""
    if ctx.invoked_subcommand is None:
        _list(config, as_json)


@integrations_app.command("list")
@handled
def integrations_list(config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Each integration with its health and stats."""
    _list(config, as_json)


@integrations_app.command("test")
@handled
def integrations_test(name: NameArg, config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Check an integration now and print what its peer answered."""
    outcome = _on_hub(config, lambda hub: hub.test(name), create=True)  # like `send`: a first try needs no init
    data = {"integration": name, "ok": outcome.ok, "status": outcome.status.value, "remote_id": outcome.remote_id, "error": outcome.error}
    emit(data, as_json, f"{name}: {outcome.status.value}" + (f" ({outcome.error})" if outcome.error else ""))
    if not outcome.ok:
        raise typer.Exit(1)


def _set_enabled(name: str, enabled: bool, config: Path | None, as_json: bool) -> None:
    _on_hub(config, lambda hub: hub.set_enabled(name, enabled, actor=cli_actor()))
    emit({"integration": name, "enabled": enabled}, as_json, f"{name} {'enabled' if enabled else 'disabled'}")


@integrations_app.command("enable")
@handled
def integrations_enable(name: NameArg, config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Enable an integration again (after its peer answered 410 Gone, or a disable)."""
    _set_enabled(name, True, config, as_json)


@integrations_app.command("disable")
@handled
def integrations_disable(name: NameArg, config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Stop sending to an integration; its deliveries wait until it is enabled."""
    _set_enabled(name, False, config, as_json)
