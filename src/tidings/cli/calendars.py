"""`tidings calendar`: a project's ICS feeds (create, list, revoke), as the API has them.

The CLI acts as a site admin (see ``cli_actor``): it may make a feed of every task of a project, or
a personal one for any member (``--user``). The feed's URL holds its token and is shown once."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from ._common import ConfigOpt, JsonOpt, _on_hub, _when, cli_actor, emit, group, handled, out, plain, print_once, table

if TYPE_CHECKING:
    from ..hub import Hub

calendar_app = group("calendar", "A project's calendar (ICS) feeds: create, list, revoke; reconcile a pushed calendar.")
ProjectOpt = Annotated[str, typer.Option("--project", "-p", help="the project's slug")]


async def _user_id(conn: Any, project: str, email: str) -> str:
    from sqlalchemy import select

    from ..accounts.users import get_user
    from ..errors import TidingsError
    from ..store.tables import memberships

    user = await get_user(conn, email)
    if user is None:
        raise TidingsError(f"no user {email!r}")
    member = (await conn.execute(select(memberships.c.role).where(
        memberships.c.user_id == user.id, memberships.c.project == project))).first()
    if member is None and not user.site_admin:
        raise TidingsError(f"{user.email} is not a member of project {project}")
    return user.id


@calendar_app.command("create")
@handled
def calendar_create(
    name: Annotated[str, typer.Option("--name", help="the calendar's name in clients")],
    project: ProjectOpt = "default",
    user: Annotated[str | None, typer.Option("--user", help="a personal feed: the tasks assigned to this member "
                                             "(email); without it, every task of the project")] = None,
    base_url: Annotated[str, typer.Option("--base-url", help="where calendar clients reach the server")] =
    "http://localhost:8000",
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """A new feed of the project's tasks with a due date; prints its URL once."""
    from ..calendars.feeds import create_feed
    from ..errors import TidingsError

    for value, what in ((name, "--name"), (project, "--project"), (user, "--user"), (base_url, "--base-url")):
        if value is not None:
            plain(value, what)
    if not name.strip() or len(name) > 100:
        raise TidingsError("--name: 1 to 100 characters")

    async def _create(hub: Hub) -> dict[str, Any]:
        if not await hub.project_exists(project):
            raise TidingsError(f"no project {project!r}; `tidings project list` shows them")
        async with hub.require_store().write() as conn:
            user_id = await _user_id(conn, project, user) if user is not None else None
            feed, token = await create_feed(conn, cli_actor(), project, name, user_id=user_id, created_by=None)
        return {**feed, "url": f"{base_url.rstrip('/')}/calendars/{token}.ics"}

    feed = _on_hub(config, _create)
    emit(feed, as_json, lambda: (out.print(f"created calendar feed {feed['id']} ({feed['name']})", highlight=False),
                                 print_once("Its URL", feed["url"])))


@calendar_app.command("list")
@handled
def calendar_list(project: ProjectOpt = "default", config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """The project's live feeds (never their tokens)."""
    from rich.markup import escape

    from ..calendars.feeds import list_feeds

    plain(project, "--project")

    async def _list(hub: Hub) -> list[dict[str, Any]]:
        async with hub.require_store().read() as conn:
            return await list_feeds(conn, project)

    found = _on_hub(config, _list)

    def _human() -> None:
        grid = table("id", "name", "tasks", "created", "last read")
        for f in found:
            grid.add_row(f["id"], escape(f["name"]), escape(f["user"] or "every task"), _when(f["created_at"]),
                         _when(f["last_used_at"]) or "never")
        out.print(grid)

    emit(found, as_json, _human)


@calendar_app.command("revoke")
@handled
def calendar_revoke(
    feed_id: Annotated[str, typer.Argument(help="the feed's id (tidings calendar list)")],
    project: ProjectOpt = "default", config: ConfigOpt = None, as_json: JsonOpt = False,
) -> None:
    """Revoke a feed: its URL answers 404 from now on."""
    from ..calendars.feeds import revoke_feed
    from ..errors import TidingsError

    plain(feed_id, "the feed id")
    plain(project, "--project")

    async def _revoke(hub: Hub) -> dict[str, Any]:
        async with hub.require_store().write() as conn:
            feed = await revoke_feed(conn, cli_actor(), project, feed_id)
        if feed is None:
            raise TidingsError(f"no live feed {feed_id!r} in project {project}")
        return feed

    feed = _on_hub(config, _revoke)
    emit(feed, as_json, f"revoked calendar feed {feed['id']} ({feed['name']})")


@calendar_app.command("reconcile")
@handled
def calendar_reconcile(
    name: Annotated[str, typer.Argument(help="the calendar integration (kind google_calendar or outlook_calendar)")],
    config: ConfigOpt = None, as_json: JsonOpt = False,
) -> None:
    """Delete the events tidings made that no task wants any more, and push again the tasks whose
    event is missing (through the outbox: a running server sends them). Never touches other events."""
    from ..calendars.reconcile import ReconcileError, reconcile
    from ..errors import TidingsError

    plain(name, "the integration")

    async def _reconcile(hub: Hub) -> dict[str, Any]:
        try:
            return {"integration": name, **await reconcile(hub, name)}
        except ReconcileError as exc:
            raise TidingsError(str(exc)) from None

    counts = _on_hub(config, _reconcile)
    emit(counts, as_json, f"reconciled {name}: {counts['listed']} events of ours, {counts['kept']} kept, "
                          f"{counts['deleted']} deleted, {counts['repushed']} tasks pushed again")
