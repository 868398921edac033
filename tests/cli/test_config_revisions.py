"""`tidings config history|show|diff|rollback|reload|export` and what `config validate` says about
revisions, in-process (typer's runner), on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import getpass
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from cli_support import Ran, in_process, whsec

from tidings.config import revisions
from tidings.store.engine import Store

SLACK_TOKEN = "xoxb-" + secrets.token_hex(12)
HOOK_SECRET = whsec()
WHO = f"cli:{getpass.getuser()}"


@dataclass
class Site:
    """A directory with tidings.yaml on the test's database, and the CLI run in it."""

    path: Path
    db_url: str
    monkeypatch: pytest.MonkeyPatch

    def write(self, data: dict[str, Any], name: str = "tidings.yaml", **server: Any) -> Path:
        data = {"server": {"database": self.db_url, **server}, **data}
        (self.path / name).write_text(yaml.safe_dump(data, sort_keys=False))
        return self.path / name

    def run(self, *args: str) -> Ran:
        return in_process(self.path, self.monkeypatch, *args)

    def history(self) -> list[dict[str, Any]]:
        return self.run("config", "history", "--json").ok().json  # type: ignore[no-any-return]

    def commit(self, document: dict[str, Any], source: str = "api") -> int:
        """A revision made as the API would (the API is another helper's): straight through commit."""

        async def _commit() -> int:
            store = Store(self.db_url)
            try:
                async with store.write() as conn:
                    rev, _ = await revisions.commit(conn, document, source=source)  # type: ignore[arg-type]
                return rev.number
            finally:
                await store.close()

        return asyncio.run(_commit())


@pytest.fixture
def site(tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch) -> Site:
    s = Site(tmp_path, db_url, monkeypatch)
    s.write(BASE)
    s.run("db", "upgrade").ok()
    return s


BASE: dict[str, Any] = {
    "integrations": {"inbox": {"kind": "inbox"},
                     "ops": {"kind": "webhook", "url": "https://example.com/ops"}},
    "routes": [{"name": "urgent", "match": {"priority": ">=high"}, "to": ["ops"]}],
    "default": {"to": ["inbox"]},
}


def changed(**integrations: Any) -> dict[str, Any]:
    return {**BASE, "integrations": {**BASE["integrations"], **integrations}}


# -- history, rollback, reload (SQLite and PostgreSQL) --------------------------------------------------
def test_history_after_imports_and_a_rollback(site: Site) -> None:
    assert site.run("config", "history", "--json").ok().json == []
    assert "no configuration revisions yet" in site.run("config", "history").ok().out
    assert site.run("config", "reload").ok().out.strip() == "revision 1 imported"
    assert site.run("config", "reload").ok().out.strip() == "unchanged (revision 1)"
    site.write(changed(chat={"kind": "webhook", "url": "https://example.com/chat"}))
    assert site.run("config", "reload", "--json").ok().json == {"revision": 2, "imported": True, "config_source": "both"}
    ran = site.run("config", "rollback", "1", "--yes", "--comment", "chat was a mistake").ok()
    assert ran.out.strip() == "revision 3 made, equal to revision 1"

    items = site.history()
    assert [(r["number"], r["source"], r["current"]) for r in items] == [(3, "cli", True), (2, "file", False),
                                                                          (1, "file", False)]
    assert items[0]["author"] == WHO and items[0]["comment"] == "chat was a mistake"
    assert items[1]["author"] == WHO, "a reload is audited as the person who ran it"
    assert items[0]["digest"] == items[2]["digest"] != items[1]["digest"]
    assert items[0]["parent"] == 2
    assert [r["number"] for r in site.run("config", "history", "--limit", "2", "--json").ok().json] == [3, 2]
    table = site.run("config", "history").ok().out
    assert "3 (current)" in table and "chat was a mistake" in table and WHO in table
    assert site.run("config", "history", "--limit", "0").code == 2

    # Audited with the CLI actor, by revisions.commit.
    entries = site.run("audit", "list", "--action", "config.revision", "--json").ok().json["items"]
    rollback = next(e for e in entries if e["target"] == "config/revision/3")
    assert rollback["actor_name"] == WHO and rollback["auth_method"] == "cli"
    assert rollback["after"]["source"] == "cli" and rollback["after"]["integrations_removed"] == ["chat"]

    # Rolling back to what is current makes nothing.
    ran = site.run("config", "rollback", "1", "--yes", "--json").ok()
    assert ran.json["made"] is False and ran.json["revision"] == 3 and ran.json["changes"] == []
    assert len(site.history()) == 3


