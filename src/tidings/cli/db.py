"""`tidings db`: upgrade the schema, prune what retention no longer keeps."""

from typing import Annotated

import typer

from ._common import ConfigOpt, JsonOpt, _on_hub, _store, emit, group, handled, run

db_app = group("db", "The database schema.")


@db_app.command("upgrade")
@handled
def db_upgrade(config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Create the database or apply its migrations (also done at every start)."""
    from ..store.migrate import current

    async def _upgrade() -> str | None:
        async with _store(config, create=True) as store:
            return await current(store)

    revision = run(_upgrade())
    emit({"revision": revision}, as_json, f"database at revision {revision}")


@db_app.command("prune")
@handled
def db_prune(
    config: ConfigOpt = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="count what would go, delete nothing")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Remove now what `retention` no longer keeps (a dispatching hub also does it every hour)."""
    counts = _on_hub(config, lambda hub: hub.prune(dry_run=dry_run))
    verb = "would remove" if dry_run else "removed"
    human = (f"{verb}: " + ", ".join(f"{table} {n:,}" for table, n in counts.items()) if counts
             else "retention keeps everything (every period is null)")
    emit(counts, as_json, human)
