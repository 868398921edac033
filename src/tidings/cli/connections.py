"""`tidings connections`: the OAuth connections and their health, refresh now, disconnect; and
`tidings connect NAME`, which prints the URL to open to connect (for a headless server).

The CLI acts as a site admin (see ``cli_actor``); its changes are audited as ``cli:USER``. Never a
token in any output."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from ._common import ConfigOpt, JsonOpt, _fail, _on_hub, _when, app, cli_actor, emit, group, handled, out, plain, table

if TYPE_CHECKING:
    from ..hub import Hub

connections_app = group("connections", "OAuth connections: health (the default), refresh, disconnect.", lists=True)
NameArg = Annotated[str, typer.Argument(help="the integration's name")]
ProjectOpt = Annotated[str | None, typer.Option("--project", "-p", help="only this project's")]
COLOURS = {"healthy": "green", "expiring": "yellow", "needs_reauth": "red", "not_connected": "dim"}


def _health(health: str) -> str:
    c = COLOURS.get(health)
    return f"[{c}]{health}[/{c}]" if c else health


def _table(items: list[dict[str, Any]]) -> None:
    from rich.markup import escape

    t = table("integration", "provider", "health", "account", "expires", "last refresh", "last error")
    for c in items:
        expires = _when(c["expires_at"]) if c["expires_at"] else ("never" if c["status"] != "not_connected" else "")
        if c["access_expired"]:
            expires += " (expired)"
        t.add_row(escape(c["integration"]), c["provider"], _health(c["health"]), escape(c["account"] or ""), expires,
                  _when(c["refreshed_at"]), escape((c["last_error"] or "")[:60]))
    out.print(t)
    for c in items:
        if c["health"] in ("needs_reauth", "not_connected", "expiring"):
            out.print(f"  {c['integration']}: connect it at {c['start_url']} or run `tidings connect "
                      f"{c['integration']}`", highlight=False)


def _list(project: str | None, config: Any, as_json: bool) -> None:
    from ..oauth import keeper

    if project is not None:
        plain(project, "--project")

    async def _overview(hub: Hub) -> list[dict[str, Any]]:
        if project is not None and not await hub.project_exists(project):
            from ..errors import NotFound

            raise NotFound(f"no project {project!r}")
        return await keeper.overview(hub, project)

    items = _on_hub(config, _overview)
    emit(items, as_json, (lambda: _table(items)) if items else
         "no integration connects through OAuth (set `oauth: true` on a slack, github, jira or calendar integration)")


@connections_app.callback()
@handled
def connections(ctx: typer.Context, project: ProjectOpt = None, config: ConfigOpt = None,
                as_json: JsonOpt = False) -> None:
    """The integrations that connect through OAuth, with their health (or `refresh NAME`, `disconnect NAME`)."""
    if ctx.invoked_subcommand is None:
        _list(project, config, as_json)


@connections_app.command("list")
@handled
def connections_list(project: ProjectOpt = None, config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """The integrations that connect through OAuth: provider, health, account, expiry, last refresh, last error."""
    _list(project, config, as_json)


@connections_app.command("refresh")
@handled
def connections_refresh(name: NameArg, config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Refresh a connection's access token now (one refresh at a time per connection); audited."""
    from ..oauth import keeper

    plain(name, "the integration name")
    done = _on_hub(config, lambda hub: keeper.refresh_now(hub, name, actor=cli_actor()))
    lines = {"refreshed": f"refreshed {name}: expires {_when(done['expires_at']) or 'never'}",
             "failed": f"refresh of {name} failed for now (tried again later): {done['last_error']}",
             "refused": f"{done['provider']} refused to refresh {name}: it needs re-auth; connect it at "
                        f"{done['start_url']} or run `tidings connect {name}`",
             "not_due": f"{name} needs no refresh"}
    emit(done, as_json, lines[done["outcome"]])
    if done["outcome"] in ("failed", "refused"):
        raise typer.Exit(1)


@connections_app.command("disconnect")
@handled
def connections_disconnect(name: NameArg, config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Forget a connection (its tokens are deleted and purged); its integration's sends are held until
    it is connected again. Revoke the app at the provider too."""
    from ..oauth import keeper

    plain(name, "the integration name")
    _on_hub(config, lambda hub: keeper.disconnect(hub, name, actor=cli_actor()))
    emit({"integration": name, "disconnected": True}, as_json,
         f"disconnected {name}: its sends are held until it is connected again (`tidings connect {name}`)")


@app.command("connect")
@handled
def connect(name: NameArg, config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Print the URL to open (in any browser) to connect an integration through OAuth; the provider
    sends the browser back to this server's /oauth/NAME/callback (server.public_url). Valid ten minutes."""
    from ..oauth import flow
    from ..oauth.errors import NotConnectable

    plain(name, "the integration name")

    async def _start(hub: Hub) -> str:
        assert hub.vault is not None
        return await flow.start(hub.require_store(), hub.vault, hub.config, name)

    try:
        url = _on_hub(config, _start)
    except NotConnectable as exc:
        _fail(str(exc), 2)
        raise  # unreachable: _fail exits
    emit({"integration": name, "url": url, "expires_in": flow.STATE_TTL}, as_json,
         lambda: (out.print(f"Open this URL in a browser to connect {name} (valid {flow.STATE_TTL / 60:g} minutes):",
                            highlight=False),
                  out.print(url, highlight=False, soft_wrap=True)))
