"""`tidings task`: a project's tasks (list, show, create, update, close), as the API has them.

Every change is audited as the person at the terminal (``cli:<login>``), then routed as a message
(``source: tasks``) like a change through the API; a running server delivers it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ._common import ConfigOpt, JsonOpt, _on_hub, _when, cli_actor, emit, group, handled, out, plain, table

if TYPE_CHECKING:
    from ..hub import Hub
    from ..sync.tasks import TaskChange

task_app = group("task", "A project's tasks: list, show, create, update, close.")
ProjectOpt = Annotated[str, typer.Option("--project", "-p", help="the project's slug")]
KeyArg = Annotated[str, typer.Argument(help="T-12, 12 or the task's id")]
StatusOpt = Annotated[str | None, typer.Option(
    help="a category (todo, in_progress, done) or the project's name for a status ('In Review')")]
CategoryOpt = Annotated[str | None, typer.Option(help="what --status means, for a name the project doesn't use yet")]
PriorityOpt = Annotated[str | None, typer.Option(help="critical, high, medium, low or info")]
AssigneeOpt = Annotated[str | None, typer.Option(help="a project member's email, or github:LOGIN, jira:ACCOUNT...")]
DescriptionOpt = Annotated[str | None, typer.Option("--description", "-d", help="Markdown")]
DueOpt = Annotated[str | None, typer.Option(help="YYYY-MM-DD")]
LabelOpt = Annotated[list[str] | None, typer.Option("--label", "-l", help="a label (repeat for more)")]
COLOURS = {"todo": "yellow", "in_progress": "cyan", "done": "green"}


async def _project(hub: Hub, project: str) -> None:
    from ..errors import TidingsError

    if not await hub.project_exists(project):
        raise TidingsError(f"no project {project!r}; `tidings project list` shows them")


async def _find(conn: Any, project: str, key: str) -> dict[str, Any]:
    from ..errors import TidingsError
    from ..sync.tasks import get_task

    task = await get_task(conn, project, key)
    if task is None:
        raise TidingsError(f"no task {key!r} in project {project}")
    return task


def _change(config: Path | None, project: str, make: Any) -> dict[str, Any]:
    """``make(conn, actor)`` -> a change, committed; then routed; the task as it is now, with its links."""
    from ..sync.events import after_commit
    from ..sync.tasks import task_view

    async def _run(hub: Hub) -> dict[str, Any]:
        await _project(hub, project)
        async with hub.require_store().write() as conn:
            change, task = await make(conn, cli_actor())
            view = await task_view(conn, change.task if change is not None else task)
        await after_commit(hub, change)
        return view

    return _on_hub(config, _run)  # type: ignore[no-any-return]


def _values(title: str | None = None, description: str | None = None, status: str | None = None,
            category: str | None = None, priority: str | None = None, assignee: str | None = None,
            labels: list[str] | None = None, due: str | None = None) -> dict[str, Any]:
    from ..sync.tasks import input_values

    given = {"title": title, "description": description, "status": status, "category": category,
             "priority": priority, "assignee": assignee, "labels": labels, "due": due}
    for name, value in given.items():
        for text in value if isinstance(value, list) else [value]:
            if isinstance(text, str) and name != "description":
                plain(text, name)
    return input_values({k: v for k, v in given.items() if v is not None})


def _status(task: dict[str, Any]) -> str:
    colour = COLOURS.get(task["category"], "")
    return f"[{colour}]{task['status']}[/{colour}]" if colour else task["status"]


def _show(task: dict[str, Any]) -> None:
    from rich.markup import escape

    out.print(f"[bold]{task['key']}[/bold] {escape(task['title'])}", highlight=False)
    rows = [("status", f"{_status({**task, 'status': escape(task['status'])})} ({task['category']})"),
            ("priority", task["priority"]), ("assignee", escape(task["assignee"] or "—")),
            ("labels", escape(", ".join(task["labels"]) or "—")), ("due", task["due"] or "—"),
            ("version", str(task["version"])), ("created", f"{_when(task['created_at'])} by "
                                                           f"{escape(task['created_by'] or '?')}"),
            ("updated", _when(task["updated_at"])), ("id", task["id"])]
    for link in task.get("links", []):
        rows.append((f"link {escape(link['integration'])}", escape(
            f"{link['remote_key'] or '?'} ({link['state']}) {link['remote_url'] or ''}".strip())))
    if task.get("conflicts"):
        rows.append(("conflicts", f"[red]{task['conflicts']} waiting[/red] (tidings sync conflicts)"))
    for name, value in rows:
        out.print(f"  {name:<10} {value}", highlight=False)
    if task["description"]:
        out.print("")
        out.print(escape(task["description"]), highlight=False)


def _done(what: str, task: dict[str, Any]) -> str:
    return f"{what} {task['key']} ({task['status']}, version {task['version']}): {task['title']}"


@task_app.command("list")
@handled
def task_list(
    project: ProjectOpt = "default",
    status: Annotated[str | None, typer.Option(help="todo, in_progress, done, or open (not done)")] = None,
    assignee: Annotated[str | None, typer.Option(help="exactly this assignee")] = None,
    label: Annotated[str | None, typer.Option(help="tasks with this label")] = None,
    search: Annotated[str | None, typer.Option("--search", "-q", help="text in the title")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 50,
    before: Annotated[int | None, typer.Option(min=1, help="next page: the number printed after the table")] = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The project's tasks, newest first."""
    from rich.markup import escape

    from ..sync.tasks import list_tasks

    for text in (project, assignee, label, search):
        if text is not None:
            plain(text, "an option")

    async def _list(hub: Hub) -> dict[str, Any]:
        await _project(hub, project)
        async with hub.require_store().read() as conn:
            return await list_tasks(conn, project, status=status, assignee=assignee, label=label, q=search,
                                    limit=limit, before=before)

    page = _on_hub(config, _list)

    def human() -> None:
        t = table("key", "status", "priority", "assignee", "due", "labels", "title", ids=())
        for task in page["items"]:
            t.add_row(task["key"], _status({**task, "status": escape(task["status"])}), task["priority"],
                      escape(task["assignee"] or ""), task["due"] or "", escape(", ".join(task["labels"])),
                      escape(task["title"]))
        out.print(t)
        if page["next"]:
            out.print(f"more: --before {page['next']}", highlight=False)

    emit(page, as_json, human)


