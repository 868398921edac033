"""`tidings project`: create and list projects."""

from typing import Annotated, Any

import typer

from ._common import ConfigOpt, JsonOpt, _store, _when, cli_actor, emit, group, handled, out, plain, run, table

project_app = group("project", "Projects: integrations, routes, messages and members belong to one.")


@project_app.command("create")
@handled
def project_create(
    slug: Annotated[str, typer.Argument(help="lower-case letters, digits and '-' (used in API paths)")],
    name: Annotated[str | None, typer.Option("--name", help="display name (default: the slug)")] = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a project; add its owners with `tidings member add SLUG EMAIL --role owner`."""
    from ..accounts.projects import create_project

    plain(slug, "the project slug")
    if name is not None:
        plain(name, "--name")

    async def _create() -> dict[str, Any]:
        async with _store(config, create=True) as store, store.write() as conn:
            return await create_project(conn, cli_actor(), slug, name)

    project = run(_create())
    emit(project, as_json, f"created project {project['slug']}")


@project_app.command("list")
@handled
def project_list(config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Every project."""
    from ..accounts.projects import list_projects

    async def _list() -> list[dict[str, Any]]:
        async with _store(config) as store, store.read() as conn:
            return await list_projects(conn)

    items = run(_list())

    def human() -> None:
        t = table("slug", "name", "created")
        for p in items:
            t.add_row(p["slug"], p["name"], _when(p["created_at"]))
        out.print(t)

    emit(items, as_json, human)
