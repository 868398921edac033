"""The audit chain on SQLite and PostgreSQL: appended in the change's transaction, and every kind of
tampering with the stored rows named at the exact entry."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select, text

from tidings.audit import (
    SYSTEM,
    Actor,
    Entry,
    Problem,
    Signer,
    Verified,
    append,
    append_many,
    load_signer,
    make_checkpoint,
)
from tidings.audit import verify as verify_module
from tidings.audit.checkpoints import AuditKeyError, load_checkpoints
from tidings.audit.export import ExportError, export_lines, read_checkpoints, verify_export
from tidings.audit.verify import iter_entry_batches, read_entries, verify_store
from tidings.security import redact
from tidings.store.engine import Store
from tidings.store.tables import audit_checkpoints, audit_log, silences

ALICE = Actor("user", id="u1", name="alice@example.com", auth_method="session", ip="192.0.2.7", user_agent="curl/8")


async def _fill(store: Store, n: int) -> None:
    for i in range(n):
        async with store.write() as conn:
            await append(conn, ALICE, "silence.create", target=f"silence/{i}", project="default",
                         after={"matchers": {"service": f"api-{i}"}, "until": 1_700_000_000.5 + i})


@pytest.fixture
def signer() -> Signer:
    return Signer(Ed25519PrivateKey.generate())


async def test_entries_chain_and_verify(store: Store, signer: Signer) -> None:
    await _fill(store, 5)
    rows = await read_entries(store)
    assert [r["seq"] for r in rows] == [1, 2, 3, 4, 5]
    assert rows[0]["prev_hash"] == "0" * 64
    assert all(b["prev_hash"] == a["hash"] for a, b in zip(rows, rows[1:], strict=False))
    assert rows[2]["actor_name"] == "alice@example.com" and rows[2]["after"]["matchers"] == {"service": "api-2"}
    await make_checkpoint(store, signer)
    assert await verify_store(store, signer.public_key) == Verified(1, 5, 1)


async def test_entries_appended_together_chain_as_one_by_one(store: Store, signer: Signer) -> None:
    """``append_many`` (an import's page): the same chain, secrets masked, verified like any other."""
    await _fill(store, 2)
    redact.register(["ghp_very_secret_token_98765"])
    async with store.write() as conn:
        assert await append_many(conn, ALICE, []) == []
        made = await append_many(conn, ALICE, [
            Entry("task.create", target="T-1", project="default", after={"title": "one", "labels": ("a",)}),
            Entry("sync.link", target="T-1", project="default", after={"token": "ghp_very_secret_token_98765"}),
            Entry("task.create", target="T-2", project="default", after={"title": "two"}, outcome="ok"),
        ])
        await append(conn, SYSTEM, "task.update", target="T-2")
    assert [e["seq"] for e in made] == [3, 4, 5]
    rows = await read_entries(store)
    assert [(r["seq"], r["action"], r["actor_name"]) for r in rows[2:]] == [
        (3, "task.create", "alice@example.com"), (4, "sync.link", "alice@example.com"), (5, "task.create", "alice@example.com"),
        (6, "task.update", "tidings")]
    assert all(b["prev_hash"] == a["hash"] for a, b in zip(rows, rows[1:], strict=False))
    assert rows[2]["after"]["labels"] == ["a"] and "very_secret" not in str(rows[3])
    assert [r["hash"] for r in rows[2:5]] == [e["hash"] for e in made]
    await make_checkpoint(store, signer)
    assert await verify_store(store, signer.public_key) == Verified(1, 6, 1)


async def test_an_entry_commits_and_rolls_back_with_its_change(store: Store) -> None:
    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        async with store.write() as conn:
            await conn.execute(silences.insert().values(id="s1", matchers={}, until=1.0, created_at=0.0, created_by="x"))
            await append(conn, SYSTEM, "silence.create", target="silence/s1")
            raise Boom
    async with store.read() as conn:
        assert (await conn.execute(select(audit_log))).all() == []
        assert (await conn.execute(select(silences))).all() == []
    async with store.write() as conn:
        await append(conn, SYSTEM, "silence.create", target="silence/s2")
    assert [r["seq"] for r in await read_entries(store)] == [1]  # gap-free after a rollback


async def test_secrets_are_masked_before_hashing(store: Store) -> None:
    redact.register(["xoxb-very-secret-token-123456"])
    async with store.write() as conn:
        await append(conn, ALICE, "integration.update", before={"token": "xoxb-very-secret-token-123456"})
    row = (await read_entries(store))[0]
    assert "very-secret" not in str(row) and row["before"]["token"].startswith("…")
    assert isinstance(await verify_store(store, None), Verified)


@pytest.mark.parametrize(
    ("sql", "seq", "words"),
    [
        ("UPDATE audit_log SET target = 'silence/forged' WHERE seq = 4", 4, "was changed"),
        ("UPDATE audit_log SET at = at + 1 WHERE seq = 1", 1, "was changed"),
        ("DELETE FROM audit_log WHERE seq = 3", 3, "deleted"),
        # insert in the middle: renumber the tail, then put a forged row at 4
        ("UPDATE audit_log SET seq = seq + 100 WHERE seq >= 4;"
         "UPDATE audit_log SET seq = seq - 99 WHERE seq >= 100;"
         "INSERT INTO audit_log (seq, at, actor, action, outcome, prev_hash, hash) "
         "SELECT 4, at, actor, 'token.create', outcome, hash, hash FROM audit_log WHERE seq = 3", 4, "inserted"),
        # swap entries 2 and 3
        ("UPDATE audit_log SET seq = 100 WHERE seq = 2; UPDATE audit_log SET seq = 2 WHERE seq = 3;"
         "UPDATE audit_log SET seq = 3 WHERE seq = 100", 2, "out of order"),
        ("INSERT INTO audit_log (seq, at, actor, action, outcome, prev_hash, hash) "
         "VALUES (7, 1.0, 'user', 'forged', 'ok', 'x', 'y')", 7, "inserted"),
    ],
    ids=["edit", "edit-time", "delete", "insert", "reorder", "append-forged"],
)
async def test_tampering_is_named_at_the_exact_entry(store: Store, signer: Signer, sql: str, seq: int, words: str) -> None:
    await _fill(store, 6)
    async with store.write() as conn:
        for statement in sql.split(";"):
            await conn.execute(text(statement))
    result = await verify_store(store, signer.public_key)
    assert isinstance(result, Problem), result
    assert result.seq == seq and words in result.reason, result


async def test_a_rewritten_chain_is_caught_by_a_signed_checkpoint(store: Store, signer: Signer) -> None:
    """Whoever edits an entry and recomputes every hash after it still can't forge the checkpoint."""
    await _fill(store, 6)
    await make_checkpoint(store, signer)
    from tidings.audit.chain import entry_hash

    rows = await read_entries(store)
    rows[2]["target"] = "silence/forged"
    prev = rows[1]["hash"]
    async with store.write() as conn:
        for row in rows[2:]:
            row["prev_hash"] = prev
            row["hash"] = prev = entry_hash(prev, row)
            await conn.execute(audit_log.update().where(audit_log.c.seq == row["seq"]).values(
                target=row["target"], prev_hash=row["prev_hash"], hash=row["hash"]))
    result = await verify_store(store, signer.public_key)
    assert isinstance(result, Problem) and result.seq == 6 and "checkpoint" in result.reason, result
    # and a checkpoint re-signed with another key is refused
    forger = Signer(Ed25519PrivateKey.generate())
    async with store.write() as conn:
        await conn.execute(audit_checkpoints.delete())
    await make_checkpoint(store, forger)
    result = await verify_store(store, signer.public_key)
    assert isinstance(result, Problem) and "signature is invalid" in result.reason


async def test_a_cut_tail_is_caught_against_an_exported_checkpoint(store: Store, signer: Signer) -> None:
    await _fill(store, 8)
    assert await make_checkpoint(store, signer) is not None
    exported = await export_lines(store, signer.public_key)  # shipped off-box
    async with store.write() as conn:  # cut entries 6..8 and every stored checkpoint with them
        await conn.execute(text("DELETE FROM audit_log WHERE seq >= 6"))
        await conn.execute(text("DELETE FROM audit_checkpoints"))
    assert isinstance(await verify_store(store, signer.public_key), Verified)  # nothing inside shows it
    kept = read_checkpoints(exported)
    assert [cp.tree_size for cp in kept] == [8]
    result = await verify_store(store, signer.public_key, extra_checkpoints=kept)
    assert isinstance(result, Problem) and result.seq == 6 and "tail was cut" in result.reason, result
    # and a fresh export of the cut trail, checked offline, is caught the same way by the old checkpoint
    fresh = await export_lines(store, signer.public_key)
    assert isinstance(verify_export(fresh, signer.public_key), Verified)
    spliced = [fresh[0], *exported[1:2], *fresh[1:]]
    result = verify_export(spliced, signer.public_key)
    assert isinstance(result, Problem) and result.seq == 6 and "tail was cut" in result.reason, result


async def test_verify_from_the_last_checkpoint(store: Store, signer: Signer) -> None:
    await _fill(store, 4)
    await make_checkpoint(store, signer)
    await _fill(store, 3)
    assert await verify_store(store, signer.public_key, from_checkpoint=True) == Verified(5, 7, 0)


async def test_export_verifies_offline_with_the_public_key_alone(store: Store, signer: Signer) -> None:
    await _fill(store, 5)
    await make_checkpoint(store, signer)
    await _fill(store, 2)
    lines = await export_lines(store, signer.public_key)
    assert verify_export(lines, signer.public_key) == Verified(1, 7, 1)
    partial = await export_lines(store, signer.public_key, since_seq=6)
    assert len(partial) == 1 + 2 + 1 and verify_export(partial, signer.public_key) == Verified(6, 7, 0)
    tampered = [line.replace(b"silence/3", b"silence/9") for line in lines]
    result = verify_export(tampered, signer.public_key)
    assert isinstance(result, Problem) and result.seq == 4 and "changed" in result.reason
    other = Signer(Ed25519PrivateKey.generate())
    result = verify_export(lines, other.public_key)
    assert isinstance(result, Problem) and "signature is invalid" in result.reason


async def test_checkpoint_only_when_the_head_moved(store: Store, signer: Signer) -> None:
    assert await make_checkpoint(store, signer) is None
    await _fill(store, 2)
    assert (await make_checkpoint(store, signer)) is not None
    assert await make_checkpoint(store, signer) is None
    assert [cp.tree_size for cp in await load_checkpoints(store)] == [2]


def test_the_signing_key_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TIDINGS_AUDIT_KEY", raising=False)
    assert load_signer(tmp_path) is None
    made = load_signer(tmp_path, create=True)
    path = tmp_path / "tidings.audit.key"
    assert made is not None and oct(path.stat().st_mode & 0o777) == "0o600"
    again = load_signer(tmp_path)
    assert again is not None and again.key_id == made.key_id
    path.chmod(0o644)
    with pytest.raises(AuditKeyError, match="readable by others"):
        load_signer(tmp_path)
    monkeypatch.setenv("TIDINGS_AUDIT_KEY", "not a key")
    with pytest.raises(AuditKeyError, match="not a PEM"):
        load_signer(tmp_path)


async def test_entries_are_read_in_batches_by_seq(store: Store) -> None:
    await _fill(store, 7)
    sizes = [[e["seq"] for e in batch] async for batch in iter_entry_batches(store, 0, batch=3)]
    assert sizes == [[1, 2, 3], [4, 5, 6], [7]]
    assert [[e["seq"] for e in b] async for b in iter_entry_batches(store, 2, until=5, batch=2)] == [[3, 4], [5]]


@pytest.mark.parametrize(
    ("sql", "seq", "words"),
    [
        ("UPDATE audit_log SET seq = 100 WHERE seq = 4; UPDATE audit_log SET seq = 4 WHERE seq = 5;"
         "UPDATE audit_log SET seq = 5 WHERE seq = 100", 4, "out of order"),
        ("UPDATE audit_log SET action = 'forged' WHERE seq = 9", 9, "was changed"),
        ("DELETE FROM audit_log WHERE seq = 5", 5, "deleted"),
    ],
    ids=["reorder-across-batches", "edit-in-a-later-batch", "delete-at-a-batch-start"],
)
async def test_verify_streams_and_still_names_the_entry(
    store: Store, signer: Signer, monkeypatch: pytest.MonkeyPatch, sql: str, seq: int, words: str
) -> None:
    """Entries are checked a batch at a time (4 here); a divergence at a batch boundary is named
    all the same (the look-ahead reads on into the next batch)."""
    monkeypatch.setattr(verify_module, "BATCH", 4)
    await _fill(store, 10)
    await make_checkpoint(store, signer)
    assert await verify_store(store, signer.public_key) == Verified(1, 10, 1)
    async with store.write() as conn:
        for statement in sql.split(";"):
            await conn.execute(text(statement))
    result = await verify_store(store, signer.public_key)
    assert isinstance(result, Problem) and result.seq == seq and words in result.reason, result


async def test_an_export_that_is_not_one_is_refused(store: Store, signer: Signer) -> None:
    await _fill(store, 3)
    await make_checkpoint(store, signer)
    lines = await export_lines(store, signer.public_key)
    assert lines[0].startswith(b'{"type":"tidings-audit-export-v1"') and b'"checkpoint"' in lines[1]
    with pytest.raises(ExportError, match="not a tidings-audit-export-v1"):
        verify_export([b"not json", *lines[1:]], signer.public_key)
    with pytest.raises(ExportError, match="not a tidings-audit-export-v1"):
        verify_export([], signer.public_key)
    with pytest.raises(ExportError, match="line 3 is not JSON"):
        verify_export([lines[0], lines[1], b"{oops", *lines[2:]], signer.public_key)
    with pytest.raises(ExportError, match="checkpoints come first"):
        verify_export([lines[0], *lines[2:], lines[1]], signer.public_key)
    with pytest.raises(ExportError, match="unknown line type"):
        verify_export([lines[0], b'{"type": "mystery"}'], signer.public_key)
    with pytest.raises(ExportError, match="not a checkpoint"):
        read_checkpoints([b'{"type": "checkpoint", "tree_size": 3}'])
    # a checkpoint dropped from the export: the rest still verifies, against fewer checkpoints
    assert verify_export([lines[0], *lines[2:]], signer.public_key) == Verified(1, 3, 0)


_WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from tidings import Hub
    from tidings.audit import Actor
    from tidings.config import parse_config

    async def main(url, who, n):
        config = parse_config({"server": {"database": url}, "integrations": {"inbox": {"kind": "inbox"}}})
        actor = Actor("token", id=f"tok-{who}", name=who, auth_method="token")
        async with Hub(config, dispatch=False, migrate=False) as hub:
            async def one(i):  # two audited changes: a silence made, then ended
                silence, _ = await hub.silence({"service": f"{who}-{i}"}, 600, by=who, actor=actor)
                assert await hub.unsilence(silence.id, actor=actor) is not None
            for start in range(0, n, 25):
                await asyncio.gather(*(one(i) for i in range(start, min(n, start + 25))))

    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]) // 2))
    """
)


@pytest.mark.slow
async def test_two_processes_changing_concurrently_make_one_unbroken_chain(pg_url: str, signer: Signer) -> None:
    """1,000 audited changes (silences made and ended through the hub), 500 from each of two OS
    processes at once, and the configuration's first revision: one chain, seq 1..1001 without a
    gap, every change there once."""
    store = Store(pg_url)
    await store.migrate()
    try:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
        procs = [subprocess.Popen([sys.executable, "-c", _WRITER, pg_url, who, "500"], env=env) for who in ("a", "b")]
        codes = await asyncio.gather(*(asyncio.to_thread(p.wait, 300) for p in procs))
        assert codes == [0, 0]
        rows = await read_entries(store)
        # The first hub to start imported the configuration (one revision, one entry); the other found it.
        assert [r["action"] for r in rows].count("config.revision") == 1
        assert [r["seq"] for r in rows] == list(range(1, 1002))
        assert all(b["prev_hash"] == a["hash"] for a, b in zip(rows, rows[1:], strict=False))
        changes = [r for r in rows if r["action"] != "config.revision"]
        by = {(r["actor_name"], r["action"]) for r in changes}
        assert by == {(w, a) for w in ("a", "b") for a in ("silence.create", "silence.end")}
        assert len({(r["action"], r["target"]) for r in changes}) == 1000  # each change exactly once
        interleaved = sum(1 for a, b in zip(changes, changes[1:], strict=False) if a["actor_name"] != b["actor_name"])
        assert interleaved > 2, "the two processes did write at the same time"
        await make_checkpoint(store, signer)
        assert await verify_store(store, signer.public_key) == Verified(1, 1001, 1)
    finally:
        await store.close()
