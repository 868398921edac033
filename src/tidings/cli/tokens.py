"""`tidings token`."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer
from rich.table import Table

from ._common import (
    ConfigOpt,
    JsonOpt,
    _fail,
    _print_json,
    _store,
    _when,
    app,
    handled,
    out,
    run,
)

token_app = typer.Typer(help="API tokens.", no_args_is_help=True)
app.add_typer(token_app, name="token")


@token_app.command("create")
@handled
def token_create(name: Annotated[str, typer.Option("--name", help="who or what uses it")], config: ConfigOpt = None) -> None:
    """Create an API token and print it (the only time it is shown)."""
    from ..security.tokens import create_token

    async def _create() -> str:
        async with _store(config) as store:
            return await create_token(store, name)

    sys.stdout.write(run(_create()) + "\n")


@token_app.command("list")
@handled
def token_list(config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """API tokens (never their values)."""
    from ..security.tokens import list_tokens

    async def _list() -> list[dict[str, Any]]:
        async with _store(config) as store:
            return await list_tokens(store)

    items = run(_list())
    if as_json:
        _print_json(items)
        return
    table = Table("name", "role", "created", "revoked")
    for t in items:
        table.add_row(str(t["name"]), str(t["role"]), _when(t["created_at"]), _when(t["revoked_at"]))  # type: ignore[arg-type]
    out.print(table)


@token_app.command("revoke")
@handled
def token_revoke(name: str, config: ConfigOpt = None) -> None:
    """Revoke every token with this name (effective within 10 s on running servers)."""
    from ..security.tokens import revoke_token

    async def _revoke() -> int:
        async with _store(config) as store:
            return await revoke_token(store, name)

    n = run(_revoke())
    if not n:
        _fail(f"no active token named {name!r}")
    out.print(f"revoked {n} token(s) named {name}")
