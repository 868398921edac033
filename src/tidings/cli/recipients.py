"""`tidings recipient`: a project's recipients, their preferences and groups, as the API has them.

Every change is audited as the person at the terminal (``cli:<login>``). A Teams workflow URL is
stored in the vault (``--teams -`` reads it from stdin, out of the shell's history) and shown only
as ``teams: yes``. In a preference, ``*`` (or ``''``) is any topic or any channel."""

from __future__ import annotations

import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ._common import (
    ConfigOpt,
    JsonOpt,
    _on_hub,
    _when,
    cli_actor,
    emit,
    group,
    handled,
    out,
    plain,
    remember_config,
    table,
)

if TYPE_CHECKING:
    from ..hub import Hub
    from ..store.engine import Conn

recipient_app = group("recipient", "A project's recipients, their preferences and groups.")
group_app = typer.Typer(help="Groups of recipients (@name in a route's `to`).", no_args_is_help=True)
group_app.callback()(handled(remember_config))
recipient_app.add_typer(group_app, name="group")

ProjectOpt = Annotated[str, typer.Option("--project", "-p", help="the project's slug")]
NameArg = Annotated[str, typer.Argument(help="the recipient's name (@name in a route's `to`)")]
GroupArg = Annotated[str, typer.Argument(help="the group's name")]
DisplayOpt = Annotated[str | None, typer.Option("--display-name", help="how the person is called")]
EmailOpt = Annotated[str | None, typer.Option(help="their email address")]
SlackOpt = Annotated[str | None, typer.Option("--slack-user", help="their Slack user id (U024BE7LH)")]
TeamsOpt = Annotated[str | None, typer.Option(help="their Teams workflow URL (kept in the vault); - reads it from stdin")]
ZoneOpt = Annotated[str | None, typer.Option("--timezone", "--tz", help="IANA time zone (Europe/Berlin)")]
UserOpt = Annotated[str | None, typer.Option(help="the tidings user (email) this person is; a member of the project")]
QuietOpt = Annotated[str | None, typer.Option("--quiet-hours", help="their own quiet hours, as JSON")]
VersionOpt = Annotated[int | None, typer.Option("--if-version", min=1, help="refuse if the recipient changed since")]
ANY = ("*", "")


def _on(config: Path | None, project: str, call: Callable[[Hub, Conn], Awaitable[Any]], *,
        write: bool = False, secret: bool = False) -> Any:
    """``call(hub, conn)`` in a transaction on ``project`` (a write: an edit, the directory reloaded)."""
    from ..errors import TidingsError
    from ..recipients.edit import editing

    plain(project, "the project")

    async def _run(hub: Hub) -> Any:
        if not await hub.project_exists(project):
            raise TidingsError(f"no project {project!r}; `tidings project list` shows them")
        if write:
            async with editing(hub, project, secret=secret) as conn:
                return await call(hub, conn)
        async with hub.require_store().read() as conn:
            return await call(hub, conn)

    return _on_hub(config, _run)


def _values(display_name: str | None, email: str | None, slack_user: str | None, teams: str | None,
            timezone: str | None, user: str | None, quiet_hours: str | None) -> dict[str, Any]:
    given = {"display_name": display_name, "email": email, "slack_user": slack_user, "timezone": timezone,
             "user": user}
    values: dict[str, Any] = {k: plain(v, k.replace("_", " ")) for k, v in given.items() if v is not None}
    if teams is not None:
        values["teams"] = sys.stdin.readline().strip() if teams == "-" else teams
    if quiet_hours is not None:
        try:
            values["quiet_hours"] = json.loads(quiet_hours)
        except json.JSONDecodeError as exc:
            raise ValueError(f"--quiet-hours: not JSON ({exc.msg})") from None
    return values


def _show(r: dict[str, Any], prefs: list[dict[str, Any]] | None = None) -> None:
    from rich.markup import escape

    out.print(f"[bold]{escape(r['name'])}[/bold] {escape(r['display_name'])}", highlight=False)
    rows = [("email", r["email"] or "—"), ("slack", r["slack_user"] or "—"), ("teams", "yes" if r["teams"] else "—"),
            ("timezone", r["timezone"]), ("user", r["user"] or "—"),
            ("quiet", json.dumps(r["quiet_hours"]) if r["quiet_hours"] else "the project's"),
            ("version", str(r["version"])), ("updated", _when(r["updated_at"])), ("id", r["id"])]
    for name, value in rows:
        out.print(f"  {name:<9} {escape(str(value))}", highlight=False)
    if prefs is not None:
        _prefs_table(prefs)


def _prefs_table(prefs: list[dict[str, Any]]) -> None:
    if not prefs:
        out.print("  no preferences of their own: the project's defaults apply")
        return
    t = table("topic", "channel", "on", "set by", "when")
    for p in prefs:
        t.add_row(p["topic"] or "*", p["channel"] or "*", "on" if p["enabled"] else "off", p["updated_by"] or "",
                  _when(p["updated_at"]))
    out.print(t)