def test_rollback_refusals(site: Site) -> None:
    site.run("config", "rollback", "1", "--yes").one_line_error("no configuration revision 1", code=1)
    site.run("config", "rollback", "current", "--yes").one_line_error("no configuration revision yet",
                                                                      "tidings config reload", code=1)
    site.run("config", "reload").ok()
    site.run("config", "rollback", "7", "--yes").one_line_error("no configuration revision 7", code=1)
    site.run("config", "rollback", "0", "--yes").one_line_error("'0' is not a revision", code=1)
    site.run("config", "rollback", "1").one_line_error("give --yes", code=1)  # no terminal to ask on
    # A revision this machine's file can't run (a ${file:...} secret it lacks) is refused, unchanged.
    site.commit(changed(chat={"kind": "slack", "token": "${file:integrations.chat.token}", "channel": "#ops"}))
    site.commit(BASE)
    ran = site.run("config", "rollback", "2", "--yes")
    assert ran.code == 2, ran
    assert ran.err.startswith("error: integrations.chat.token: ${file:integrations.chat.token} names a value"), ran.err
    assert [r["number"] for r in site.history()] == [3, 2, 1]


def test_config_source_file_refuses_rollback(site: Site) -> None:
    site.write(BASE, config_source="file")
    site.run("config", "reload").ok()
    site.write(changed(chat={"kind": "webhook", "url": "https://example.com/chat"}), config_source="file")
    site.run("config", "reload").ok()
    site.run("config", "rollback", "1", "--yes").one_line_error(
        "server.config_source is `file`", "tidings config reload", code=1)
    assert [r["number"] for r in site.history()] == [2, 1]


def test_reload_with_an_invalid_file_changes_nothing(site: Site) -> None:
    site.run("config", "reload").ok()
    (site.path / "bad.yaml").write_text(f"server:\n  database: '{site.db_url}'\nroutes: [\n")
    site.run("config", "reload", "-c", "bad.yaml").one_line_error("bad.yaml:4:1: ", code=2)

    site.write({**BASE, "integrations": {**BASE["integrations"], "chat": {"kind": "slak"}},
                "routes": [{"to": ["opps"]}]}, name="bad.yaml")
    ran = site.run("config", "reload", "-c", "bad.yaml")
    assert ran.code == 2 and ran.out == ""
    lines = ran.err.strip().splitlines()
    assert len(lines) == 2, lines
    assert any("integrations.chat.kind: unknown kind 'slak'" in line for line in lines), lines
    assert any("routes[0].to[0]: unknown integration 'opps' (did you mean 'ops'?)" in line for line in lines), lines
    assert all(line.startswith("error: bad.yaml: ") for line in lines)
    assert [r["number"] for r in site.history()] == [1]


def test_reload_refused_by_the_revision_check_changes_nothing(site: Site) -> None:
    """The file is valid on its own, but merged into the current revision it is not: a route made
    through the API sends to an integration the file now removes."""
    site.write(changed(pay={"kind": "webhook", "project": "payments", "url": "https://example.org/pay"}))
    site.run("config", "reload").ok()
    site.commit({**changed(pay={"kind": "webhook", "project": "payments", "url": "https://example.org/pay"}),
                 "routes": [*BASE["routes"], {"name": "api-made", "project": "payments", "to": ["pay"]}]})
    site.write(BASE)
    ran = site.run("config", "reload")
    assert ran.code == 2, ran
    lines = ran.err.strip().splitlines()
    assert "error: routes[1].to[0]: unknown integration 'pay'" in lines, lines
    assert [r["number"] for r in site.history()] == [2, 1]
    assert site.run("config", "validate").ok().out.strip().splitlines()[1] == (
        "revision 2 is current; the file changed since revision 1 was imported; `tidings config reload` imports it")


