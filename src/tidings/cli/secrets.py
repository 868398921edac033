"""`tidings secret`: set, rotate, list, show and delete secrets stored encrypted in the database.
Values are never printed (but a value made by ``rotate --generate``, once); every change is audited."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ._common import ConfigOpt, JsonOpt, _vault, _when, cli_actor, emit, err, group, handled, load, out, run, table

if TYPE_CHECKING:
    from pathlib import Path

    from ..config import Config
    from ..security.vault import Vault

secret_app = group("secret", "Secrets stored encrypted in the database (use as ${vault:NAME}).")
NameArg = Annotated[str, typer.Argument(help="the secret's name")]
ValueOpt = Annotated[str | None, typer.Option(help="the value; omit to read it from stdin or a prompt")]


def _read_value(name: str, value: str | None) -> str:
    if value is None:
        value = sys.stdin.readline().rstrip("\n") if not sys.stdin.isatty() else typer.prompt(name, hide_input=True)
    return value


async def _open(config: Path | None, fn: Any, *, create: bool = False) -> Any:
    """``fn(vault, cfg)`` on the configured vault (references come from the same configuration)."""
    cfg, _ = load(config)
    async with _vault(config, create=create) as vault:
        return await fn(vault, cfg)


def _generate(current: str) -> str:
    """A random value shaped like ``current``: a ``whsec_`` key stays a ``whsec_`` key."""
    import base64
    import secrets

    if current.startswith("whsec_"):
        return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    return secrets.token_urlsafe(32)


@secret_app.command("set")
@handled
def secret_set(name: NameArg, value: ValueOpt = None, config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Store a secret encrypted; refer to it in tidings.yaml as ${vault:NAME}. A name that exists
    gets the new value (recorded as a rotation)."""
    from ..security.credentials import check_fits
    from ..security.vault import check_name, check_value

    check_name(name)
    value = _read_value(name, value)
    check_value(value)

    async def _set(vault: Vault, cfg: Config) -> dict[str, Any]:
        check_fits(cfg, name, value)
        return await vault.set(name, value, actor=cli_actor())

    info = run(_open(config, _set, create=True))
    line = f"stored {name}; use it as ${{vault:{name}}}" if info["created"] else f"stored a new value for {name} (rotated)"
    emit({"stored": name, "created": info["created"]}, as_json, line)


@secret_app.command("rotate")
@handled
def secret_rotate(
    name: NameArg,
    value: ValueOpt = None,
    generate: Annotated[bool, typer.Option("--generate", help="make a random value (printed once: give it to the peer)")] = False,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Give an existing secret a new value (from stdin, a prompt, or --generate). Running hubs use it
    for their next send within seconds, without a restart."""
    from ..security.credentials import check_fits, references
    from ..security.vault import check_value

    if generate and value is not None:
        raise ValueError("give --value or --generate, not both")
    typed: str | None = None
    if not generate:
        typed = _read_value(name, value)
        check_value(typed)

    async def _rotate(vault: Vault, cfg: Config) -> tuple[str | None, list[str]]:
        fresh = typed if typed is not None else _generate(await vault.get(name))
        check_fits(cfg, name, fresh)
        await vault.set(name, fresh, actor=cli_actor(), must_exist=True)
        return (fresh if generate else None), references(cfg).get(name, [])

    made, using = run(_open(config, _rotate))
    data: dict[str, Any] = {"rotated": name, "references": using}
    if made is not None:
        data["value"] = made

    def human() -> None:
        if made is not None:
            out.print(made, highlight=False, soft_wrap=True)
        where = f"; {', '.join(using)} use it from their next send" if using else "; no integration refers to it"
        (err if made is not None else out).print(f"rotated {name}{where}", highlight=False, soft_wrap=True)

    emit(data, as_json, human)


def _row(info: dict[str, Any]) -> list[str]:
    return [info["name"], _when(info["created_at"]), info["created_by"] or "-", _when(info["rotated_at"]) or "-",
            info["rotated_by"] or "-", _when(info["last_used_at"]) or "never", ", ".join(info["references"]) or "-"]


_HEADERS = ("name", "created", "by", "rotated", "by", "last used", "used by")


@secret_app.command("list")
@handled
def secret_list(config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Stored secrets with their metadata and the integrations referring to them (never their values)."""
    from ..security.credentials import list_secrets

    items = run(_open(config, list_secrets))

    def human() -> None:
        t = table(*_HEADERS, ids=())
        for info in items:
            t.add_row(*_row(info))
        out.print(t)

    emit(items, as_json, human)


@secret_app.command("show")
@handled
def secret_show(name: NameArg, config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """One secret's metadata, the integrations referring to it and its value masked (…abcd: the last
    4 characters of a value of 16 or more, nothing of a shorter one)."""
    from ..security.credentials import show_secret

    info = run(_open(config, lambda vault, cfg: show_secret(vault, cfg, name)))

    def human() -> None:
        for label, text in zip((*_HEADERS[1:], "value"), (*_row(info)[1:], info["masked"] or "(can't be decrypted)"),
                               strict=True):
            out.print(f"{label + ':':<11}{text}", highlight=False, soft_wrap=True)

    emit(info, as_json, human)


@secret_app.command("delete")
@handled
def secret_delete(
    name: NameArg,
    force: Annotated[bool, typer.Option("--force", help="delete it although integrations refer to it")] = False,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Delete a stored secret for good. Refused while tidings.yaml refers to it, unless --force."""
    from ..security.credentials import delete_secret

    deleted = run(_open(config, lambda vault, cfg: delete_secret(vault, cfg, name, force=force, actor=cli_actor())))
    if not deleted["purged"]:
        err.print(f"warning: {name} is deleted, but the database could not yet wipe its old pages "
                  "(another connection held them; see the log)", highlight=False, soft_wrap=True)
    emit({"deleted": name, "purged": deleted["purged"], "references": deleted["references"]}, as_json,
         f"deleted {name}")
