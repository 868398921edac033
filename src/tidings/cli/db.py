"""`tidings db`."""

from __future__ import annotations

from typing import Annotated

import typer

from ._common import (
    ConfigOpt,
    JsonOpt,
    _on_hub,
    _print_json,
    _store,
    app,
    handled,
    out,
    run,
)

db_app = typer.Typer(help="The database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")


@db_app.command("upgrade")
@handled
def db_upgrade(config: ConfigOpt = None) -> None:
    """Apply the database migrations (also done at every start)."""
    from ..store.migrate import current

    async def _upgrade() -> str | None:
        async with _store(config) as store:
            return await current(store)

    out.print(f"database at revision {run(_upgrade())}", highlight=False)


@db_app.command("prune")
@handled
def db_prune(
    config: ConfigOpt = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="count what would go, delete nothing")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Remove now what `retention` no longer keeps (a dispatching hub also does it every hour)."""
    counts = _on_hub(config, lambda hub: hub.prune(dry_run=dry_run))
    if as_json:
        _print_json(counts)
        return
    if not counts:
        out.print("retention keeps everything (every period is null)")
        return
    verb = "would remove" if dry_run else "removed"
    out.print(f"{verb}: " + ", ".join(f"{table} {n:,}" for table, n in counts.items()), highlight=False)
