"""`tidings task list|show|create|update|close`, in-process (typer's runner): each change audited
as the person at the terminal and routed as a message; clear one-line errors. On SQLite (and
the whole round once on PostgreSQL)."""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Any

import pytest
import yaml
from cli_support import Ran, in_process, on_store
from people import person

from tidings.audit.verify import read_entries
from tidings.store.engine import Store
from tidings.store.tables import messages

WHO = f"cli:{getpass.getuser()}"
CONFIG: dict[str, Any] = {
    "integrations": {"inbox": {"kind": "inbox"}, "alpha-inbox": {"kind": "inbox", "project": "alpha"}},
    "routes": [{"project": "alpha", "match": {"source": "tasks"}, "to": ["alpha-inbox"]}],
    "default": {"to": ["inbox"]},
}


class Site:
    def __init__(self, path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
        self.path, self.db_url, self.monkeypatch = path, db_url, monkeypatch
        (path / "tidings.yaml").write_text(yaml.safe_dump({"server": {"database": db_url}, **CONFIG}))

    def run(self, *args: str) -> Ran:
        return in_process(self.path, self.monkeypatch, *args)

    def json(self, *args: str) -> Any:
        return self.run(*args, "--json").ok().json

    def on_store(self, call: Any) -> Any:
        return on_store(self.db_url, call)


@pytest.fixture
def site(tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch) -> Site:
    s = Site(tmp_path, db_url, monkeypatch)
    s.run("db", "upgrade").ok()
    s.run("integrations", "list").ok()  # starts a hub once: projects alpha and default exist
    s.on_store(lambda store: person(store, "ann@example.com", {"alpha": "member"}))
    return s


def test_tasks_made_listed_shown_changed_and_closed(site: Site) -> None:
    made = site.json("task", "create", "Ship the release", "-p", "alpha", "-d", "**soon**", "--status", "In Review",
                     "--priority", "high", "--assignee", "ann@example.com", "-l", "release", "-l", "ops",
                     "--due", "2030-06-30")
    assert (made["key"], made["status"], made["category"], made["labels"], made["created_by"]) == (
        "T-1", "In Review", "in_progress", ["ops", "release"], WHO)
    site.json("task", "create", "Write docs", "-p", "alpha", "--assignee", "github:octocat")
    listed = site.json("task", "list", "-p", "alpha")
    assert [t["key"] for t in listed["items"]] == ["T-2", "T-1"] and listed["next"] is None
    assert [t["key"] for t in site.json("task", "list", "-p", "alpha", "--status", "in_progress")["items"]] == ["T-1"]
    assert [t["key"] for t in site.json("task", "list", "-p", "alpha", "-q", "DOCS")["items"]] == ["T-2"]
    table = site.run("task", "list", "-p", "alpha", "--limit", "1").ok().out
    assert "T-2" in table and "Write docs" in table and "github:octocat" in table and "more: --before 2" in table
    shown = site.run("task", "show", "T-1", "-p", "alpha").ok().out
    assert "Ship the release" in shown and "In Review (in_progress)" in shown and "**soon**" in shown
    assert site.json("task", "show", "1", "-p", "alpha")["links"] == []
    # Changes: only what is given; labels added and removed; a stale version refused.
    changed = site.json("task", "update", "T-1", "-p", "alpha", "--unassign", "--add-label", "urgent",
                        "--remove-label", "ops", "--no-due", "--if-version", "1")
    assert (changed["assignee"], changed["labels"], changed["due"], changed["version"]) == (
        None, ["release", "urgent"], None, 2)
    site.run("task", "update", "T-1", "-p", "alpha", "--title", "x", "--if-version", "1").one_line_error(
        "changed meanwhile", "version 2")
    assert site.run("task", "close", "T-1", "-p", "alpha").ok().out.startswith("closed T-1 (done, version 3)")
    assert site.json("task", "close", "T-1", "-p", "alpha")["version"] == 3  # closed already: nothing changes
    # Each change audited as the person at the terminal, and routed as a message of the project.
    entries = [e for e in site.on_store(read_entries) if e["action"].startswith("task.")]
    assert [(e["action"], e["target"], e["actor_name"], e["auth_method"]) for e in entries] == [
        ("task.create", "T-1", WHO, "cli"), ("task.create", "T-2", WHO, "cli"), ("task.update", "T-1", WHO, "cli"),
        ("task.update", "T-1", WHO, "cli")]

    async def titles(store: Store) -> list[tuple[str, str]]:
        from sqlalchemy import select

        async with store.read() as conn:
            rows = (await conn.execute(select(messages.c.project, messages.c.data).order_by(messages.c.id))).all()
        return [(r.project, r.data["title"]) for r in rows]

    assert site.on_store(titles) == [("alpha", "T-1 created: Ship the release"), ("alpha", "T-2 created: Write docs"),
                                     ("alpha", "T-1 updated: Ship the release"), ("alpha", "T-1 updated: Ship the release")]


@pytest.mark.parametrize("db", ["sqlite"])
def test_bad_input_is_one_clear_line(site: Site) -> None:
    site.json("task", "create", "first")  # the project default
    for args, fragments in (
        (("task", "show", "T-9"), ("no task 'T-9' in project default",)),
        (("task", "list", "-p", "nope"), ("no project 'nope'",)),
        (("task", "create", "x", "--status", "Parked"), ("'Parked' is not a status project default knows",)),
        (("task", "create", "x", "--assignee", "bob@example.com"), ("no tidings user 'bob@example.com'",)),
        (("task", "create", "x", "-p", "alpha", "--assignee", "octocat"), ("assignee",)),
        (("task", "create", "x", "--due", "tomorrow"), ("due: 'tomorrow' is not a date",)),
        (("task", "create", "a\x01b"), ("title must not contain control characters",)),
        (("task", "update", "T-1"), ("nothing to change",)),
        (("task", "update", "T-1", "--due", "2030-01-01", "--no-due"), ("--due or --no-due",)),
        (("task", "list", "--status", "closed"), ("status: one of todo, in_progress, done, open",)),
    ):
        site.run(*args).one_line_error(*fragments)
    assert [t["title"] for t in site.json("task", "list")["items"]] == ["first"]
