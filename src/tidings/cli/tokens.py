"""`tidings token`: create, list, revoke API tokens."""

from typing import Annotated, Any

import typer

from ._common import ConfigOpt, JsonOpt, _store, _when, emit, group, handled, out, run, table

token_app = group("token", "API tokens.")


@token_app.command("create")
@handled
def token_create(name: Annotated[str, typer.Option("--name", help="who or what uses it")], config: ConfigOpt = None,
                 as_json: JsonOpt = False) -> None:
    """Create an API token and print it (the only time it is shown)."""
    from ..security.tokens import create_token

    async def _create() -> str:
        async with _store(config, create=True) as store:
            return await create_token(store, name)

    token = run(_create())
    emit({"name": name, "token": token}, as_json, token)


@token_app.command("list")
@handled
def token_list(config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """API tokens (never their values)."""
    from ..security.tokens import list_tokens

    async def _list() -> list[dict[str, Any]]:
        async with _store(config) as store:
            return await list_tokens(store)

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

    async def _revoke() -> tuple[int, str]:
        async with _store(config) as store:
            if n := await revoke_token(store, name):
                return n, f"revoked {n} token(s) named {name}"
            try:
                async with store.read() as conn:
                    token_id = await resolve_id(conn, "token", name)
            except NotFound:
                raise NotFound(f"no active token named {name!r}") from None
            if not await revoke_token(store, token_id=token_id):
                raise NotFound(f"token {token_id} is already revoked")
            return 1, f"revoked token {token_id}"

    n, line = run(_revoke())
    emit({"revoked": n}, as_json, line)
