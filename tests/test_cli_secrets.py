"""`tidings secret set|list|show|rotate|delete` on SQLite and PostgreSQL: metadata, references,
masking, audit entries without values, refusals; and a running worker that picks up a value
rotated from another process without a restart."""

from __future__ import annotations

import base64
import getpass
import http.server
import json
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cli_support import Project, db_rows, free_port, start, stop, tidings, vault_config, wait_until
from helpers import PG_URL
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError
from test_cli import whsec

ME = f"cli:{getpass.getuser()}"


@pytest.fixture
def url(db: str, db_url: str) -> str | None:
    """$TIDINGS_DATABASE_URL for the commands: None keeps the project's SQLite file."""
    return None if db == "sqlite" else db_url


def rows(p: Path, url: str | None, sql: str) -> list[tuple[Any, ...]]:
    if url is None:
        return db_rows(p, sql)
    import psycopg

    options = url.split("?", 1)[1]
    with psycopg.connect(f"{PG_URL}?{options}") as conn:
        return list(conn.execute(sql).fetchall())


def test_the_lifecycle_of_a_secret(project: Project, url: str | None) -> None:
    p = project.path

    def run(*args: str, stdin: str | None = None) -> Any:
        return tidings(p, *args, stdin=stdin, TIDINGS_DATABASE_URL=url)

    hook, short = whsec(), "pin-1234"
    assert run("secret", "set", "HOOK", stdin=hook + "\n").ok().out.strip() == "stored HOOK; use it as ${vault:HOOK}"
    run("secret", "set", "SHORT", "--value", short).ok()
    vault_config(project, "HOOK")

    listed = {s["name"]: s for s in run("secret", "list", "--json").ok().json}
    assert listed["HOOK"]["created_by"] == ME and listed["HOOK"]["references"] == ["signed"]
    assert listed["SHORT"]["references"] == [] and listed["SHORT"]["rotated_at"] is None
    table = run("secret", "list").ok().out
    assert "HOOK" in table and "signed" in table and ME in table
    shown = run("secret", "show", "HOOK").ok().out
    assert f"value:     …{hook[-4:]}" in shown and "used by:   signed" in shown
    assert run("secret", "show", "SHORT", "--json").ok().json["masked"] == "…"

    new = whsec()
    rotated = run("secret", "rotate", "HOOK", stdin=new + "\n").ok()
    assert rotated.out.strip() == "rotated HOOK; signed use it from their next send"
    after = {s["name"]: s for s in run("secret", "list", "--json").ok().json}["HOOK"]
    assert after["rotated_by"] == ME and after["created_at"] == listed["HOOK"]["created_at"]

    refused = run("secret", "rotate", "HOOK", stdin="plain-not-whsec-value\n")
    refused.one_line_error("integrations.signed.secret refers to HOOK", "whsec_", code=1)
    assert "plain-not-whsec-value" not in refused.err
    run("secret", "rotate", "NOPE", stdin="some-value-123456\n").one_line_error("no secret named 'NOPE'", code=1)

    made = run("secret", "rotate", "HOOK", "--generate").ok()
    generated = made.out.strip()
    assert generated.startswith("whsec_") and len(base64.b64decode(generated[6:])) == 32
    assert made.err.strip() == "rotated HOOK; signed use it from their next send"
    as_json = run("secret", "rotate", "SHORT", "--generate", "--json").ok().json
    assert as_json["rotated"] == "SHORT" and len(as_json["value"]) == 43 and as_json["references"] == []
    run("secret", "rotate", "SHORT", "--generate", "--value", "x" * 20).one_line_error("not both", code=1)
    assert run("secret", "show", "HOOK", "--json").ok().json["masked"] == "…" + generated[-4:]

    run("secret", "delete", "HOOK").one_line_error("'HOOK' is referenced by signed", "force",
                                                   code=1)
    [(cipher,)] = rows(p, url, "SELECT ciphertext FROM secrets WHERE name = 'SHORT'")
    assert run("secret", "delete", "SHORT").ok().out.strip() == "deleted SHORT"
    forced = run("secret", "delete", "HOOK", "--force", "--json").ok().json
    assert forced == {"deleted": "HOOK", "purged": forced["purged"], "references": ["signed"]}
    run("secret", "delete", "SHORT").one_line_error("no secret named 'SHORT'", code=1)
    assert run("secret", "list", "--json").ok().json == []
    if url is None:
        files = b"".join(f.read_bytes() for f in p.glob("tidings.db*"))
        assert bytes(cipher) not in files, "the deleted ciphertext is gone from the database's files"

    audit = rows(p, url, "SELECT action, target, actor_name, auth_method, before, after FROM audit_log "
                         "WHERE action LIKE 'secret.%' ORDER BY seq")
    assert [(a, t, n, m) for a, t, n, m, _, _ in audit] == [
        ("secret.set", "secret/HOOK", ME, "cli"), ("secret.set", "secret/SHORT", ME, "cli"),
        ("secret.rotate", "secret/HOOK", ME, "cli"), ("secret.rotate", "secret/HOOK", ME, "cli"),
        ("secret.rotate", "secret/SHORT", ME, "cli"), ("secret.delete", "secret/SHORT", ME, "cli"),
        ("secret.delete", "secret/HOOK", ME, "cli"),
    ]
    dump = repr(audit)
    for value in (hook, new, generated, as_json["value"], short):
        assert value not in dump


