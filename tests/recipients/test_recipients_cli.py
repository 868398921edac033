"""`tidings recipient ...` round trip, in-process: add, list, show, edit, prefs, pref, groups,
remove; every change audited as the person at the terminal; clear one-line errors and exit 1."""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Any

import pytest
import yaml
from cli_support import Ran, in_process, on_store
from people import person

from tidings.audit.verify import read_entries

WHO = f"cli:{getpass.getuser()}"
TEAMS = "https://prod-01.westeurope.logic.azure.com/workflows/abc/triggers/manual/paths/invoke?sig=cli-s3cr3t"
CONFIG: dict[str, Any] = {
    "integrations": {"inbox": {"kind": "inbox"}, "alpha-mail": {"kind": "inbox", "project": "alpha"}},
    "routes": [{"project": "alpha", "to": ["alpha-mail"]}],
    "projects": {"alpha": {"topics": {"security": {"required": True}}}},
}


class Site:
    def __init__(self, path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
        self.path, self.db_url, self.monkeypatch = path, db_url, monkeypatch
        (path / "tidings.yaml").write_text(yaml.safe_dump({"server": {"database": db_url}, **CONFIG}))

    def run(self, *args: str) -> Ran:
        return in_process(self.path, self.monkeypatch, *args)

    def json(self, *args: str) -> Any:
        return self.run(*args, "--json").ok().json


@pytest.fixture
def site(tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch) -> Site:
    from cryptography.fernet import Fernet

    monkeypatch.setenv("TIDINGS_SECRET_KEY", Fernet.generate_key().decode())
    s = Site(tmp_path, db_url, monkeypatch)
    s.run("db", "upgrade").ok()
    s.run("integrations", "list").ok()  # starts a hub once: projects alpha and default exist
    on_store(db_url, lambda store: person(store, "ann@example.com", {"alpha": "member"}))
    return s


@pytest.mark.parametrize("db", ["sqlite"])  # the store's rules run on PostgreSQL in test_recipient_store.py
def test_a_round_trip(site: Site) -> None:
    p = ("-p", "alpha")
    made = site.json("recipient", "add", "ann", *p, "--display-name", "Ann Lee", "--email", "ann@EXAMPLE.com",
                     "--slack-user", "U024BE7LH", "--teams", TEAMS, "--tz", "Europe/Berlin", "--user", "ann@example.com",
                     "--quiet-hours", '{"windows": [{"days": "weekends"}]}')
    assert (made["name"], made["email"], made["teams"], made["user"], made["version"]) == (
        "ann", "ann@example.com", True, "ann@example.com", 1)
    assert "s3cr3t" not in str(made)
    site.json("recipient", "add", "bob", *p)
    human = site.run("recipient", "list", *p).ok().out
    assert "Ann Lee" in human and "U024BE7LH" in human and "s3cr3t" not in human
    assert [r["name"] for r in site.json("recipient", "list", *p)] == ["ann", "bob"]
    # Preferences: on, off, unset; * is any; a required topic can't be turned off.
    assert site.json("recipient", "pref", "ann", "deploys", "alpha-mail", "off", *p)["enabled"] is False
    assert site.json("recipient", "pref", "ann", "*", "*", "on", *p)["enabled"] is True
    site.run("recipient", "pref", "ann", "security", "*", "off", *p).one_line_error("'security' is required", code=1)
    site.run("recipient", "pref", "ann", "deploys", "*", "maybe", *p).one_line_error("on, off or unset", code=1)
    prefs = site.json("recipient", "prefs", "ann", *p)
    assert [(x["topic"], x["channel"], x["enabled"], x["updated_by"]) for x in prefs] == [
        ("", "", True, WHO), ("deploys", "alpha-mail", False, WHO)]
    assert site.json("recipient", "pref", "ann", "*", "*", "unset", *p) == {"topic": "", "channel": "", "unset": True}
    site.run("recipient", "pref", "ann", "*", "*", "unset", *p).one_line_error("no preference", code=1)
    shown = site.json("recipient", "show", "ann", *p)
    assert shown["timezone"] == "Europe/Berlin" and len(shown["preferences"]) == 1
    out = site.run("recipient", "show", "ann", *p).ok().out
    assert "Europe/Berlin" in out and "deploys" in out and "teams     yes" in out
    # Edit: fields, --clear, --if-version (a stale one is refused).
    edited = site.json("recipient", "edit", "ann", *p, "--tz", "UTC", "--clear", "teams", "--if-version", "1")
    assert (edited["timezone"], edited["teams"], edited["version"]) == ("UTC", False, 2)
    site.run("recipient", "edit", "ann", *p, "--tz", "UTC", "--if-version", "1").one_line_error(
        "changed meanwhile", code=1)
    site.run("recipient", "edit", "ann", *p).one_line_error("nothing to change", code=1)
    site.run("recipient", "edit", "ann", *p, "--tz", "Mars/Base").one_line_error("unknown time zone", code=1)
    # Groups.
    g = site.json("recipient", "group", "add", "oncall", "bob", "ann", *p, "-d", "nights")
    assert g["members"] == ["bob", "ann"]
    site.run("recipient", "group", "add", "ann", *p).one_line_error("share a name", code=1)
    assert site.json("recipient", "group", "members", "oncall", "ann", *p)["members"] == ["ann"]
    assert [(x["name"], x["members"]) for x in site.json("recipient", "group", "list", *p)] == [("oncall", ["ann"])]
    assert "nights" in site.run("recipient", "group", "list", *p).ok().out
    assert site.json("recipient", "group", "remove", "oncall", *p)["removed"] is True
    # Remove; then unknown.
    assert site.json("recipient", "remove", "bob", *p) == {"name": "bob", "project": "alpha", "removed": True}
    site.run("recipient", "show", "bob", *p).one_line_error("no recipient 'bob' in project alpha", code=1)
    site.run("recipient", "list", "-p", "nope").one_line_error("no project 'nope'", code=1)
    # The other project's recipients are its own.
    assert site.json("recipient", "list") == []
    trail = on_store(site.db_url, read_entries)
    mine = [(e["action"], e["actor_name"], e["auth_method"]) for e in trail
            if e["action"].split(".")[0] in ("recipient", "recipient_group", "preference")]
    assert mine == [(a, WHO, "cli") for a in (
        "recipient.create", "recipient.create", "preference.set", "preference.set", "preference.unset",
        "recipient.update", "recipient_group.create", "recipient_group.members", "recipient_group.delete",
        "recipient.delete")]
    assert "s3cr3t" not in str(trail)


@pytest.mark.parametrize("db", ["sqlite"])
def test_bad_input_is_one_line(site: Site) -> None:
    site.run("recipient", "add", "Ann", "-p", "alpha").one_line_error("name", code=1)
    site.run("recipient", "add", "ann", "-p", "alpha", "--email", "x\x00y").one_line_error("control", code=1)
    site.run("recipient", "add", "ann", "-p", "alpha", "--quiet-hours", "{").one_line_error("not JSON", code=1)
    site.run("recipient", "add", "ann", "-p", "alpha", "--user", "nobody@example.com").one_line_error(
        "no tidings user", code=1)
    assert site.json("recipient", "list", "-p", "alpha") == []
