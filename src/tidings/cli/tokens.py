"""`tidings token`: create, list, revoke API tokens. Each belongs to a user and may be limited to
one project and expire."""

from typing import Annotated, Any

import typer

from ._common import ConfigOpt, JsonOpt, _store, _when, cli_actor, emit, group, handled, out, plain, run, table

token_app = group("token", "API tokens.")
UserOpt = Annotated[str | None, typer.Option("--user", help="the owner's email (default: the first site admin)")]


@token_app.command("create")
@handled
def token_create(
    name: Annotated[str, typer.Option("--name", help="who or what uses it")],
    user: UserOpt = None,
    project: Annotated[str | None, typer.Option("--project", help="the only project it may act in")] = None,
    expires: Annotated[str | None, typer.Option("--expires", help="how long it lives: 90d, 12h, 2w (default: no expiry)")] = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create an API token and print it (the only time it is shown).

    It acts as its user, with the user's roles (limited to --project when given)."""
    import time

    from ..accounts.users import get_user
    from ..security.tokens import create_token, verify_token
    from ..units import parse_duration

    for value, what in ((name, "--name"), (user, "--user"), (project, "--project")):
        if value is not None:
            plain(value, what)
    expires_at = None
    if expires is not None:
        seconds = parse_duration(expires)
        if seconds <= 0:
            raise ValueError(f"--expires {expires!r}: give a positive duration such as 90d")
        expires_at = time.time() + seconds

    async def _create() -> dict[str, Any]:
        async with _store(config, create=True) as store:
            token = await create_token(store, name, user=user, project=project, expires_at=expires_at,
                                       actor=cli_actor())
            info = await verify_token(store, token)
            assert info is not None  # just made
            async with store.read() as conn:
                owner = await get_user(conn, info.user_id) if info.user_id else None
            return {"id": info.id, "name": name, "token": token, "user": owner.email if owner else None,
                    "project": info.project, "expires_at": info.expires_at}

    made = run(_create())
    emit(made, as_json, made["token"])


@token_app.command("list")
@handled
def token_list(user: Annotated[str | None, typer.Option("--user", help="only this user's tokens (email)")] = None,
               config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """API tokens (never their values)."""
    from ..accounts.users import AccountError, get_user
    from ..security.tokens import list_tokens

    if user is not None:
        plain(user, "--user")

    async def _list() -> list[dict[str, Any]]:
        async with _store(config) as store:
            owner = None
            if user is not None:
                async with store.read() as conn:
                    if (found := await get_user(conn, user)) is None:
                        raise AccountError(f"no user {user}")
                    owner = found.id
            return await list_tokens(store, user=owner)

    items = run(_list())

    def human() -> None:
        t = table("id", "name", "user", "project", "created", "expires", "last used", "revoked")
        for tok in items:
            t.add_row(tok["id"], str(tok["name"]), str(tok["user"] or "-"), str(tok["project"] or "-"),
                      _when(tok["created_at"]), _when(tok["expires_at"]), _when(tok["last_used_at"]),
                      _when(tok["revoked_at"]))
        out.print(t)

    emit(items, as_json, human)


@token_app.command("revoke")
@handled
def token_revoke(name: Annotated[str, typer.Argument(help="a token's name (all with it), or its id or a unique start of it")],
                 config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Revoke tokens by name or id (effective within 10 s on running servers)."""
    from ..errors import NotFound
    from ..security.tokens import revoke_token
    from ..store.lookup import resolve_id

    plain(name, "the token")
    actor = cli_actor()

    async def _revoke() -> tuple[int, str]:
        async with _store(config) as store:
            if n := await revoke_token(store, name, actor=actor):
                return n, f"revoked {n} token(s) named {name}"
            try:
                async with store.read() as conn:
                    token_id = await resolve_id(conn, "token", name)
            except NotFound:
                raise NotFound(f"no active token named {name!r}") from None
            if not await revoke_token(store, token_id=token_id, actor=actor):
                raise NotFound(f"token {token_id} is already revoked")
            return 1, f"revoked token {token_id}"

    n, line = run(_revoke())
    emit({"revoked": n}, as_json, line)
