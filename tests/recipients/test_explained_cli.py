"""`tidings deliveries show` and `tidings messages show` say whom a delivery is for (by name) and why
it was decided as it was."""

from __future__ import annotations

import sqlite3
import time
import uuid

import yaml
from cli_support import Project, tidings


def add_grace(project: Project) -> str:
    """Grace, who turned off topic deploys by email; a route `to: [mail, "@grace", "@nobody"]`."""
    config = yaml.safe_load((project.path / "tidings.yaml").read_text())
    config["integrations"]["mail"] = {"kind": "email", "host": "127.0.0.1", "port": 2, "security": "none",
                                      "allow_insecure": True, "from_address": "t@example.com", "to": ["team@example.com"]}
    config["routes"] = [{"name": "pager", "topic": "deploys", "to": ["@grace", "@nobody"]}]
    (project.path / "tidings.yaml").write_text(yaml.safe_dump(config))
    rid, now = str(uuid.uuid4()), time.time()
    conn = sqlite3.connect(project.path / "tidings.db", timeout=10)
    with conn:
        conn.execute("INSERT INTO recipients (id, project, name, display_name, email, timezone, created_at, updated_at,"
                     " version) VALUES (?, 'default', 'grace', 'Grace Hopper', 'grace@example.com', 'UTC', ?, ?, 1)",
                     (rid, now, now))
        conn.execute("INSERT INTO preferences (recipient_id, topic, channel, enabled, updated_at) VALUES (?, 'deploys',"
                     " 'mail', 0, ?)", (rid, now))
    conn.close()
    return rid


def test_deliveries_and_messages_show_the_recipient_and_the_reason(project: Project) -> None:
    p = project.path
    tidings(p, "db", "upgrade").ok()  # the recipients tables exist before rows go in
    rid = add_grace(project)
    sent = tidings(p, "send", "--title", "v42 deployed", "--no-wait", "--json").ok().json
    by_integration = {d["integration"]: d for d in sent["deliveries"]}
    assert {k: d["status"] for k, d in by_integration.items()} == {"mail": "suppressed", "@nobody": "suppressed"}

    shown = tidings(p, "deliveries", "show", by_integration["mail"]["id"], "--json").ok().json
    assert shown["recipient"] == rid
    assert shown["reason"] == "grace turned off topic deploys for mail"
    text = tidings(p, "deliveries", "show", by_integration["mail"]["id"]).ok().out
    assert "recipient:    Grace Hopper (@grace)" in text
    assert "why:          grace turned off topic deploys for mail" in text

    text = tidings(p, "messages", "show", sent["id"]).ok().out
    assert "Grace Hopper (@grace)" in text
    assert "grace turned off topic deploys for mail" in text
    assert "@nobody names no recipient or group of project default" in text
