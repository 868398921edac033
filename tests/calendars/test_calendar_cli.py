"""`tidings calendar create|list|revoke`, in-process: the URL shown once and working, a personal
feed for a member only, revocation, clear one-line errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from cli_support import in_process, on_store
from people import person

from tidings.calendars.feeds import feed_by_token
from tidings.store.engine import Store


def test_feeds_made_listed_and_revoked(tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "tidings.yaml").write_text(yaml.safe_dump({
        "server": {"database": db_url}, "integrations": {"inbox": {"kind": "inbox"},
                                                         "a-inbox": {"kind": "inbox", "project": "alpha"}},
        "routes": [{"project": "alpha", "to": ["a-inbox"]}], "default": {"to": ["inbox"]}}))

    def run(*args: str) -> Any:
        return in_process(tmp_path, monkeypatch, *args)

    def on_db(call: Any) -> Any:
        return on_store(db_url, call)

    async def found(store: Store, token: str) -> Any:
        async with store.read() as conn:
            return await feed_by_token(conn, token)

    run("db", "upgrade").ok()
    run("integrations", "list").ok()  # starts a hub once: project alpha exists
    on_db(lambda store: person(store, "ann@example.com", {"alpha": "viewer"}))
    made = run("calendar", "create", "--name", "Ann's", "-p", "alpha", "--user", "ann@example.com",
               "--base-url", "https://t.example.com/", "--json").ok().json
    assert made["url"].startswith("https://t.example.com/calendars/") and made["user"] == "ann@example.com"
    token = made["url"].rsplit("/", 1)[1].removesuffix(".ics")
    assert on_db(lambda store: found(store, token))["id"] == made["id"]
    human = run("calendar", "create", "--name", "All", "-p", "alpha").ok().out
    assert "shown once" in human and "http://localhost:8000/calendars/" in human
    listed = run("calendar", "list", "-p", "alpha", "--json").ok().json
    assert [(f["name"], f["user"]) for f in listed] == [("Ann's", "ann@example.com"), ("All", None)]
    assert token not in run("calendar", "list", "-p", "alpha").ok().out
    assert run("calendar", "revoke", made["id"], "-p", "alpha").ok().out.startswith("revoked calendar feed")
    assert on_db(lambda store: found(store, token)) is None
    run("calendar", "revoke", made["id"], "-p", "alpha").one_line_error("no live feed")
    run("calendar", "create", "--name", "x", "-p", "alpha", "--user", "nobody@example.com").one_line_error("no user")
    run("calendar", "create", "--name", "x", "-p", "nope").one_line_error("no project")