@task_app.command("show")
@handled
def task_show(key: KeyArg, project: ProjectOpt = "default", config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """One task, with its items in trackers and its waiting sync conflicts."""
    from ..sync.tasks import task_view

    plain(key, "the key")

    async def _get(hub: Hub) -> dict[str, Any]:
        await _project(hub, project)
        async with hub.require_store().read() as conn:
            return await task_view(conn, await _find(conn, project, key))

    task = _on_hub(config, _get)
    emit(task, as_json, lambda: _show(task))


@task_app.command("create")
@handled
def task_create(
    title: Annotated[str, typer.Argument(help="one line")],
    project: ProjectOpt = "default",
    description: DescriptionOpt = None,
    status: StatusOpt = None,
    category: CategoryOpt = None,
    priority: PriorityOpt = None,
    assignee: AssigneeOpt = None,
    label: LabelOpt = None,
    due: DueOpt = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a task (numbered T-1, T-2... per project)."""
    from ..sync.tasks import create_task

    values = _values(title, description, status, category, priority, assignee, label, due)

    async def make(conn: Any, actor: Any) -> tuple[TaskChange, None]:
        return await create_task(conn, project, values, actor=actor), None

    task = _change(config, project, make)
    emit(task, as_json, _done("created", task))


@task_app.command("update")
@handled
def task_update(
    key: KeyArg,
    project: ProjectOpt = "default",
    title: Annotated[str | None, typer.Option(help="a new title")] = None,
    description: DescriptionOpt = None,
    status: StatusOpt = None,
    category: CategoryOpt = None,
    priority: PriorityOpt = None,
    assignee: AssigneeOpt = None,
    unassign: Annotated[bool, typer.Option("--unassign", help="nobody is assigned")] = False,
    label: Annotated[list[str] | None, typer.Option("--label", "-l", help="the labels: replaces them all (repeat)")] = None,
    add_label: Annotated[list[str] | None, typer.Option("--add-label", help="add a label (repeat)")] = None,
    remove_label: Annotated[list[str] | None, typer.Option("--remove-label", help="remove a label (repeat)")] = None,
    due: DueOpt = None,
    no_due: Annotated[bool, typer.Option("--no-due", help="no due date")] = False,
    if_version: Annotated[int | None, typer.Option(
        "--if-version", min=1, help="only if the task is still at this version (as shown)")] = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Change a task: only the fields given."""
    from ..sync.tasks import update_task

    if unassign and assignee is not None:
        raise ValueError("give --assignee or --unassign, not both")
    if no_due and due is not None:
        raise ValueError("give --due or --no-due, not both")
    if label is not None and (add_label or remove_label):
        raise ValueError("give --label (all of them) or --add-label/--remove-label, not both")
    values = _values(title, description, status, category, priority, assignee, label, due)
    values |= {"assignee": None} if unassign else {}
    values |= {"due": None} if no_due else {}
    for text in (*(add_label or ()), *(remove_label or ())):
        plain(text, "a label")

    async def make(conn: Any, actor: Any) -> tuple[TaskChange | None, dict[str, Any]]:
        task = await _find(conn, project, key)
        if add_label or remove_label:
            values["labels"] = sorted((set(task["labels"]) | set(add_label or ())) - set(remove_label or ()))
        return await update_task(conn, task, values, actor=actor, expect_version=if_version), task

    if not values and not add_label and not remove_label:
        raise ValueError("nothing to change: give --title, --status, --assignee... (see --help)")
    task = _change(config, project, make)
    emit(task, as_json, _done("updated", task))


@task_app.command("close")
@handled
def task_close(key: KeyArg, project: ProjectOpt = "default", config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Mark a task done."""
    from ..sync.tasks import update_task

    plain(key, "the key")

    async def make(conn: Any, actor: Any) -> tuple[TaskChange | None, dict[str, Any]]:
        task = await _find(conn, project, key)
        return await update_task(conn, task, {"status": "done"}, actor=actor), task

    task = _change(config, project, make)
    emit(task, as_json, _done("closed", task))
