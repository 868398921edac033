"""`tidings secret`: set, list, delete secrets stored encrypted in the database."""

import sys
from typing import Annotated

import typer

from ._common import ConfigOpt, JsonOpt, _fail, _vault, emit, group, handled, out, run

secret_app = group("secret", "Secrets stored encrypted in the database (use as ${vault:NAME}).")
NameArg = Annotated[str, typer.Argument(help="the secret's name")]


@secret_app.command("set")
@handled
def secret_set(
    name: NameArg,
    value: Annotated[str | None, typer.Option(help="the value; omit to read it from stdin or a prompt")] = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Store a secret encrypted; refer to it in tidings.yaml as ${vault:NAME}."""
    if value is None:
        value = sys.stdin.readline().rstrip("\n") if not sys.stdin.isatty() else typer.prompt(name, hide_input=True)
    if not value:
        raise ValueError("the secret is empty")

    async def _set() -> None:
        async with _vault(config, create=True) as vault:
            await vault.set(name, value)

    run(_set())
    emit({"stored": name}, as_json, f"stored {name}; use it as ${{vault:{name}}}")


@secret_app.command("list")
@handled
def secret_list(config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Names of stored secrets (never their values)."""

    async def _list() -> list[str]:
        async with _vault(config) as vault:
            return await vault.names()

    names = run(_list())

    def human() -> None:
        for name in names:
            out.print(name, highlight=False)

    emit(names, as_json, human)


@secret_app.command("delete")
@handled
def secret_delete(name: NameArg, config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Delete a stored secret."""

    async def _delete() -> bool:
        async with _vault(config) as vault:
            return await vault.delete(name)

    if not run(_delete()):
        _fail(f"no secret named {name!r}")
    emit({"deleted": name}, as_json, f"deleted {name}")
