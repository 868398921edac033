"""`tidings secret`."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from ._common import (
    ConfigOpt,
    _fail,
    _vault,
    app,
    handled,
    out,
    run,
)

secret_app = typer.Typer(help="Secrets stored encrypted in the database (use as ${vault:NAME}).", no_args_is_help=True)
app.add_typer(secret_app, name="secret")


@secret_app.command("set")
@handled
def secret_set(
    name: str,
    value: Annotated[str | None, typer.Option(help="the value; omit to read it from stdin or a prompt")] = None,
    config: ConfigOpt = None,
) -> None:
    """Store a secret encrypted; refer to it in tidings.yaml as ${vault:NAME}."""
    if value is None:
        value = sys.stdin.readline().rstrip("\n") if not sys.stdin.isatty() else typer.prompt(name, hide_input=True)
    if not value:
        raise ValueError("the secret is empty")

    async def _set() -> None:
        async with _vault(config) as vault:
            await vault.set(name, value)

    run(_set())
    out.print(f"stored {name}; use it as ${{vault:{name}}}", highlight=False)


@secret_app.command("list")
@handled
def secret_list(config: ConfigOpt = None) -> None:
    """Names of stored secrets (never their values)."""

    async def _list() -> list[str]:
        async with _vault(config) as vault:
            return await vault.names()

    for name in run(_list()):
        out.print(name, highlight=False)


@secret_app.command("delete")
@handled
def secret_delete(name: str, config: ConfigOpt = None) -> None:
    async def _delete() -> bool:
        async with _vault(config) as vault:
            return await vault.delete(name)

    if not run(_delete()):
        _fail(f"no secret named {name!r}")
    out.print(f"deleted {name}")
