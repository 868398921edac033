"""The ``tidings`` command in a scratch directory: in this process through typer's runner
(``cli_support.tidings``), and as the real executable where the process matters (the console
script, an exit code seen by the shell, ``serve`` and ``worker``).

Every error is one line on stderr with a non-zero exit code (2 for bad configuration), never a
traceback. ``serve`` and ``worker`` run as long-lived processes and stop cleanly on SIGTERM.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import signal
import stat
import subprocess
import time
from pathlib import Path

import httpx
import pytest
import yaml
from cli_support import (
    TIDINGS,
    TOKEN,
    Project,
    db_rows,
    free_port,
    in_process,
    key_file_keys,
    start,
    stop,
    tidings,
    vault_config,
    wait_until,
    whsec,
    with_dead_end,
)
from cryptography.fernet import Fernet

from tidings.security.tokens import verify_token
from tidings.security.vault import new_key
from tidings.store.engine import Store
from tidings.store.migrate import head

pytestmark = pytest.mark.skipif(not TIDINGS.exists(), reason=f"{TIDINGS} is not installed")


# -- init ----------------------------------------------------------------------------------
async def test_init_creates_config_key_database_token_and_demo(tmp_path: Path) -> None:
    ran = tidings(tmp_path, "init").ok()
    assert (tmp_path / "tidings.yaml").exists()
    key = tmp_path / "tidings.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    [fernet_key] = key_file_keys(key)
    Fernet(fernet_key.encode())  # a valid key
    assert (tmp_path / "tidings.db").exists()
    tokens = TOKEN.findall(ran.out)
    assert len(tokens) == 1, "the admin token is printed exactly once"
    assert "shown once" in ran.out
    store = Store(f"sqlite:///{tmp_path / 'tidings.db'}")
    try:
        info = await verify_token(store, tokens[0])
        assert info is not None and info.name == "admin"
        assert await verify_token(store, tokens[0] + "x") is None
    finally:
        await store.close()
    match = re.search(r"demo notification delivered to the inbox: (\S+)", ran.out)
    assert match, ran.out
    inbox = tidings(tmp_path, "inbox", "--json").ok().json
    assert [i["message"]["title"] for i in inbox["items"]] == ["Welcome to tidings"]
    assert inbox["items"][0]["message_id"] == match.group(1)
    assert db_rows(tmp_path, "SELECT status FROM deliveries") == [("delivered",)]
    # The file it wrote is valid, for the loader and for editors using the JSON Schema.
    tidings(tmp_path, "config", "validate").ok()


def test_the_written_config_validates_against_the_json_schema(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = in_process(project.path, monkeypatch, "config", "schema").ok().json
    data = yaml.safe_load((project.path / "tidings.yaml").read_text())
    errors = [f"{list(e.path)}: {e.message}" for e in jsonschema.Draft202012Validator(schema).iter_errors(data)]
    assert errors == []


def test_init_again_fails_and_if_missing_is_a_no_op(project: Project) -> None:
    p = project.path
    before = {f.name: f.read_bytes() for f in p.iterdir() if f.name in ("tidings.yaml", "tidings.key")}
    tokens_before = db_rows(p, "SELECT count(*) FROM api_tokens")
    tidings(p, "init").one_line_error("tidings.yaml exists", "--if-missing", code=1)
    ran = tidings(p, "init", "--if-missing").ok()
    assert "nothing to initialise" in ran.out
    assert not TOKEN.search(ran.out)
    after = {f.name: f.read_bytes() for f in p.iterdir() if f.name in ("tidings.yaml", "tidings.key")}
    assert after == before
    assert db_rows(p, "SELECT count(*) FROM api_tokens") == tokens_before
    assert db_rows(p, "SELECT count(*) FROM messages") == [(1,)]


def test_init_with_the_key_in_the_environment_writes_no_key_file(tmp_path: Path) -> None:
    ran = tidings(tmp_path, "init", TIDINGS_SECRET_KEY=new_key()).ok()
    assert "using the key in $TIDINGS_SECRET_KEY" in ran.out
    assert not (tmp_path / "tidings.key").exists()
    assert len(TOKEN.findall(ran.out)) == 1


# -- send ----------------------------------------------------------------------------------
def test_send_json_prints_the_delivered_outcome(project: Project) -> None:
    ran = tidings(
        project.path, "send", "--to", "inbox", "--title", "T", "--body", "B", "--field", "k=v", "--field", "eq=a=b",
        "--label", "a=b", "-p", "high", "--json",
    ).ok()
    m = ran.json
    assert m["title"] == "T" and m["body"] == "B" and m["priority"] == "high"
    assert m["fields"] == [["k", "v"], ["eq", "a=b"]]
    assert m["labels"] == {"a": "b"}
    [d] = m["deliveries"]
    assert d["integration"] == "inbox" and d["status"] == "delivered" and d["attempts"] == 1
    assert d["remote_id"].startswith("inbox:")
    inbox = tidings(project.path, "inbox", "--json").ok().json
    assert inbox["items"][0]["message"]["title"] == "T"
    assert inbox["items"][0]["message_id"] == m["id"]


def test_send_human_output(project: Project) -> None:
    ran = tidings(project.path, "send", "-t", "Hello there").ok()
    lines = ran.out.strip().splitlines()
    assert re.fullmatch(r"message [0-9a-f\-]{36}", lines[0])
    assert lines[1:] == ["  inbox: delivered"]


@pytest.mark.parametrize(
    ("option", "value"), [("--field", "no-equals-sign"), ("--label", "=novalue"), ("--link", "docs")]
)
def test_send_with_a_malformed_pair_is_a_one_line_error(project: Project, option: str, value: str) -> None:
    tidings(project.path, "send", "--title", "x", option, value).one_line_error(
        f"{option} {value!r}", "KEY=VALUE", code=1
    )
    assert db_rows(project.path, "SELECT count(*) FROM messages") == [(1,)], "nothing was stored"


def test_send_with_an_unknown_priority_is_a_one_line_error(project: Project) -> None:
    ran = tidings(project.path, "send", "--title", "x", "-p", "urgent")
    ran.one_line_error("'urgent'", code=1)
    for p in ("critical", "high", "medium", "low", "info"):
        assert p in ran.err
    assert db_rows(project.path, "SELECT count(*) FROM messages") == [(1,)]


def test_send_to_an_unknown_integration(project: Project) -> None:
    tidings(project.path, "send", "--title", "x", "--to", "slak").one_line_error("unknown integration 'slak'", code=1)


def test_send_no_wait_leaves_it_pending(project: Project) -> None:
    ran = tidings(project.path, "send", "--title", "later", "--no-wait", "--json").ok()
    receipt = ran.json
    [d] = receipt["deliveries"]
    assert d["status"] == "pending" and d["integration"] == "inbox"
    assert db_rows(project.path, "SELECT status FROM deliveries WHERE id = ?", d["id"]) == [("pending",)]
    pending = tidings(project.path, "deliveries", "--status", "pending", "--json").ok().json
    assert [x["id"] for x in pending["items"]] == [d["id"]]
    inbox = tidings(project.path, "inbox", "--json").ok().json
    assert "later" not in [i["message"]["title"] for i in inbox["items"]]
    human = tidings(project.path, "send", "--title", "later too", "--no-wait").ok()
    assert human.out.strip().splitlines()[1:] == ["  inbox: pending"]


# -- deliveries and retry ----------------------------------------------------------------------
def test_dead_deliveries_are_listed_and_retried_by_hand(project: Project) -> None:
    p = project.path
    with_dead_end(project)
    sent = tidings(p, "send", "--to", "down", "--title", "doomed", "--json")
    assert sent.code == 1, "a dead delivery makes send fail"
    [d] = sent.json["deliveries"]
    assert d["status"] == "dead"
    assert d["last_error"].startswith("gave up after 1 attempts: ")

    dead = tidings(p, "deliveries", "--status", "dead", "--json").ok().json
    assert [x["id"] for x in dead["items"]] == [d["id"]]
    assert dead["items"][0]["title"] == "doomed"
    assert dead["next"] is None

    table = tidings(p, "deliveries", "--status", "dead").ok().out
    assert d["id"] in table
    assert "doomed" in table and "dead" in table and "gave up" in table
    assert "Welcome" not in table
    everything = tidings(p, "deliveries").ok().out
    assert "Welcome" in everything and "doomed" in everything

    shown = tidings(p, "deliveries", "show", d["id"], "--json").ok().json
    assert [(a["attempt"], a["outcome"]) for a in shown["attempts_log"]] == [(1, "dead")]
    assert shown["attempts_log"][0]["error"] == d["last_error"]
    text = tidings(p, "deliveries", "show", d["id"]).ok().out
    assert "outcome" in text and "gave up after 1 attempts" in text

    again = tidings(p, "retry", d["id"]).ok()
    assert again.out.strip() == f"delivery {d['id']} to down is pending again"
    assert db_rows(p, "SELECT status, attempts FROM deliveries WHERE id = ?", d["id"]) == [("pending", 0)]

    # Only dead or retrying deliveries go back; a delivered one is an error.
    [(delivered_id,)] = db_rows(p, "SELECT id FROM deliveries WHERE status = 'delivered'")
    tidings(p, "retry", delivered_id).one_line_error(delivered_id, "delivered", code=1)
    tidings(p, "retry", "no-such-delivery").one_line_error("no-such-delivery", code=1)


def test_retry_json(project: Project) -> None:
    p = project.path
    with_dead_end(project)
    [d] = tidings(p, "send", "--to", "down", "--title", "doomed", "--json").json["deliveries"]
    out = tidings(p, "retry", d["id"], "--json").ok().json
    assert out["id"] == d["id"] and out["status"] == "pending" and out["attempts"] == 0


def test_deliveries_pages_and_bad_status(project: Project) -> None:
    p = project.path
    for i in range(3):
        tidings(p, "send", "--title", f"m{i}", "--no-wait").ok()
    first = tidings(p, "deliveries", "--limit", "2", "--json").ok().json
    assert [x["title"] for x in first["items"]] == ["m2", "m1"]
    assert first["next"] == first["items"][-1]["id"]
    second = tidings(p, "deliveries", "--limit", "2", "--before", first["next"], "--json").ok().json
    assert [x["title"] for x in second["items"]] == ["m0", "Welcome to tidings"]
    assert second["next"] is None
    assert f"more: --before {first['next']}" in tidings(p, "deliveries", "--limit", "2").ok().out
    tidings(p, "deliveries", "--status", "bogus").one_line_error("unknown status 'bogus'", code=1)


# -- configuration ---------------------------------------------------------------------------
def test_config_validate_ok(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    ran = in_process(project.path, monkeypatch, "config", "validate").ok()
    assert ran.out.strip().splitlines() == ["tidings.yaml: ok (1 integrations, 0 routes)",
                                            "revision 1 is current; the file is as imported"]


INVALID = {
    "only-reference": ("routes:\n  - to: [slak]\n", ["routes[0].to[0]: unknown integration 'slak'"]),
    "several": (
        "server:\n  port: 0\n"
        "integrations:\n  ops:\n    kind: webhook\n    url: ftp://nowhere\n"
        "routes:\n  - to: [ops]\n  - to: [slak, inbox]\n"
        "default:\n  to: [inbx]\n",
        [
            "server.port: ",
            "integrations.ops.url: must be an http:// or https:// URL with a host",
            "routes[1].to[0]: unknown integration 'slak'",
            "default.to[0]: unknown integration 'inbx' (did you mean 'inbox'?)",
        ],
    ),
    "yaml-syntax": ("routes: [\n", ["bad.yaml:2:1: "]),
    "env": ("integrations:\n  ops: {kind: webhook, url: '${NOT_SET_ANYWHERE}'}\n",
            ["integrations.ops.url: environment variable NOT_SET_ANYWHERE is not set"]),
    "kind": ("integrations:\n  chat: {kind: slak}\n", ["integrations.chat.kind: unknown kind 'slak'"]),
}


@pytest.mark.parametrize("case", list(INVALID))
def test_config_validate_invalid_prints_one_line_per_problem(
    project: Project, case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    text, expected = INVALID[case]
    (project.path / "bad.yaml").write_text(text)
    ran = in_process(project.path, monkeypatch, "config", "validate", "-c", "bad.yaml")
    assert ran.code == 2, ran
    lines = ran.err.strip().splitlines()
    assert len(lines) == len(expected), lines
    for line, want in zip(lines, expected, strict=True):
        assert line.startswith("error: bad.yaml"), line
        assert want in line, (want, lines)
    assert ran.out == ""


def test_config_validate_reports_destinations_the_guard_would_refuse(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    (project.path / "guarded.yaml").write_text(
        "integrations:\n"
        "  meta: {kind: webhook, url: 'http://169.254.169.254/latest/meta-data'}\n"
        "  lan: {kind: webhook, url: 'http://10.0.0.1:8080/hook'}\n"
        "  ok: {kind: webhook, url: 'http://10.0.0.2/hook', allow_destinations: ['10.0.0.2']}\n"
    )
    ran = in_process(project.path, monkeypatch, "config", "validate", "-c", "guarded.yaml")
    assert ran.code == 2, ran
    lines = ran.err.strip().splitlines()
    assert len(lines) == 2, lines
    assert "integrations.meta.url" in lines[0] and "metadata" in lines[0], lines
    assert "integrations.lan.url" in lines[1] and "10.0.0.1 is a private address" in lines[1], lines


def test_config_validate_missing_file(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    in_process(project.path, monkeypatch, "config", "validate", "-c", "nope.yaml").one_line_error(
        "nope.yaml: no such file", code=2
    )


def test_config_validate_invalid_as_a_real_process(project: Project) -> None:
    (project.path / "tidings.yaml").write_text("server:\n  port: 0\nroutes:\n  - to: [slak]\n")
    ran = tidings(project.path, "config", "validate", process=True)
    assert ran.code == 2
    assert ran.err.splitlines() == [
        "error: tidings.yaml: server.port: Input should be greater than or equal to 1",
        "error: tidings.yaml: routes[0].to[0]: unknown integration 'slak'",
    ]


def test_every_command_reports_bad_configuration_the_same_way(project: Project) -> None:
    (project.path / "tidings.yaml").write_text("routes:\n  - to: [slak]\n")
    for args in (["send", "--title", "x"], ["integrations"]):
        tidings(project.path, *args).one_line_error("routes[0].to[0]: unknown integration 'slak'", code=2)


def test_config_schema_prints_json_schema(project: Project) -> None:
    schema = tidings(project.path, "config", "schema").ok().json
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert {"server", "integrations", "routes", "default"} <= set(schema["properties"])


# -- tokens ---------------------------------------------------------------------------------
async def test_token_create_list_revoke(project: Project) -> None:
    p = project.path
    ran = tidings(p, "token", "create", "--name", "x").ok()
    token = ran.out.strip()
    assert TOKEN.fullmatch(token), ran.out
    store = Store(f"sqlite:///{p / 'tidings.db'}")
    try:
        info = await verify_token(store, token)
        assert info is not None and info.name == "x"

        listed = tidings(p, "token", "list", "--json").ok()
        assert [t["name"] for t in listed.json] == ["admin", "x"]
        assert all(t["revoked_at"] is None for t in listed.json)
        assert token not in listed.out and project.token not in listed.out
        table = tidings(p, "token", "list").ok().out
        assert "admin" in table and " x " in table and token not in table

        assert tidings(p, "token", "revoke", "x").ok().out.strip() == "revoked 1 token(s) named x"
        assert await verify_token(store, token) is None
        assert await verify_token(store, project.token) is not None
        tidings(p, "token", "revoke", "x").one_line_error("no active token named 'x'", code=1)
        assert tidings(p, "token", "list", "--json").ok().json[1]["revoked_at"] is not None
    finally:
        await store.close()


# -- secrets and keys ----------------------------------------------------------------------------
def test_secret_set_list_delete(project: Project) -> None:
    p = project.path
    value = "xoxb-" + os.urandom(12).hex()
    ran = tidings(p, "secret", "set", "SLACK_TOKEN", stdin=value + "\n").ok()
    assert ran.out.strip() == "stored SLACK_TOKEN; use it as ${vault:SLACK_TOKEN}"
    tidings(p, "secret", "set", "OTHER", "--value", "other-value-123").ok()
    assert [s["name"] for s in tidings(p, "secret", "list", "--json").ok().json] == ["OTHER", "SLACK_TOKEN"]
    [(cipher,)] = db_rows(p, "SELECT ciphertext FROM secrets WHERE name = 'SLACK_TOKEN'")
    assert value.encode() not in bytes(cipher)
    [key] = key_file_keys(p / "tidings.key")
    assert Fernet(key.encode()).decrypt(bytes(cipher)).decode() == value
    assert value.encode() not in (p / "tidings.db").read_bytes()
    assert tidings(p, "secret", "delete", "SLACK_TOKEN").ok().out.strip() == "deleted SLACK_TOKEN"
    assert [s["name"] for s in tidings(p, "secret", "list", "--json").ok().json] == ["OTHER"]
    tidings(p, "secret", "delete", "SLACK_TOKEN").one_line_error("no secret named 'SLACK_TOKEN'", code=1)
    tidings(p, "secret", "set", "EMPTY", stdin="\n").one_line_error("the secret is empty", code=1)


def test_secret_set_without_a_key_says_how_to_get_one(project: Project) -> None:
    (project.path / "tidings.key").unlink()
    tidings(project.path, "secret", "set", "X", stdin="value-abcdef\n").one_line_error("no secret key", code=1)


def test_key_file_readable_by_others_is_refused(project: Project) -> None:
    key = project.path / "tidings.key"
    key.chmod(0o644)
    tidings(project.path, "secret", "list").one_line_error(f"chmod 600 {key}", code=1)


def test_secrets_can_be_stored_while_the_config_already_refers_to_them(project: Project) -> None:
    """The natural order: write ${vault:NAME} into tidings.yaml, then `tidings secret set NAME`."""
    p = project.path
    vault_config(project, "HOOK_SECRET")
    # Starting the hub needs the secret...
    tidings(p, "integrations").one_line_error("no secret named 'HOOK_SECRET'", "tidings secret set HOOK_SECRET", code=1)
    # ...and the command the error names must work.
    tidings(p, "secret", "set", "HOOK_SECRET", stdin=whsec() + "\n").ok()
    assert [s["name"] for s in tidings(p, "secret", "list", "--json").ok().json] == ["HOOK_SECRET"]
    names = [i["name"] for i in tidings(p, "integrations", "--json").ok().json]
    assert names == ["inbox", "signed"]


def test_wrong_key_is_a_one_line_error(project: Project) -> None:
    p = project.path
    tidings(p, "secret", "set", "HOOK_SECRET", stdin=whsec() + "\n").ok()
    vault_config(project, "HOOK_SECRET")
    tidings(p, "integrations", "--json").ok()
    tidings(p, "integrations", "--json", TIDINGS_SECRET_KEY=new_key()).one_line_error(
        "secret 'HOOK_SECRET' can't be decrypted with the configured keys", code=1
    )
    tidings(p, "integrations", TIDINGS_SECRET_KEY="not-a-key").one_line_error("not a valid Fernet key", code=1)


def test_keys_rotate_re_encrypts_every_secret(project: Project) -> None:
    p = project.path
    key_file = p / "tidings.key"
    [old] = key_file_keys(key_file)
    values = {"HOOK_SECRET": whsec(), "API_TOKEN": "api-" + os.urandom(16).hex()}
    for name, value in values.items():
        tidings(p, "secret", "set", name, stdin=value + "\n").ok()
    vault_config(project, "HOOK_SECRET")
    before = dict(db_rows(p, "SELECT name, ciphertext FROM secrets"))

    ran = tidings(p, "keys", "rotate").ok()
    assert "re-encrypted 2 secret(s)" in ran.out

    keys = key_file_keys(key_file)
    assert len(keys) == 2 and keys[1] == old and keys[0] != old, "newest first, the old one kept"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    new = keys[0]
    after = dict(db_rows(p, "SELECT name, ciphertext FROM secrets"))
    assert set(after) == set(values)
    for name, value in values.items():
        assert after[name] != before[name], f"{name} was not re-encrypted"
        assert Fernet(new.encode()).decrypt(bytes(after[name])).decode() == value

    # The new key alone reads every secret: they really were re-encrypted.
    no_file = str(p / "absent.key")
    tidings(p, "integrations", "--json", TIDINGS_SECRET_KEY=new, TIDINGS_KEY_FILE=no_file).ok()
    tidings(p, "integrations", "--json", TIDINGS_SECRET_KEY=old, TIDINGS_KEY_FILE=no_file).one_line_error(
        "can't be decrypted", code=1
    )
    # With the key file (both keys) everything still works, and a second rotation adds a third key.
    tidings(p, "integrations", "--json").ok()
    assert "re-encrypted 2 secret(s)" in tidings(p, "keys", "rotate").ok().out
    assert key_file_keys(key_file)[1:] == [new, old]


def test_keys_rotate_with_the_key_in_the_environment_prints_the_new_list(project: Project) -> None:
    p = project.path
    old = new_key()
    (p / "tidings.key").unlink()
    env = {"TIDINGS_SECRET_KEY": old}
    tidings(p, "secret", "set", "S", stdin="some-secret-value\n", **env).ok()
    ran = tidings(p, "keys", "rotate", **env).ok()
    [line] = [line for line in ran.out.splitlines() if line.startswith("TIDINGS_SECRET_KEY=")]
    keys = line.split("=", 1)[1].split(",")
    assert len(keys) == 2 and keys[1] == old and keys[0] != old
    assert not (p / "tidings.key").exists(), "the environment's keys are not written to a file"
    [(cipher,)] = db_rows(p, "SELECT ciphertext FROM secrets")
    assert Fernet(keys[0].encode()).decrypt(bytes(cipher)) == b"some-secret-value"


def test_keys_rotate_without_a_key(project: Project) -> None:
    (project.path / "tidings.key").unlink()
    tidings(project.path, "keys", "rotate").one_line_error("no key to rotate", code=1)


# -- database, integrations, version ----------------------------------------------------------------
def test_db_upgrade_prints_the_revision(project: Project, tmp_path: Path) -> None:
    assert tidings(project.path, "db", "upgrade").ok().out.strip() == f"database at revision {head()}"
    (project.path / "tidings.db").unlink()
    for extra in ("tidings.db-wal", "tidings.db-shm"):
        (project.path / extra).unlink(missing_ok=True)
    assert tidings(project.path, "db", "upgrade").ok().out.strip() == f"database at revision {head()}"
    assert db_rows(project.path, "SELECT version_num FROM alembic_version") == [(head(),)]


def test_db_prune_counts_then_removes_what_retention_no_longer_keeps(project: Project) -> None:
    p = project.path
    config = p / "tidings.yaml"
    text = config.read_text()
    assert "retention:" in text and "  messages: 30d" in text, "tidings init documents retention"
    config.write_text(text.replace("30d", "0s"))
    dry = tidings(p, "db", "prune", "--dry-run", "--json").ok().json
    assert dry["messages"] == 1 and dry["inbox"] == 1  # the demo notification, delivered
    assert db_rows(p, "SELECT count(*) FROM messages") == [(1,)]
    assert tidings(p, "db", "prune").ok().out.strip().startswith("removed: messages 1, events 0, inbox 1")
    assert db_rows(p, "SELECT count(*) FROM messages") == [(0,)]


def test_integrations_json_table_and_test(project: Project) -> None:
    p = project.path
    items = tidings(p, "integrations", "--json").ok().json
    assert [(i["name"], i["kind"], i["health"]) for i in items] == [("inbox", "inbox", "ok")]
    assert items[0]["stats"]["sent"] == 1  # the demo
    table = tidings(p, "integrations").ok().out
    assert "inbox" in table and "ok" in table
    assert tidings(p, "integrations", "test", "inbox").ok().out.strip() == "inbox: delivered"
    data = tidings(p, "integrations", "test", "inbox", "--json").ok().json
    assert data == {"integration": "inbox", "ok": True, "status": "delivered", "remote_id": None, "error": None}
    tidings(p, "integrations", "test", "nope").one_line_error("unknown integration 'nope'", code=1)


def test_integrations_test_of_an_unreachable_webhook_fails(project: Project) -> None:
    with_dead_end(project)
    ran = tidings(project.path, "integrations", "test", "down", "--json")
    assert ran.code == 1
    assert ran.json["ok"] is False and ran.json["status"] == "retry"


def test_version(tmp_path: Path) -> None:
    from tidings import __version__

    assert tidings(tmp_path, "version", process=True).ok().out.strip() == __version__


# -- serve and worker ----------------------------------------------------------------------------
def test_serve_answers_health_accepts_messages_and_stops_on_sigterm(
    project: Project, processes: list[subprocess.Popen[bytes]]
) -> None:
    p = project.path
    port = free_port()
    proc = start(processes, p, "serve", log="serve", TIDINGS_PORT=str(port))
    base = f"http://127.0.0.1:{port}"
    with httpx.Client(base_url=base, timeout=5) as client:

        def healthy() -> bool:
            assert proc.poll() is None, (p / "serve.err").read_text()
            return client.get("/healthz").status_code == 200

        wait_until(healthy, what="/healthz")
        assert client.get("/healthz").json() == {"status": "ok"}
        ready = client.get("/readyz")
        assert ready.status_code == 200 and ready.json() == {"status": "ready"}

        body = {"title": "via the API", "priority": "high", "fields": {"k": "v"}, "to": ["inbox"]}
        assert client.post("/api/v1/messages", json=body).status_code == 401
        bad = client.post("/api/v1/messages", json=body, headers={"Authorization": "Bearer tdg_nope"})
        assert bad.status_code == 401
        auth = {"Authorization": f"Bearer {project.token}"}
        accepted = client.post("/api/v1/messages", json=body, headers=auth)
        assert accepted.status_code == 202, accepted.text
        message_id = accepted.json()["id"]
        assert [d["integration"] for d in accepted.json()["deliveries"]] == ["inbox"]

        def delivered() -> bool:
            m = client.get(f"/api/v1/messages/{message_id}", headers=auth).json()
            return m["deliveries"][0]["status"] == "delivered"

        wait_until(delivered, what="delivery through the server's dispatcher")

    code, took = stop(proc)
    assert code in (0, -signal.SIGTERM, 128 + signal.SIGTERM), code
    assert took < 15
    err = (p / "serve.err").read_text()
    assert "Traceback" not in err
    inbox = tidings(p, "inbox", "--json").ok().json
    assert inbox["items"][0]["message"]["title"] == "via the API"
    assert inbox["items"][0]["message_id"] == message_id


def test_worker_delivers_what_send_no_wait_stored_and_stops_on_sigterm(
    project: Project, processes: list[subprocess.Popen[bytes]]
) -> None:
    p = project.path
    ids = [tidings(p, "send", "--title", f"queued {i}", "--no-wait", "--json").ok().json["deliveries"][0]["id"] for i in range(3)]
    assert db_rows(p, "SELECT count(*) FROM deliveries WHERE status = 'pending'") == [(3,)]
    proc = start(processes, p, "worker", log="worker")

    def all_delivered() -> bool:
        assert proc.poll() is None, (p / "worker.err").read_text()
        marks = ",".join("?" * len(ids))
        rows = db_rows(p, f"SELECT status FROM deliveries WHERE id IN ({marks})", *ids)
        return [r[0] for r in rows] == ["delivered"] * 3

    wait_until(all_delivered, what="the worker delivering")
    # Still running: a message stored now is picked up too (within its poll interval).
    later = tidings(p, "send", "--title", "while running", "--no-wait", "--json").ok().json["deliveries"][0]["id"]
    wait_until(lambda: db_rows(p, "SELECT status FROM deliveries WHERE id = ?", later) == [("delivered",)], what="late one")

    code, took = stop(proc)
    assert code == 0, (p / "worker.err").read_text()
    assert took < 15
    err = (p / "worker.err").read_text()
    assert "Traceback" not in err
    assert "worker" in err and "started" in err
    titles = [i["message"]["title"] for i in tidings(p, "inbox", "--json").ok().json["items"]]
    assert sorted(titles) == sorted(["Welcome to tidings", "queued 0", "queued 1", "queued 2", "while running"])


# -- preview, silences, events ---------------------------------------------------------------
def test_preview_renders_each_target_without_sending(project: Project) -> None:
    p = project.path
    ran = tidings(p, "preview", "--title", "Disk full", "--priority", "critical", "--field", "host=web-01").ok()
    [target] = ran.json
    assert target["integration"] == "inbox" and target["kind"] == "inbox"
    assert "Disk full" in json.dumps(target["payload"])
    assert db_rows(p, "SELECT count(*) FROM messages WHERE title = 'Disk full'") == [(0,)], "nothing stored"
    tidings(p, "preview", "--title", "x", "--to", "nowhere").one_line_error("nowhere", code=1)


def test_silences_add_list_end(project: Project) -> None:
    p = project.path
    made = tidings(p, "silences", "add", "alertname=DiskFull", "instance=web-01", "--for", "2h",
                   "--reason", "replacing the disk", "--json").ok().json
    assert made["matchers"] == {"alertname": "DiskFull", "instance": "web-01"}
    assert made["created_by"].startswith("cli:") and made["reason"] == "replacing the disk"
    assert [s["id"] for s in tidings(p, "silences", "--json").ok().json] == [made["id"]]
    table = tidings(p, "silences").ok().out
    assert made["id"] in table and "alertname=DiskFull,instance=web-01" in table
    silenced = tidings(p, "send", "--title", "disk", "--label", "alertname=DiskFull", "--label", "instance=web-01",
                       "--no-wait", "--json").ok().json
    assert [d["status"] for d in silenced["deliveries"]] == ["suppressed"]
    assert tidings(p, "silences", "end", made["id"][:13]).ok().out.strip() == f"ended silence {made['id']}"
    assert tidings(p, "silences", "--json").ok().json == []
    tidings(p, "silences", "end", made["id"]).one_line_error("no active silence", code=1)
    tidings(p, "silences", "add", "service=api", "--for", "2").one_line_error("not a duration", code=1)


def test_events_list_show_and_replay(project: Project, processes: list[subprocess.Popen[bytes]]) -> None:
    from standardwebhooks import Webhook

    p = project.path
    secret = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    config = yaml.safe_load((p / "tidings.yaml").read_text())
    config["integrations"]["partner"] = {
        "kind": "webhook", "receive_secret": secret,
        "receive": {"mapping": {"title": "{{ payload.title }}"}, "to": ["inbox"]},
    }
    (p / "tidings.yaml").write_text(yaml.safe_dump(config))
    port = free_port()
    proc = start(processes, p, "serve", log="serve", TIDINGS_PORT=str(port))
    body = json.dumps({"type": "order.failed", "title": "Order 42 failed"})
    now = time.time()
    signature = Webhook(secret).sign("msg_1", dt.datetime.fromtimestamp(now, dt.UTC), body)
    headers = {"webhook-id": "msg_1", "webhook-timestamp": str(int(now)), "webhook-signature": signature,
               "content-type": "application/json"}
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
        wait_until(lambda: proc.poll() is None and client.get("/readyz").status_code == 200, what="/readyz")
        r = client.post("/hooks/partner", content=body, headers=headers)
        assert r.status_code == 200 and r.json()["status"] == "received", r.text
        event_id = r.json()["id"]
        wait_until(lambda: db_rows(p, "SELECT status FROM events WHERE id = ?", event_id) == [("processed",)],
                   what="processing")
    stop(proc)

    [listed] = tidings(p, "events", "--json").ok().json["items"]
    assert listed["id"] == event_id and listed["event_type"] == "order.failed" and listed["status"] == "processed"
    table = tidings(p, "events", "--integration", "partner").ok().out
    assert event_id in table and "processed" in table
    assert tidings(p, "events", "--status", "failed", "--json").ok().json["items"] == []
    tidings(p, "events", "--status", "nope").one_line_error("unknown status 'nope'", code=1)
    shown = tidings(p, "events", "show", event_id).ok().json
    assert "Order 42 failed" in json.dumps(shown) and "webhook-signature" not in json.dumps(shown)
    replayed = tidings(p, "events", "replay", event_id, "--json").ok().json
    assert replayed["status"] == "received"
    assert db_rows(p, "SELECT status FROM events WHERE id = ?", event_id) == [("received",)]
    tidings(p, "events", "show", "nope").one_line_error("nope", code=1)
