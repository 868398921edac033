"""What users expect of every command: --json wherever something is printed, `list` subcommands,
--version, help without typer's type noise, ids by a unique prefix, whole ids in tables,
`deliveries show`, bulk retry, output to a pipe not wrapped, a spinner while `send` waits."""

from __future__ import annotations

import os
import pty
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
import yaml
from cli_support import TIDINGS, Project, cli_env, db_rows, in_process, tidings, with_dead_end

from tidings import __version__


def dead_delivery(project: Project, title: str = "doomed") -> dict[str, object]:
    sent = tidings(project.path, "send", "--to", "down", "--title", title, "--json")
    assert sent.code == 1
    [d] = sent.json["deliveries"]
    assert d["status"] == "dead"
    return d  # type: ignore[no-any-return]


# -- --json everywhere ---------------------------------------------------------------------------------
def test_json_on_every_command_that_prints(project: Project) -> None:
    p = project.path
    created = tidings(p, "token", "create", "--name", "ci", "--json").ok().json
    assert created["name"] == "ci" and created["token"].startswith("tdg_")
    assert tidings(p, "secret", "set", "S1", "--value", "v-123456", "--json").ok().json == {"stored": "S1", "created": True}
    assert [s["name"] for s in tidings(p, "secret", "list", "--json").ok().json] == ["S1"]
    assert tidings(p, "secret", "show", "S1", "--json").ok().json["masked"] == "…"
    assert tidings(p, "secret", "rotate", "S1", "--value", "v-654321", "--json").ok().json == {"rotated": "S1",
                                                                                              "references": []}
    assert tidings(p, "secret", "delete", "S1", "--json").ok().json == {"deleted": "S1", "purged": True, "references": []}
    validated = tidings(p, "config", "validate", "--json").ok().json
    assert validated == {"file": "tidings.yaml", "ok": True, "integrations": 1, "routes": 0, "revision": 1,
                         "imported": 1, "file_changed": False}
    rotated = tidings(p, "keys", "rotate", "--json").ok().json
    assert rotated == {"re_encrypted": 0, "key_file": str(p / "tidings.key")}
    assert tidings(p, "integrations", "disable", "inbox", "--json").ok().json == {"integration": "inbox", "enabled": False}
    assert tidings(p, "integrations", "enable", "inbox", "--json").ok().json == {"integration": "inbox", "enabled": True}
    made = tidings(p, "silences", "add", "service=api", "--for", "1h", "--json").ok().json
    ended = tidings(p, "silences", "end", made["id"], "--json").ok().json
    assert ended["id"] == made["id"] and ended["matchers"] == {"service": "api"}
    assert tidings(p, "version", "--json").ok().json == {"version": __version__}
    assert tidings(p, "db", "upgrade", "--json").ok().json["revision"]


def test_config_validate_json_lists_the_problems(project: Project) -> None:
    (project.path / "tidings.yaml").write_text("routes:\n  - to: [slak]\n")
    ran = tidings(project.path, "config", "validate", "--json")
    assert ran.code == 2 and ran.err == ""
    assert ran.json["ok"] is False
    assert ran.json["problems"] == ["routes[0].to[0]: unknown integration 'slak'"]


# -- list subcommands, --version -------------------------------------------------------------------------
def test_list_subcommands_and_the_bare_group_forms_agree(project: Project) -> None:
    p = project.path
    tidings(p, "silences", "add", "service=api", "--for", "1h").ok()
    for group in ("integrations", "silences", "events", "deliveries"):
        bare = tidings(p, group, "--json").ok().json
        listed = tidings(p, group, "list", "--json").ok().json
        assert bare == listed, group
    assert len(tidings(p, "silences", "list", "--json").ok().json) == 1
    assert [i["name"] for i in tidings(p, "integrations", "list", "--json").ok().json] == ["inbox"]