def test_bad_names_and_values_are_one_line_errors(project: Project) -> None:
    p = project.path
    tidings(p, "secret", "set", "A", stdin="abc\x00def\n").one_line_error("NUL character", code=1)
    tidings(p, "secret", "set", "A", stdin="x" * 70_000 + "\n").one_line_error("at most 64 KiB", code=1)
    tidings(p, "secret", "set", "with space", stdin="fine-value-1234\n").one_line_error("secret name", code=1)
    tidings(p, "secret", "set", "A", stdin="\n").one_line_error("the secret is empty", code=1)
    tidings(p, "secret", "show", "A").one_line_error("no secret named 'A'", code=1)
    assert tidings(p, "secret", "list", "--json").ok().json == []
    assert db_rows(p, "SELECT count(*) FROM audit_log WHERE action LIKE 'secret.%'") == [(0,)]


class _Peer(http.server.BaseHTTPRequestHandler):
    """Accepts a webhook signed with the secret it expects now (503 otherwise: the sender retries)."""

    expected = ""
    accepted: list[str] = []

    def do_POST(self) -> None:  # noqa: N802 - the handler's name
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        try:
            Webhook(self.expected).verify(body, {k.lower(): v for k, v in self.headers.items()})
        except WebhookVerificationError:
            self.send_response(503)
        else:
            type(self).accepted.append(json.loads(body)["data"]["title"])
            self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def peer() -> Iterator[tuple[type[_Peer], int]]:
    handler = type("Peer", (_Peer,), {"accepted": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield handler, server.server_address[1]
    server.shutdown()
    server.server_close()


def test_a_running_worker_signs_with_a_value_rotated_by_another_process(
    project: Project, processes: list[subprocess.Popen[bytes]], peer: tuple[type[_Peer], int]
) -> None:
    p = project.path
    handler, port = peer
    old, new = whsec(), whsec()
    handler.expected = old
    tidings(p, "secret", "set", "HOOK", stdin=old + "\n").ok()
    config = yaml.safe_load((p / "tidings.yaml").read_text())
    config["integrations"]["signed"] = {
        "kind": "webhook", "url": f"http://127.0.0.1:{port}/hook", "allow_destinations": ["127.0.0.1"],
        "secret": "${vault:HOOK}", "retry": {"base": "200ms", "cap": "500ms", "max_attempts": 100},
    }
    config["default"] = {"to": ["signed"]}
    (p / "tidings.yaml").write_text(yaml.safe_dump(config))
    proc = start(processes, p, "worker", log="worker")
    tidings(p, "send", "--title", "before", "--no-wait").ok()
    wait_until(lambda: handler.accepted == ["before"], what="the first send, signed with the old value")

    handler.expected = new  # the peer now wants the new value; then it is rotated
    tidings(p, "secret", "rotate", "HOOK", stdin=new + "\n").ok()
    tidings(p, "send", "--title", "after", "--no-wait").ok()
    wait_until(lambda: handler.accepted == ["before", "after"], timeout=20, what="the rotated value reaching the worker")
    assert proc.poll() is None, "no restart"
    # The peer has answered; the worker records the outcome just after, so wait for that row too.
    wait_until(lambda: db_rows(p, "SELECT d.status FROM deliveries d JOIN messages m ON m.id = d.message_id "
                                  "WHERE m.title = 'after'") == [("delivered",)],
               what="the second delivery recorded as delivered")
    code, _ = stop(proc)
    assert code == 0, (p / "worker.err").read_text()
    assert new not in (p / "worker.err").read_text() + (p / "worker.out").read_text()
