"""`tidings user`: create, list, disable, enable people and set their passwords.

A password is never an argument (it would stay in the shell's history and in `ps`): it is
generated and printed once, or read from stdin with ``--password-stdin``."""

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from ._common import (
    ConfigOpt,
    JsonOpt,
    _store,
    _when,
    cli_actor,
    emit,
    group,
    handled,
    out,
    plain,
    print_once,
    run,
    table,
)

user_app = group("user", "People who sign in to tidings and own API tokens.")
EmailArg = Annotated[str, typer.Argument(help="the user's email address (or id)")]
PasswordStdinOpt = Annotated[bool, typer.Option(
    "--password-stdin", help="read the password from stdin (one line, at least 12 characters) instead of generating one")]


def read_password(from_stdin: bool) -> tuple[str, bool]:
    """The password to set and whether it was generated (and so must be printed once)."""
    from ..accounts.passwords import new_password

    if not from_stdin:
        return new_password(), True
    if sys.stdin.isatty():
        text = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    else:
        text = sys.stdin.read()
        text = text[:-1] if text.endswith("\n") else text
        text = text[:-1] if text.endswith("\r") else text
    if not text:
        raise ValueError("no password on stdin")
    if "\n" in text:
        raise ValueError("the password on stdin must be one line")
    return plain(text, "the password", echo=False), False


def _describe(user: dict[str, Any]) -> str:
    flags = [f for f, on in (("site admin", user["site_admin"]), ("disabled", user["disabled"])) if on]
    return user["email"] + (f" ({', '.join(flags)})" if flags else "")


@user_app.command("create")
@handled
def user_create(
    email: Annotated[str, typer.Argument(help="their email address: how they sign in")],
    name: Annotated[str | None, typer.Option("--name", help="display name (default: the part before @)")] = None,
    site_admin: Annotated[bool, typer.Option("--site-admin", help="may manage users and every project")] = False,
    password_stdin: PasswordStdinOpt = False,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a user; print a generated one-time password (shown once) unless --password-stdin.

    The first site admin also becomes the owner of API tokens made before users existed."""
    from ..accounts.users import create_user

    plain(email, "the email")
    if name is not None:
        plain(name, "--name")
    password, generated = read_password(password_stdin)

    async def _create() -> dict[str, Any]:
        async with _store(config, create=True) as store, store.write() as conn:
            return (await create_user(conn, cli_actor(), email=email, name=name, password=password,
                                      site_admin=site_admin)).public()

    user = run(_create())

    def human() -> None:
        out.print(f"created user {_describe(user)}", highlight=False)
        if generated:
            print_once(f"Password of {user['email']}", password)

    emit({"user": user, "password": password if generated else None}, as_json, human)


@user_app.command("list")
@handled
def user_list(config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Every user (never a password or its hash)."""
    from ..accounts.users import list_users

    async def _list() -> list[dict[str, Any]]:
        async with _store(config) as store, store.read() as conn:
            return [u.public() for u in await list_users(conn)]

    items = run(_list())

    def human() -> None:
        t = table("id", "email", "name", "site admin", "disabled", "created")
        for u in items:
            t.add_row(u["id"], u["email"], u["name"], "yes" if u["site_admin"] else "",
                      "yes" if u["disabled"] else "", _when(u["created_at"]))
        out.print(t)

    emit(items, as_json, human)


def _set_disabled(config: Path | None, email: str, disabled: bool, as_json: bool) -> None:
    from ..accounts.sessions import end_user_sessions
    from ..accounts.users import set_disabled

    plain(email, "the email")
    async def _change() -> tuple[dict[str, Any], int]:
        async with _store(config) as store, store.write() as conn:
            user = await set_disabled(conn, cli_actor(), email, disabled)
            ended = await end_user_sessions(conn, user.id) if disabled else 0
            return user.public(), ended

    user, ended = run(_change())
    line = f"{'disabled' if disabled else 'enabled'} {user['email']}"
    if disabled:
        line += f": {ended} session(s) ended, their tokens stop working"
    emit({**user, "sessions_ended": ended}, as_json, line)


@user_app.command("disable")
@handled
def user_disable(email: EmailArg, config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Disable a user: their sessions end and their tokens stop working (within 10 s on running
    servers). The last enabled site admin can't be disabled."""
    _set_disabled(config, email, True, as_json)


@user_app.command("enable")
@handled
def user_enable(email: EmailArg, config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Enable a disabled user again (their tokens work again)."""
    _set_disabled(config, email, False, as_json)


@user_app.command("set-password")
@handled
def user_set_password(email: EmailArg, password_stdin: PasswordStdinOpt = False, config: ConfigOpt = None,
                      as_json: JsonOpt = False) -> None:
    """Set a new password (generated and printed once unless --password-stdin); ends the user's
    sessions."""
    from ..accounts.sessions import end_user_sessions
    from ..accounts.users import get_user, set_password

    plain(email, "the email")
    password, generated = read_password(password_stdin)

    async def _set() -> tuple[str, int]:
        async with _store(config) as store, store.write() as conn:
            await set_password(conn, cli_actor(), email, password)
            user = await get_user(conn, email)
            assert user is not None  # set_password refused an unknown user
            return user.email, await end_user_sessions(conn, user.id)

    who, ended = run(_set())

    def human() -> None:
        out.print(f"set the password of {who}: {ended} session(s) ended", highlight=False)
        if generated:
            print_once(f"Password of {who}", password)

    emit({"user": who, "sessions_ended": ended, "password": password if generated else None}, as_json, human)