def test_version_option_and_command(tmp_path: Path) -> None:
    assert tidings(tmp_path, "--version").ok().out.strip() == __version__
    assert tidings(tmp_path, "version").ok().out.strip() == __version__
    assert list(tmp_path.iterdir()) == []


# -- help ------------------------------------------------------------------------------------------
def command_paths() -> Iterator[list[str]]:
    from tidings.cli import app

    def walk(command: object, path: list[str]) -> Iterator[list[str]]:
        yield path
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            yield from walk(sub, [*path, name])

    yield from walk(typer.main.get_command(app), [])


def test_help_of_every_command_shows_no_type_noise(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    paths = list(command_paths())
    assert ["deliveries", "show"] in paths and ["integrations", "list"] in paths and ["silences", "list"] in paths
    for path in paths:
        ran = in_process(tmp_path, monkeypatch, *path, "--help").ok()
        for noise in ("<bool>", "<list", "<str>", "<int>", "<float>", "<path>", "<Path>"):
            assert noise not in ran.out, (path, noise, ran.out)
        assert "Usage: " in ran.out


# -- ids by prefix, whole ids in tables, deliveries show -----------------------------------------------------
def test_ids_by_a_unique_prefix(project: Project) -> None:
    p = project.path
    with_dead_end(project)
    d = dead_delivery(project)
    prefix = str(d["id"])[:-6]
    shown = tidings(p, "deliveries", "show", prefix, "--json").ok().json
    assert shown["id"] == d["id"]
    again = tidings(p, "retry", prefix, "--json").ok().json
    assert again["id"] == d["id"] and again["status"] == "pending"
    message = tidings(p, "messages", "show", str(d["message_id"])[:-4], "--json").ok().json
    assert message["id"] == d["message_id"] and message["title"] == "doomed"
    made = tidings(p, "silences", "add", "service=api", "--for", "1h", "--json").ok().json
    assert tidings(p, "silences", "end", made["id"][:-5], "--json").ok().json["id"] == made["id"]
    [token] = tidings(p, "token", "list", "--json").ok().json
    assert tidings(p, "token", "revoke", token["id"][:-3], "--json").ok().json == {"revoked": 1}


def test_an_ambiguous_prefix_lists_the_candidates(project: Project) -> None:
    p = project.path
    for i in range(2):
        tidings(p, "send", "--title", f"m{i}", "--no-wait").ok()
    ids = [r[0] for r in db_rows(p, "SELECT id FROM deliveries ORDER BY id")]
    common = os.path.commonprefix(ids)
    line = tidings(p, "deliveries", "show", common).one_line_error("ambiguous", code=1)
    for i in ids:
        assert i in line
    tidings(p, "deliveries", "show", "zz").one_line_error("no delivery zz", code=1)
    tidings(p, "retry", "%").one_line_error("no delivery %", code=1)


def test_tables_never_cut_ids(project: Project) -> None:
    p = project.path
    with_dead_end(project)
    d = dead_delivery(project, title="a long title " * 5)
    deliveries = [r[0] for r in db_rows(p, "SELECT id FROM deliveries")]
    [token] = [r[0] for r in db_rows(p, "SELECT id FROM api_tokens")]
    for args, ids in ((["deliveries"], deliveries), (["messages", "show", str(d["message_id"])], [d["id"]]),
                      (["token", "list"], [token])):
        out = tidings(p, *args, COLUMNS="60").ok().out
        for i in ids:
            assert i in out, (args, i, out)


def test_deliveries_show(project: Project) -> None:
    p = project.path
    with_dead_end(project)
    d = dead_delivery(project)
    shown = tidings(p, "deliveries", "show", str(d["id"]), "--json").ok().json
    assert shown["status"] == "dead" and shown["attempts"] == 1 and shown["integration"] == "down"
    assert shown["last_error"].startswith("gave up after 1 attempts")
    assert shown["message"]["title"] == "doomed" and shown["message"]["id"] == d["message_id"]
    text = tidings(p, "deliveries", "show", str(d["id"])).ok().out
    for fragment in (str(d["id"]), "dead", "attempts:", "gave up after 1 attempts", "doomed", str(d["message_id"])):
        assert fragment in text, fragment
    [(delivered_id,)] = db_rows(p, "SELECT id FROM deliveries WHERE status = 'delivered'")
    assert "remote id:    inbox:" in tidings(p, "deliveries", "show", delivered_id).ok().out


# -- bulk retry ---------------------------------------------------------------------------------------
def test_bulk_retry(project: Project) -> None:
    p = project.path
    with_dead_end(project)
    dead = sorted(str(dead_delivery(project, f"d{i}")["id"]) for i in range(2))
    ran = tidings(p, "retry", "--integration", "down", "--status", "dead", "--since", "1h", "--json").ok()
    assert ran.json == {"retried": dead}
    rows = db_rows(p, "SELECT status, attempts FROM deliveries WHERE integration = 'down'")
    assert rows == [("pending", 0), ("pending", 0)]
    assert db_rows(p, "SELECT status FROM deliveries WHERE integration = 'inbox'") == [("delivered",)]
    assert tidings(p, "retry", "--integration", "down").ok().out.strip() == "retried 0 deliveries"


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        ([], "give a delivery id"),
        (["0123", "--status", "dead"], "not both"),
        (["--status", "delivered"], "'delivered'"),
        (["--since", "soon"], "invalid duration 'soon'"),
        (["--since", "0s"], "positive"),
    ],
)
def test_bulk_retry_bad_input(project: Project, args: list[str], fragment: str) -> None:
    tidings(project.path, "retry", *args).one_line_error(fragment, code=1)


