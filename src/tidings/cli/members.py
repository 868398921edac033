"""`tidings member`: who belongs to a project, with which role."""

from typing import Annotated, Any

import typer

from ._common import ConfigOpt, JsonOpt, _store, _when, cli_actor, emit, group, handled, out, plain, run, table

member_app = group("member", "Members of a project and their roles (owner, member, viewer).")
ProjectArg = Annotated[str, typer.Argument(help="the project's slug")]
EmailArg = Annotated[str, typer.Argument(help="the user's email address (or id)")]


@member_app.command("add")
@handled
def member_add(
    project: ProjectArg,
    email: EmailArg,
    role: Annotated[str, typer.Option("--role", help="owner, member or viewer")],
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Add a user to a project, or change their role there (a project keeps at least one owner)."""
    from ..accounts.projects import set_member
    from ..accounts.roles import check_role

    plain(project, "the project")
    plain(email, "the email")
    check_role(role)

    async def _add() -> dict[str, Any]:
        async with _store(config) as store, store.write() as conn:
            return await set_member(conn, cli_actor(), project, email, role)

    member = run(_add())
    emit(member, as_json, f"{member['user']} is {member['role']} of {member['project']}")


@member_app.command("remove")
@handled
def member_remove(project: ProjectArg, email: EmailArg, config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Remove a user from a project (not its last owner)."""
    from ..accounts.projects import list_members, remove_member
    from ..accounts.users import AccountError, get_user

    plain(project, "the project")
    plain(email, "the email")

    async def _remove() -> str:
        async with _store(config) as store, store.write() as conn:
            await list_members(conn, project)  # an unknown project is named as such
            user = await get_user(conn, email)
            if user is None:
                raise AccountError(f"no user {email}")
            if not await remove_member(conn, cli_actor(), project, user.id):
                raise AccountError(f"{user.email} is not a member of {project}")
            return user.email

    who = run(_remove())
    emit({"project": project, "user": who, "removed": True}, as_json, f"removed {who} from {project}")


@member_app.command("list")
@handled
def member_list(project: ProjectArg, config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """The members of a project and their roles."""
    from ..accounts.projects import list_members

    plain(project, "the project")

    async def _list() -> list[dict[str, Any]]:
        async with _store(config) as store, store.read() as conn:
            return await list_members(conn, project)

    items = run(_list())

    def human() -> None:
        t = table("email", "name", "role", "since")
        for m in items:
            t.add_row(m["email"], m["name"], m["role"], _when(m["created_at"]))
        out.print(t)

    emit(items, as_json, human)
