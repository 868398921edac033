"""`tidings audit ...` and the audited CLI commands (``cli_support.tidings``: in this process): what is recorded, the
exit codes of verify and verify-export, the export verified offline with the public key alone."""

from __future__ import annotations

import getpass
import json
import stat
from pathlib import Path

import pytest
from cli_support import TIDINGS, Project, db_rows, tidings, with_dead_end

pytestmark = pytest.mark.skipif(not TIDINGS.exists(), reason=f"{TIDINGS} is not installed")
ME = f"cli:{getpass.getuser()}"


def entries(project: Project, *args: str) -> list[dict[str, object]]:
    return tidings(project.path, "audit", "list", "--json", "--limit", "500", *args).ok().json["items"]  # type: ignore[no-any-return]


def sql(project: Project, statement: str) -> None:
    import sqlite3

    conn = sqlite3.connect(project.path / "tidings.db")
    try:
        conn.execute(statement)
        conn.commit()
    finally:
        conn.close()


def test_init_writes_the_signing_key_and_public_key_prints_it(project: Project) -> None:
    key = project.path / "tidings.audit.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and key.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    printed = tidings(project.path, "audit", "public-key").ok().out.strip()
    assert len(printed) == 44 and printed.endswith("=")
    pem = tidings(project.path, "audit", "public-key", "--pem").ok().out
    assert pem.startswith("-----BEGIN PUBLIC KEY-----") and "PRIVATE" not in pem
    as_json = tidings(project.path, "audit", "public-key", "--json").ok().json
    assert as_json["public_key"] == printed and len(as_json["key_id"]) == 16
    tidings(project.path, "audit", "keygen").one_line_error("exists", code=1)  # never replaced by accident
    key.unlink()
    tidings(project.path, "audit", "public-key").one_line_error("no audit signing key", "audit keygen", code=1)
    made = tidings(project.path, "audit", "keygen", "--json").ok().json
    assert made["key_file"] == str(key) and made["public_key"] != printed


def test_the_audited_commands_record_who_ran_them(project: Project) -> None:
    p = project.path
    with_dead_end(project)
    earlier = len(entries(project, "--actor", ME))  # init's: the site admin and the first token
    made = tidings(p, "silences", "add", "service=api", "--for", "1h", "--json").ok().json
    tidings(p, "silences", "end", made["id"]).ok()
    tidings(p, "integrations", "disable", "inbox").ok()
    tidings(p, "integrations", "enable", "inbox").ok()
    tidings(p, "secret", "set", "S1", "--value", "v-1234567890").ok()
    tidings(p, "keys", "rotate").ok()
    doomed = tidings(p, "send", "--to", "down", "--title", "doomed", "--json")
    [dead] = doomed.json["deliveries"]
    tidings(p, "retry", dead["id"]).ok()
    delivered = tidings(p, "send", "--to", "inbox", "--title", "fine", "--json").ok().json["deliveries"][0]
    before = len(entries(project))
    tidings(p, "retry", delivered["id"]).one_line_error("delivered", code=1)  # refused: nothing recorded
    assert len(entries(project)) == before
    mine = [(e["action"], e["target"]) for e in reversed(entries(project, "--actor", ME))][earlier:]
    assert mine == [
        ("silence.create", f"silence/{made['id']}"), ("silence.end", f"silence/{made['id']}"),
        ("integration.disable", "integration/inbox"), ("integration.enable", "integration/inbox"),
        ("secret.set", "secret/S1"), ("keys.rotate", "keys"), ("delivery.retry", f"delivery/{dead['id']}"),
    ]
    [rotated] = entries(project, "--action", "keys.rotate")
    assert rotated["auth_method"] == "cli" and rotated["actor"] == "user" and rotated["after"]["secrets"] == ["S1"]
    assert "v-1234567890" not in json.dumps(entries(project))


def test_list_filters_and_pages(project: Project) -> None:
    p = project.path
    for i in range(2):
        tidings(p, "silences", "add", f"service=s{i}", "--for", "1h").ok()
    assert [e["action"] for e in entries(project, "--action", "silence.*")] == ["silence.create"] * 2
    assert entries(project, "--action", "silence.end") == []
    assert len(entries(project, "--project", "default")) == 2
    assert entries(project, "--actor", "nobody@example.com") == []
    assert len(entries(project, "--since", "1h")) == len(entries(project))
    page = tidings(p, "audit", "list", "--json", "--limit", "2").ok().json
    assert len(page["items"]) == 2 and page["next"] == page["items"][-1]["seq"]
    rest = tidings(p, "audit", "list", "--json", "--before", str(page["next"])).ok().json
    assert [e["seq"] for e in rest["items"]] == list(range(page["next"] - 1, 0, -1)) and rest["next"] is None
    table = tidings(p, "audit", "list", "--limit", "2").ok().out
    assert "silence.create" in table and f"{ME} (cli)" in table and f"more: --before {page['next']}" in table
    tidings(p, "audit", "list", "--action", "DROP TABLE").one_line_error("action", code=1)
    tidings(p, "audit", "list", "--since", "soon").one_line_error(code=1)
    tidings(p, "audit", "list", "--since", "0s").one_line_error("positive", code=1)