# -- show, diff ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("db", ["sqlite"])  # PostgreSQL: history, rollback, reload, export above
def test_show(site: Site) -> None:
    site.run("config", "reload").ok()
    shown = site.run("config", "show").ok().out
    assert shown.startswith("# revision 1 · ") and f"· {WHO} · file · imported" in shown
    assert yaml.safe_load(shown) == BASE
    assert shown.index("integrations:") < shown.index("routes:") < shown.index("default:")
    as_json = site.run("config", "show", "1", "--json").ok().json
    assert as_json["number"] == 1 and as_json["document"] == BASE and as_json["source"] == "file"
    assert site.run("config", "show", "current", "--json").ok().json == as_json
    site.run("config", "show", "2").one_line_error("no configuration revision 2", code=1)
    site.run("config", "show", "two").one_line_error("'two' is not a revision", "`current`", code=1)


@pytest.mark.parametrize("db", ["sqlite"])  # PostgreSQL: history, rollback, reload, export above
def test_diff_of_two_revisions(site: Site) -> None:
    old_token, new_token = "xoxb-" + secrets.token_hex(10), "xoxb-" + secrets.token_hex(10)
    first = {
        "integrations": {"inbox": {"kind": "inbox"}, "ops": {"kind": "webhook", "url": "https://example.com/ops"},
                         "chat": {"kind": "slack", "token": old_token, "channel": "#ops"}},
        "routes": [{"name": "a", "to": ["ops"]}, {"name": "b", "to": ["chat"]}, {"name": "c", "to": ["inbox"]}],
        "default": {"to": ["inbox"]},
    }
    second = {
        "integrations": {**first["integrations"], "ops": {"kind": "webhook", "url": "https://example.com/v2"},
                         "chat": {"kind": "slack", "token": new_token, "channel": "#ops"},
                         "pager": {"kind": "webhook", "url": "https://example.com/pager"}},
        "routes": [{"name": "c", "to": ["inbox"]}, {"name": "a", "to": ["ops"]}, {"name": "b", "to": ["chat"]}],
        "default": {"to": ["inbox"]},
    }
    assert (site.commit(first), site.commit(second)) == (1, 2)
    text = site.run("config", "diff", "1", "2").ok().out
    assert old_token not in text and new_token not in text
    assert text.splitlines()[0] == "revision 1 -> 2"
    assert "~ integration chat [slack]\n    token: (secret changed) -> (secret changed)" in text
    assert "~ integration ops [webhook]\n    url: 'https://example.com/ops' -> 'https://example.com/v2'" in text
    assert "+ integration pager [webhook]" in text
    assert "> route c: position 3 -> 1" in text
    changes = site.run("config", "diff", "1", "current", "--json").ok().json
    assert old_token not in str(changes) and new_token not in str(changes)
    assert {(c["what"], c["name"], c["change"]) for c in changes} == {
        ("integration", "chat", "changed"), ("integration", "ops", "changed"), ("integration", "pager", "added"),
        ("route", "c", "moved")}
    assert site.run("config", "diff", "2").ok().out.strip() == "revision 2 -> 2\nno changes"
    site.run("config", "diff", "1", "5").one_line_error("no configuration revision 5", code=1)


# -- export ------------------------------------------------------------------------------------------
PROJECTS: dict[str, Any] = {
    "dispatcher": {"poll_interval": "0.5s"},
    "integrations": {
        "inbox": {"kind": "inbox"},
        "chat": {"kind": "slack", "token": SLACK_TOKEN, "channel": "#ops"},
        "hook": {"kind": "webhook", "url": "https://example.com/${HOOK_PATH}", "secret": "${HOOK_SECRET}"},
        "pay-hook": {"kind": "webhook", "project": "payments", "url": "https://example.org/pay"},
        "search-hook": {"url": "https://example.net/search", "kind": "webhook", "project": "search"},
    },
    "routes": [
        {"name": "urgent", "match": {"priority": ">=high"}, "to": ["chat", "hook"], "continue": True},
        {"name": "pay", "project": "payments", "to": ["pay-hook"]},
        {"to": ["search-hook"], "project": "search", "match": {"labels": {"service": ["api", "web"]}}},
        {"name": "rest", "to": ["hook"]},
        {"name": "pay-rest", "project": "payments", "to": ["pay-hook"], "cooldown": "5m"},
    ],
    "default": {"to": ["inbox"]},
}


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOK_PATH", "abc")
    monkeypatch.setenv("HOOK_SECRET", HOOK_SECRET)