# -- recipients ------------------------------------------------------------------------------------
@recipient_app.command("add")
@handled
def recipient_add(
    name: NameArg, project: ProjectOpt = "default", display_name: DisplayOpt = None, email: EmailOpt = None,
    slack_user: SlackOpt = None, teams: TeamsOpt = None, timezone: ZoneOpt = None, user: UserOpt = None,
    quiet_hours: QuietOpt = None, config: ConfigOpt = None, as_json: JsonOpt = False,
) -> None:
    """Add a recipient to a project, with their addresses."""
    from ..recipients.store import create_recipient

    plain(name, "the name")
    values = _values(display_name, email, slack_user, teams, timezone, user, quiet_hours)

    async def _add(hub: Hub, conn: Conn) -> dict[str, Any]:
        return await create_recipient(conn, project, name, values, actor=cli_actor(), vault=hub.vault)

    made = _on(config, project, _add, write=True, secret="teams" in values)
    emit(made, as_json, f"added recipient {made['name']} to {project} (version {made['version']})")


@recipient_app.command("list")
@handled
def recipient_list(project: ProjectOpt = "default", config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """The recipients of a project."""
    from ..recipients.store import list_recipients

    async def _list(_: Hub, conn: Conn) -> list[dict[str, Any]]:
        return await list_recipients(conn, project)

    items = _on(config, project, _list)

    def human() -> None:
        t = table("name", "display name", "email", "slack", "teams", "timezone", "user")
        for r in items:
            t.add_row(r["name"], r["display_name"], r["email"] or "", r["slack_user"] or "", "yes" if r["teams"] else "",
                      r["timezone"], r["user"] or "")
        out.print(t)

    emit(items, as_json, human)


@recipient_app.command("show")
@handled
def recipient_show(name: NameArg, project: ProjectOpt = "default", config: ConfigOpt = None,
                   as_json: JsonOpt = False) -> None:
    """One recipient, with their preferences."""
    from ..recipients.prefs import list_preferences
    from ..recipients.store import require_recipient

    async def _show_one(_: Hub, conn: Conn) -> dict[str, Any]:
        r = await require_recipient(conn, project, name)
        return {**r, "preferences": await list_preferences(conn, r["id"])}

    found = _on(config, project, _show_one)
    emit(found, as_json, lambda: _show(found, found["preferences"]))


@recipient_app.command("edit")
@handled
def recipient_edit(
    name: NameArg, project: ProjectOpt = "default", display_name: DisplayOpt = None, email: EmailOpt = None,
    slack_user: SlackOpt = None, teams: TeamsOpt = None, timezone: ZoneOpt = None, user: UserOpt = None,
    quiet_hours: QuietOpt = None,
    clear: Annotated[list[str] | None, typer.Option(
        "--clear", help="remove a field: email, slack_user, teams, user, quiet_hours (repeat for more)")] = None,
    if_version: VersionOpt = None, config: ConfigOpt = None, as_json: JsonOpt = False,
) -> None:
    """Change a recipient's fields (the name stays)."""
    from ..recipients.store import update_recipient

    values = _values(display_name, email, slack_user, teams, timezone, user, quiet_hours)
    for field in clear or []:
        if field not in ("email", "slack_user", "teams", "user", "quiet_hours"):
            raise ValueError(f"--clear {field}: one of email, slack_user, teams, user, quiet_hours")
        values[field] = None
    if not values:
        raise ValueError("nothing to change: give --email, --timezone, --clear ...")

    async def _edit(hub: Hub, conn: Conn) -> dict[str, Any]:
        return await update_recipient(conn, project, name, values, actor=cli_actor(), vault=hub.vault,
                                      expect_version=if_version)

    changed = _on(config, project, _edit, write=True, secret="teams" in values)
    emit(changed, as_json, f"recipient {changed['name']} is at version {changed['version']}")


@recipient_app.command("remove")
@handled
def recipient_remove(name: NameArg, project: ProjectOpt = "default", if_version: VersionOpt = None,
                     config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Remove a recipient, their preferences and group memberships."""
    from ..recipients.store import delete_recipient

    async def _remove(hub: Hub, conn: Conn) -> None:
        await delete_recipient(conn, project, name, actor=cli_actor(), vault=hub.vault, expect_version=if_version)

    _on(config, project, _remove, write=True, secret=True)
    emit({"name": name, "project": project, "removed": True}, as_json, f"removed recipient {name} from {project}")


# -- preferences -----------------------------------------------------------------------------------
@recipient_app.command("prefs")
@handled
def recipient_prefs(name: NameArg, project: ProjectOpt = "default", config: ConfigOpt = None,
                    as_json: JsonOpt = False) -> None:
    """A recipient's own preferences (what is not listed: the project's defaults)."""
    from ..recipients.prefs import list_preferences
    from ..recipients.store import require_recipient

    async def _prefs(_: Hub, conn: Conn) -> list[dict[str, Any]]:
        return await list_preferences(conn, (await require_recipient(conn, project, name))["id"])

    items = _on(config, project, _prefs)
    emit(items, as_json, lambda: _prefs_table(items))


@recipient_app.command("pref")
@handled
def recipient_pref(
    name: NameArg,
    topic: Annotated[str, typer.Argument(help="a topic, or * for any")],
    channel: Annotated[str, typer.Argument(help="an integration's name, or * for any")],
    state: Annotated[str, typer.Argument(help="on, off, or unset (the next level decides)")],
    project: ProjectOpt = "default", config: ConfigOpt = None, as_json: JsonOpt = False,
) -> None:
    """Turn a topic on a channel on or off for a recipient, or unset their choice."""
    from ..errors import TidingsError
    from ..recipients.prefs import set_preference, unset_preference
    from ..recipients.store import require_recipient

    if state not in ("on", "off", "unset"):
        raise ValueError(f"{state!r}: say on, off or unset")
    topic_, channel_ = ("" if topic in ANY else topic), ("" if channel in ANY else channel)

    async def _pref(hub: Hub, conn: Conn) -> dict[str, Any]:
        r = await require_recipient(conn, project, name)
        if state == "unset":
            if not await unset_preference(conn, r, topic_, channel_, actor=cli_actor()):
                raise TidingsError(f"{name} has no preference for topic {topic} on channel {channel}")
            return {"topic": topic_, "channel": channel_, "unset": True}
        return await set_preference(conn, r, topic_, channel_, state == "on", actor=cli_actor(),
                                    settings=hub.config.projects.get(project))

    done = _on(config, project, _pref, write=True)
    emit(done, as_json, f"{name}: topic {topic_ or '*'} on {channel_ or '*'} is {state}")


# -- groups ----------------------------------------------------------------------------------------
@group_app.command("add")
@handled
def group_add(
    name: GroupArg,
    members: Annotated[list[str] | None, typer.Argument(help="recipient names, in order")] = None,
    description: Annotated[str | None, typer.Option("--description", "-d", help="what the group is for")] = None,
    project: ProjectOpt = "default", config: ConfigOpt = None, as_json: JsonOpt = False,
) -> None:
    """Create a group of recipients."""
    from ..recipients.store import create_group

    for text in [name, *(members or []), *([description] if description else [])]:
        plain(text, "a name")

    async def _add(_: Hub, conn: Conn) -> dict[str, Any]:
        return await create_group(conn, project, name, members=list(members or []), description=description,
                                  actor=cli_actor())

    made = _on(config, project, _add, write=True)
    emit(made, as_json, f"added group {name} to {project}: {', '.join(made['members']) or 'no members yet'}")


@group_app.command("members")
@handled
def group_members(
    name: GroupArg,
    members: Annotated[list[str] | None, typer.Argument(help="the new members, in order (none: empty it)")] = None,
    project: ProjectOpt = "default", config: ConfigOpt = None, as_json: JsonOpt = False,
) -> None:
    """Set a group's members (in this order)."""
    from ..recipients.store import set_group_members

    for text in members or []:
        plain(text, "a name")

    async def _set(_: Hub, conn: Conn) -> dict[str, Any]:
        return await set_group_members(conn, project, name, list(members or []), actor=cli_actor())

    done = _on(config, project, _set, write=True)
    emit(done, as_json, f"group {name}: {', '.join(done['members']) or 'no members'}")


@group_app.command("remove")
@handled
def group_remove(name: GroupArg, project: ProjectOpt = "default", config: ConfigOpt = None,
                 as_json: JsonOpt = False) -> None:
    """Remove a group (its recipients stay)."""
    from ..recipients.store import delete_group

    async def _remove(_: Hub, conn: Conn) -> None:
        await delete_group(conn, project, name, actor=cli_actor())

    _on(config, project, _remove, write=True)
    emit({"name": name, "project": project, "removed": True}, as_json, f"removed group {name} from {project}")


@group_app.command("list")
@handled
def group_list(project: ProjectOpt = "default", config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """The groups of a project, with their members."""
    from ..recipients.store import list_groups

    async def _list(_: Hub, conn: Conn) -> list[dict[str, Any]]:
        return await list_groups(conn, project)

    items = _on(config, project, _list)

    def human() -> None:
        t = table("name", "members", "description")
        for g in items:
            t.add_row(g["name"], ", ".join(g["members"]), g["description"] or "")
        out.print(t)

    emit(items, as_json, human)
