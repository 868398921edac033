"""Which configuration and which database a command uses: a relative SQLite path is taken from
the config file's directory (not the working directory), commands that read never create a
database, and ``-c`` given to a command group (or to tidings itself) reaches its subcommands."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_support import Project, tidings

from tidings.config import load_config, parse_config


def elsewhere(tmp_path: Path) -> Path:
    other = tmp_path / "elsewhere"
    other.mkdir()
    return other


# -- 1. relative SQLite paths ----------------------------------------------------------------------
def test_a_relative_sqlite_path_is_read_from_the_config_files_directory(project: Project, tmp_path: Path) -> None:
    other = elsewhere(tmp_path)
    config = str(project.path / "tidings.yaml")
    tokens = tidings(other, "token", "list", "-c", config, "--json").ok().json
    assert [t["name"] for t in tokens] == ["admin"], "the project's database, not a new empty one"
    inbox = tidings(other, "inbox", "-c", config, "--json").ok().json
    assert inbox["items"][0]["message"]["title"] == "Welcome to tidings"
    assert list(other.iterdir()) == [], "nothing created in the working directory"


def test_a_command_that_reads_never_creates_a_database(tmp_path: Path) -> None:
    for args in (["token", "list"], ["deliveries"], ["inbox"], ["secret", "list"], ["integrations"], ["events"],
                 ["silences"], ["retry", "0123"], ["db", "prune"]):
        ran = tidings(tmp_path, *args)
        ran.one_line_error(f"no database at {tmp_path / 'tidings.db'}", "tidings init", "tidings db upgrade", code=1)
    assert list(tmp_path.iterdir()) == []
    # Commands that write may create it.
    assert tidings(tmp_path, "db", "upgrade").ok()
    assert (tmp_path / "tidings.db").exists()
    assert tidings(tmp_path, "token", "list", "--json").ok().json == []


def test_the_config_loader_anchors_relative_sqlite_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "tidings.yaml").write_text("server:\n  database: sqlite:///data/t.db\n")
    monkeypatch.chdir(elsewhere(tmp_path))
    monkeypatch.delenv("TIDINGS_DATABASE_URL", raising=False)
    assert load_config(project / "tidings.yaml").server.database == f"sqlite:///{project / 'data' / 't.db'}"
    # Absolute paths, PostgreSQL URLs and the environment's URL are left as written.
    absolute = f"sqlite:///{tmp_path / 'abs.db'}"
    assert parse_config({"server": {"database": absolute}}, base_dir=project).server.database == absolute
    pg = "postgresql://u@127.0.0.1/db"
    assert parse_config({"server": {"database": pg}}, base_dir=project).server.database == pg
    env = {"TIDINGS_DATABASE_URL": "sqlite:///rel.db"}
    assert parse_config({}, base_dir=project, env=env).server.database == "sqlite:///rel.db"
    # The default (no file) is the working directory's tidings.db, made absolute.
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.chdir(empty)
    assert load_config().server.database == f"sqlite:///{empty / 'tidings.db'}"


# -- 2. -c on a command group ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "args",
    [
        ["silences", "-c", "{config}", "list", "--json"],
        ["token", "-c", "{config}", "list", "--json"],
        ["secret", "-c", "{config}", "list", "--json"],
        ["integrations", "-c", "{config}", "list", "--json"],
        ["deliveries", "-c", "{config}", "list", "--json"],
        ["-c", "{config}", "inbox", "--json"],
        ["-c", "{config}", "token", "list", "--json"],
    ],
    ids=lambda a: " ".join(a[:3]),
)
def test_config_given_to_a_group_or_to_tidings_reaches_the_subcommand(project: Project, tmp_path: Path,
                                                                         args: list[str]) -> None:
    other = elsewhere(tmp_path)
    config = str(project.path / "tidings.yaml")
    tidings(other, *[a.format(config=config) for a in args]).ok()
    assert list(other.iterdir()) == []


def test_a_silence_added_with_the_groups_config_lands_in_that_project(project: Project, tmp_path: Path) -> None:
    other = elsewhere(tmp_path)
    config = str(project.path / "tidings.yaml")
    made = tidings(other, "silences", "-c", config, "add", "service=api", "--for", "1h", "--json").ok().json
    listed = tidings(project.path, "silences", "--json").ok().json
    assert [s["id"] for s in listed] == [made["id"]]


def test_the_subcommands_own_config_wins(project: Project, tmp_path: Path) -> None:
    other = elsewhere(tmp_path)
    ran = tidings(other, "silences", "-c", str(project.path / "tidings.yaml"), "list", "-c", str(other / "nope.yaml"))
    ran.one_line_error("nope.yaml: no such file", code=2)
    ran = tidings(other, "-c", str(project.path / "tidings.yaml"), "token", "-c", str(other / "nope.yaml"), "list")
    ran.one_line_error("nope.yaml: no such file", code=2)