@pytest.mark.usefixtures("env")
def test_export_imports_back_to_the_same_revision(site: Site, tmp_path: Path) -> None:
    site.write(PROJECTS)
    site.run("config", "reload").ok()
    [first] = site.history()
    exported = site.run("config", "export", "--with-file-secrets", "-o", "exported.yaml").ok()
    assert exported.out.strip() == "revision 1 written to exported.yaml"
    path = site.path / "exported.yaml"
    assert path.stat().st_mode & 0o777 == 0o600, "it holds secrets"
    text = path.read_text()
    assert SLACK_TOKEN in text and HOOK_SECRET not in text and "${HOOK_SECRET}" in text
    assert "https://example.com/${HOOK_PATH}" in text
    data = yaml.safe_load(text)
    assert list(data) == ["server", "dispatcher", "integrations", "routes", "default"]
    assert list(data["integrations"]["search-hook"]) == ["kind", "project", "url"], "kind first, as people write"
    assert data["routes"] == [{k: r[k] for k in ("name", "project", "match", "to", "continue", "cooldown") if k in r}
                              for r in PROJECTS["routes"]]
    assert site.run("config", "reload", "-c", "exported.yaml").ok().out.strip() == "unchanged (revision 1)"

    # Into another database: the same document, digest for digest.
    other = f"sqlite:///{tmp_path / 'other.db'}"
    site.monkeypatch.setenv("TIDINGS_DATABASE_URL", other)
    site.run("db", "upgrade", "-c", "exported.yaml").ok()
    assert site.run("config", "reload", "-c", "exported.yaml").ok().out.strip() == "revision 1 imported"
    assert site.history()[0]["digest"] == first["digest"]
    site.monkeypatch.delenv("TIDINGS_DATABASE_URL")

    # After a change that is not the file's (a rollback), the export is that revision.
    site.write({**PROJECTS, "integrations": {**PROJECTS["integrations"], "more": {"kind": "inbox"}}})
    site.run("config", "reload").ok()
    site.run("config", "rollback", "1", "--yes").ok()
    site.run("config", "export", "--with-file-secrets", "-o", "exported.yaml").ok()
    assert site.run("config", "reload", "-c", "exported.yaml").ok().out.strip() == "unchanged (revision 3)"
    assert site.history()[0]["digest"] == first["digest"]


@pytest.mark.parametrize("db", ["sqlite"])  # PostgreSQL: history, rollback, reload, export above
@pytest.mark.usefixtures("env")
def test_export_after_a_route_change_imports_back_with_interleaved_projects(site: Site) -> None:
    site.write(PROJECTS)
    site.run("config", "reload").ok()
    site.write({**PROJECTS, "routes": PROJECTS["routes"][1:]})
    site.run("config", "reload").ok()
    site.run("config", "rollback", "1", "--yes").ok()
    site.run("config", "export", "--with-file-secrets", "-o", "exported.yaml").ok()
    assert site.run("config", "reload", "-c", "exported.yaml").ok().out.strip() == "unchanged (revision 3)"


@pytest.mark.parametrize("db", ["sqlite"])
@pytest.mark.usefixtures("env")
def test_export_keeps_file_secrets_unless_asked(site: Site) -> None:
    site.write(PROJECTS)
    site.run("config", "reload").ok()
    text = site.run("config", "export").ok().out
    assert SLACK_TOKEN not in text
    assert "token: ${file:integrations.chat.token}  # a secret kept in the configuration file" in text
    assert "--with-file-secrets" in text.split("\n\n")[0], "the header explains it"
    assert text.startswith("# tidings.yaml from configuration revision 1 · ")
    # Imported as it is, the file gives no value for the secret: refused with that reason, nothing changes.
    (site.path / "kept.yaml").write_text(text)
    ran = site.run("config", "reload", "-c", "kept.yaml")
    assert ran.code == 2, ran
    assert ("integrations.chat.token: ${file:integrations.chat.token} names a secret of the file a revision was"
            " imported from") in ran.err
    assert len(site.history()) == 1
    # The file stays private only when it holds secrets.
    site.run("config", "export", "-o", "plain.yaml").ok()
    assert (site.path / "plain.yaml").read_text() == text


