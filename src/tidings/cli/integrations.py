"""`tidings integrations`."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from ._common import (
    ConfigOpt,
    JsonOpt,
    _on_hub,
    _print_json,
    app,
    handled,
    out,
)

integrations_app = typer.Typer(help="Integrations: health, stats, test, enable, disable.", invoke_without_command=True)
app.add_typer(integrations_app, name="integrations")


@integrations_app.callback()
@handled
def integrations(ctx: typer.Context, config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Each integration with its health and stats."""
    if ctx.invoked_subcommand is not None:
        return

    items = _on_hub(config, lambda hub: hub.integrations())
    if as_json:
        _print_json(items)
        return
    table = Table("name", "kind", "health", "sent", "failed", "suppressed", "success", "p95 ms", "last error")
    for i in items:
        s = i["stats"]
        rate = f"{s['success_rate']:.1f}%" if s["success_rate"] is not None else "-"
        p95 = f"{s['latency_p95_ms']:.0f}" if s["latency_p95_ms"] is not None else "-"
        table.add_row(i["name"], i["kind"], i["health"], str(s["sent"]), str(s["failed"]), str(s["suppressed"]), rate, p95,
                      (s["last_error"] or "")[:50])
    out.print(table)


@integrations_app.command("test")
@handled
def integrations_test(name: str, config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Check an integration now and print what its peer answered."""

    outcome = _on_hub(config, lambda hub: hub.test(name))
    data = {"integration": name, "ok": outcome.ok, "status": outcome.status.value, "remote_id": outcome.remote_id, "error": outcome.error}
    if as_json:
        _print_json(data)
    else:
        out.print(f"{name}: {outcome.status.value}" + (f" ({outcome.error})" if outcome.error else ""), highlight=False)
    if not outcome.ok:
        raise typer.Exit(1)


def _set_enabled(name: str, enabled: bool, config: Path | None) -> None:
    _on_hub(config, lambda hub: hub.set_enabled(name, enabled))
    out.print(f"{name} {'enabled' if enabled else 'disabled'}")


@integrations_app.command("enable")
@handled
def integrations_enable(name: str, config: ConfigOpt = None) -> None:
    """Enable an integration again (after its peer answered 410 Gone, or a disable)."""
    _set_enabled(name, True, config)


@integrations_app.command("disable")
@handled
def integrations_disable(name: str, config: ConfigOpt = None) -> None:
    """Stop sending to an integration; its deliveries wait until it is enabled."""
    _set_enabled(name, False, config)