def test_verify_exit_codes_name_the_entry(project: Project) -> None:
    p = project.path
    base = len(entries(project))  # init's entries (the site admin, the first token)
    for i in range(2):
        tidings(p, "silences", "add", f"service=s{i}", "--for", "1h").ok()
    last = base + 2
    signed = tidings(p, "audit", "checkpoint", "--json").ok().json
    assert signed["created"] is True and signed["tree_size"] == last
    assert tidings(p, "audit", "checkpoint", "--json").ok().json["created"] is False
    ok = tidings(p, "audit", "verify").ok()
    assert f"entries 1..{last} verified against 1 signed checkpoint" in ok.out
    assert tidings(p, "audit", "verify", "--json").ok().json == {"ok": True, "first": 1, "last": last, "checkpoints": 1}
    assert tidings(p, "audit", "verify", "--from-checkpoint", "--json").ok().json["first"] == last + 1
    sql(project, f"UPDATE audit_log SET target = 'silence/forged' WHERE seq = {base + 1}")
    tidings(p, "audit", "verify").one_line_error(f"entry {base + 1} was changed", code=1)
    bad = tidings(p, "audit", "verify", "--json")
    assert bad.code == 1 and bad.json == {"ok": False, "seq": base + 1, "reason": "was changed"}


def test_export_verifies_offline_and_a_cut_tail_is_caught(project: Project, tmp_path: Path) -> None:
    p = project.path
    base = len(entries(project))  # init's entries
    for i in range(3):
        tidings(p, "silences", "add", f"service=s{i}", "--for", "1h").ok()
    last = base + 3
    tidings(p, "audit", "checkpoint").ok()
    export = tmp_path / "trail.jsonl"
    wrote = tidings(p, "audit", "export", "-o", str(export), "--json").ok().json
    assert wrote == {"file": str(export), "entries": last, "checkpoints": 1}
    assert stat.S_IMODE(export.stat().st_mode) == 0o600
    assert tidings(p, "audit", "export").ok().out.encode() == export.read_bytes()  # stdout is the same file
    key = tidings(p, "audit", "public-key").ok().out.strip()
    (tmp_path / "auditor.pub").write_text(key + "\n")
    offline = tmp_path / "elsewhere"  # no config, no database, no private key: the file and the public key
    offline.mkdir()
    assert f"entries 1..{last} verified" in tidings(offline, "audit", "verify-export", str(export), "--public-key", key).ok().out
    tidings(offline, "audit", "verify-export", str(export), "--public-key", str(tmp_path / "auditor.pub")).ok()
    forged = tmp_path / "forged.jsonl"
    forged.write_text(export.read_text().replace("service=s2", "service=zz").replace('"s2"', '"zz"'))
    tidings(offline, "audit", "verify-export", str(forged), "--public-key", key).one_line_error(f"entry {last} was changed", code=1)
    other = tidings(offline, "audit", "keygen", "--json").ok().json["public_key"]
    tidings(offline, "audit", "verify-export", str(export), "--public-key", other).one_line_error(
        "signature is invalid", code=1)
    tidings(offline, "audit", "verify-export", str(export), "--public-key", "not-a-key").one_line_error(
        "not an Ed25519 public key", code=1)
    tidings(offline, "audit", "verify-export", str(tmp_path / "auditor.pub"), "--public-key", key).one_line_error(
        "not a tidings-audit-export-v1 file", code=1)
    # Cut the tail and every stored checkpoint: only the exported checkpoint shows it.
    sql(project, "DELETE FROM audit_log WHERE seq >= 3")
    sql(project, "DELETE FROM audit_checkpoints")
    tidings(p, "audit", "verify").ok()
    tidings(p, "audit", "verify", "--checkpoints", str(export)).one_line_error("entry 3 is missing", "tail was cut", code=1)
    partial = tidings(p, "audit", "export", "--since", "1h", "--json", "-o", str(tmp_path / "p.jsonl")).ok().json
    assert partial["entries"] == 2


def test_a_running_server_signs_checkpoints(project: Project, processes: list) -> None:  # type: ignore[type-arg]
    """`tidings serve` runs the checkpointer: with checkpoint_every 3, three changes get signed."""
    import yaml
    from cli_support import free_port, start, wait_until

    config = yaml.safe_load((project.path / "tidings.yaml").read_text())
    config["audit"] = {"checkpoint_every": 3, "checkpoint_interval": "1h"}
    config["dispatcher"] = {"poll_interval": 0.2}
    (project.path / "tidings.yaml").write_text(yaml.safe_dump(config))
    port = free_port()
    start(processes, project.path, "serve", "--port", str(port), log="serve")
    for i in range(3):
        tidings(project.path, "silences", "add", f"service=s{i}", "--for", "1h").ok()

    def signed() -> bool:
        return bool(db_rows(project.path, "SELECT tree_size FROM audit_checkpoints WHERE tree_size >= 3"))

    wait_until(signed, timeout=30, what="a checkpoint signed by the server")
    assert tidings(project.path, "audit", "verify", "--json").ok().json["checkpoints"] >= 1