@pytest.mark.parametrize("db", ["sqlite"])  # PostgreSQL: history, rollback, reload, export above
@pytest.mark.usefixtures("env")
def test_export_of_a_revision_made_elsewhere(site: Site) -> None:
    """A ${file:...} secret this machine's file lacks stays a reference even with
    --with-file-secrets; a document made through the API (vault references only) round-trips."""
    site.run("config", "reload").ok()
    doc = {**BASE, "integrations": {**BASE["integrations"],
                                    "chat": {"channel": "#x", "kind": "slack", "token": "${vault:slack-token}"},
                                    "far": {"kind": "slack", "token": "${file:integrations.far.token}"}}}
    site.commit(doc)
    text = site.run("config", "export", "--with-file-secrets").ok().out
    assert "token: ${file:integrations.far.token}  # a secret kept" in text
    assert "token: ${vault:slack-token}\n" in text
    doc["integrations"].pop("far")
    site.commit(doc)
    site.run("config", "export", "-o", "api.yaml").ok()
    assert site.run("config", "reload", "-c", "api.yaml").ok().out.strip() == "unchanged (revision 3)"


# -- validate, -c, no database -----------------------------------------------------------------------------
@pytest.mark.parametrize("db", ["sqlite"])  # PostgreSQL: history, rollback, reload, export above
def test_validate_says_which_revision_is_current(site: Site) -> None:
    first = site.run("config", "validate").ok().out.strip().splitlines()
    assert first == ["tidings.yaml: ok (2 integrations, 1 routes)"], "no revision yet: nothing to say"
    site.run("config", "reload").ok()
    assert site.run("config", "validate").ok().out.strip().splitlines()[1] == \
        "revision 1 is current; the file is as imported"
    site.write(changed(chat={"kind": "webhook", "url": "https://example.com/chat"}))
    line = site.run("config", "validate").ok().out.strip().splitlines()[1]
    assert line == ("revision 1 is current; the file changed since revision 1 was imported;"
                    " `tidings config reload` imports it")
    data = site.run("config", "validate", "--json").ok().json
    assert (data["revision"], data["imported"], data["file_changed"]) == (1, 1, True)
    site.run("config", "reload").ok()
    site.run("config", "rollback", "1", "--yes").ok()
    line = site.run("config", "validate").ok().out.strip().splitlines()[1]
    assert line == ("revision 3 is current; the file is as imported in revision 2"
                    " (what changed since: `tidings config diff 2 3`)")


@pytest.mark.parametrize("db", ["sqlite"])  # PostgreSQL: history, rollback, reload, export above
def test_config_given_to_the_group(site: Site, tmp_path: Path) -> None:
    config = str(site.write(BASE, name="elsewhere.yaml"))
    (site.path / "tidings.yaml").unlink()
    other = tmp_path / "cwd"
    other.mkdir()
    elsewhere = Site(other, site.db_url, site.monkeypatch)
    assert elsewhere.run("config", "-c", config, "reload").ok().out.strip() == "revision 1 imported"
    assert [r["number"] for r in elsewhere.run("config", "-c", config, "history", "--json").ok().json] == [1]
    assert elsewhere.run("-c", config, "config", "show", "--json").ok().json["document"] == BASE
    assert "no changes" in elsewhere.run("config", "-c", config, "diff", "1", "1").ok().out
    assert "ops:" in elsewhere.run("config", "-c", config, "export").ok().out
    assert list(other.iterdir()) == []


def test_reading_commands_never_create_a_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = Site(tmp_path, f"sqlite:///{tmp_path / 'tidings.db'}", monkeypatch)
    site.write(BASE)
    for args in (["history"], ["show"], ["show", "1"], ["diff", "1", "2"], ["export"], ["reload"],
                 ["rollback", "1", "--yes"]):
        site.run("config", *args).one_line_error(f"no database at {tmp_path / 'tidings.db'}", code=1)
    assert site.run("config", "validate").ok()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tidings.yaml"]
    assert not os.path.exists(tmp_path / "tidings.db")