# -- output to a pipe, the spinner -------------------------------------------------------------------
def test_output_to_a_pipe_is_not_wrapped(project: Project) -> None:
    p = project.path
    title = "T" + "x" * 150
    sent = tidings(p, "send", "--to", "inbox", "--title", title, "--json", COLUMNS=None).ok().json
    out = tidings(p, "deliveries", "show", sent["deliveries"][0]["id"], COLUMNS=None).ok().out
    assert any(line.endswith(title) for line in out.splitlines()), out
    table = tidings(p, "deliveries", COLUMNS=None).ok().out
    assert any(sent["deliveries"][0]["id"] in line and "T" + "x" * 39 in line for line in table.splitlines()), table


@pytest.mark.slow
def test_send_shows_a_spinner_on_a_terminal_while_it_waits(project: Project) -> None:
    """A peer that accepts the connection and never answers: `send --timeout 1` waits a second."""
    p = project.path
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        config = yaml.safe_load((p / "tidings.yaml").read_text())
        config["integrations"]["silent"] = {"kind": "webhook", "url": f"http://127.0.0.1:{silent.getsockname()[1]}/h",
                                            "allow_destinations": ["127.0.0.1"]}
        # the hub's stop gives the hanging send shutdown_timeout (10 s by default) before handing it back
        config.setdefault("dispatcher", {})["shutdown_timeout"] = 0.5
        (p / "tidings.yaml").write_text(yaml.safe_dump(config))
        master, slave = pty.openpty()
        env = cli_env(p)
        env.pop("NO_COLOR")
        proc = subprocess.run([str(TIDINGS), "send", "--to", "silent", "-t", "x", "--timeout", "1"], cwd=p, env=env,
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave, timeout=120)
        os.close(slave)
        seen = b""
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
        os.close(master)
        assert proc.returncode == 1
        assert b"waiting up to 1s for the outcomes" in seen, seen
        assert b"still has deliveries in flight" in seen
        # Not a terminal: no spinner, only the error.
        ran = tidings(p, "send", "--to", "silent", "-t", "x", "--timeout", "1")
        ran.one_line_error("still has deliveries in flight", code=1)
