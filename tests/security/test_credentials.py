"""The credential manager on SQLite and PostgreSQL: metadata after set, rotate and use; references
from the configuration; delete refused while referenced; every change audited in its transaction
with metadata only; deleted and overwritten ciphertexts gone from the database's files."""

from __future__ import annotations

import secrets as pysecrets
from pathlib import Path
from typing import Any

import pytest
from helpers import PG_URL, eventually
from sqlalchemy import select, text

from tidings.audit import Actor
from tidings.audit.verify import read_entries
from tidings.config import parse_config
from tidings.errors import NotFound, VaultError
from tidings.security import credentials, redact
from tidings.security import vault as vault_module
from tidings.security.credentials import (
    SecretInUse,
    check_fits,
    delete_secret,
    list_secrets,
    masked,
    references,
    show_secret,
)
from tidings.security.vault import MAX_VALUE, Vault, check_name, check_value, new_key
from tidings.store.engine import Store
from tidings.store.tables import secrets

ALICE = Actor("user", id="u1", name="alice@example.com", auth_method="session", ip="192.0.2.7")
BOB = Actor("token", id="u2", name="bob@example.com", auth_method="token", token_id="t2")
WHSEC = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo="


def config(**integrations: dict[str, Any]) -> Any:
    return parse_config({"integrations": integrations})


REFERRING = config(
    ops={"kind": "webhook", "url": "https://example.com/hook", "secret": "${vault:HOOK}"},
    partner={"kind": "webhook", "url": "https://example.org/in", "secret": "${vault:HOOK}",
             "receive": {"to": ["inbox"]}, "receive_secret": "${vault:PARTNER_IN}"},
    chat={"kind": "slack", "token": "${vault:SLACK_TOKEN}", "channel": "#ops"},
)


async def ciphertext(store: Store, name: str) -> bytes:
    async with store.read() as conn:
        return bytes((await conn.execute(select(secrets.c.ciphertext).where(secrets.c.name == name))).scalar_one())


def value(n: int = 24) -> str:
    return "v-" + pysecrets.token_urlsafe(n)


# -- metadata ------------------------------------------------------------------------------------
async def test_set_records_who_and_when_and_rotation_keeps_the_creation(store: Store) -> None:
    vault = Vault(store, [new_key()])
    first = await vault.set("API", value(), actor=ALICE)
    assert first["created"] is True and first["created_by"] == "alice@example.com"
    assert first["rotated_at"] is None and first["rotated_by"] is None and first["last_used_at"] is None
    info = await vault.info("API")
    assert info == {k: first[k] for k in vault_module.METADATA}

    new = value()
    rotated = await vault.set("API", new, actor=BOB, must_exist=True)
    assert rotated["created"] is False
    after = await vault.info("API")
    assert after is not None
    assert after["created_at"] == first["created_at"] and after["created_by"] == "alice@example.com"
    assert after["rotated_by"] == "bob@example.com" and after["rotated_at"] == after["updated_at"]
    assert after["updated_at"] > first["updated_at"]
    assert await vault.get("API") == new


async def test_rotating_an_unknown_secret_is_not_found_and_changes_nothing(store: Store) -> None:
    vault = Vault(store, [new_key()])
    with pytest.raises(NotFound, match="no secret named 'NOPE'"):
        await vault.set("NOPE", value(), actor=ALICE, must_exist=True)
    assert await vault.names() == []
    assert await read_entries(store) == [], "a refused change leaves no audit entry"


async def test_every_change_is_audited_with_metadata_only(store: Store) -> None:
    vault = Vault(store, [new_key()])
    one, two = value(), value()
    await vault.set("API", one, actor=ALICE)
    await vault.set("API", two, actor=BOB)
    await vault.delete("API", actor=ALICE)
    entries = await read_entries(store)
    assert [(e["action"], e["target"], e["actor_name"]) for e in entries] == [
        ("secret.set", "secret/API", "alice@example.com"),
        ("secret.rotate", "secret/API", "bob@example.com"),
        ("secret.delete", "secret/API", "alice@example.com"),
    ]
    assert entries[0]["before"] is None and entries[0]["after"]["created_by"] == "alice@example.com"
    assert entries[1]["before"]["rotated_at"] is None and entries[1]["after"]["rotated_by"] == "bob@example.com"
    assert entries[2]["before"]["rotated_by"] == "bob@example.com" and entries[2]["after"] == {"deleted": True}
    for e in entries:
        assert set(e["before"] or {}) <= set(vault_module.METADATA)
        assert set(e["after"]) <= {*vault_module.METADATA, "deleted"}
    dump = repr(entries)
    assert one not in dump and two not in dump and "…" not in dump


async def test_an_audit_failure_rolls_the_change_back(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    vault = Vault(store, [new_key()])
    await vault.set("API", "first-value-123456", actor=ALICE)

    async def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("audit down")

    monkeypatch.setattr(vault_module, "append", broken)
    with pytest.raises(RuntimeError):
        await vault.set("API", "second-value-123456", actor=BOB)
    with pytest.raises(RuntimeError):
        await vault.delete("API", actor=BOB)
    assert await vault.get("API") == "first-value-123456"
    assert (await vault.info("API"))["rotated_by"] is None  # type: ignore[index]


async def test_last_used_is_written_at_most_once_a_minute_and_not_audited(store: Store) -> None:
    vault = Vault(store, [new_key()])
    await vault.set("A", value())
    await vault.set("B", value())
    before = await read_entries(store)
    assert await vault.mark_used(["A", "B", "UNKNOWN"], now=1000.0) == ["A", "B", "UNKNOWN"]
    assert (await vault.info("A"))["last_used_at"] == 1000.0  # type: ignore[index]
    assert await vault.mark_used(["A"], now=1030.0) == []
    assert (await vault.info("A"))["last_used_at"] == 1000.0  # type: ignore[index]
    # Another process (its own Vault) within the minute: the database condition holds it back too.
    await Vault(store, None).mark_used(["A"], now=1045.0)
    assert (await vault.info("A"))["last_used_at"] == 1000.0  # type: ignore[index]
    assert await vault.mark_used(["A"], now=1061.0) == ["A"]
    assert (await vault.info("A"))["last_used_at"] == 1061.0  # type: ignore[index]
    assert (await vault.info("B"))["last_used_at"] == 1000.0  # type: ignore[index]
    assert await read_entries(store) == before
    updated = (await vault.info("A"))["updated_at"]  # type: ignore[index]
    assert updated < 1e12 and (await vault.versions(["A"])) == {"A": updated}, "use is not a change of value"


async def test_a_new_key_keeps_every_secrets_metadata(store: Store) -> None:
    """`tidings keys rotate` re-encrypts: not a new value, so no rotated_at/rotated_by."""
    vault = Vault(store, [new_key()])
    await vault.set("A", value(), actor=ALICE)
    await vault.set("B", value(), actor=ALICE)
    await vault.set("B", value(), actor=BOB)
    await vault.mark_used(["A"], now=1234.0)
    before = {i["name"]: i for i in await vault.infos()}
    assert await vault.rotate(new_key()) == 2
    after = {i["name"]: i for i in await vault.infos()}
    for name in ("A", "B"):
        for key in ("created_at", "created_by", "rotated_at", "rotated_by", "last_used_at"):
            assert after[name][key] == before[name][key], (name, key)
    assert after["A"]["rotated_at"] is None


# -- references, show, delete --------------------------------------------------------------------
def test_references_name_every_integration_per_secret() -> None:
    assert references(REFERRING) == {"HOOK": ["ops", "partner"], "PARTNER_IN": ["partner"], "SLACK_TOKEN": ["chat"]}
    assert references(config()) == {}


async def test_list_and_show_carry_references_and_never_the_value(store: Store) -> None:
    vault = Vault(store, [new_key()])
    hook, short = WHSEC, "pin-12345"
    await vault.set("HOOK", hook, actor=ALICE)
    await vault.set("UNUSED", short, actor=ALICE)
    listed = await list_secrets(vault, REFERRING)
    assert [(i["name"], i["references"]) for i in listed] == [("HOOK", ["ops", "partner"]), ("UNUSED", [])]
    shown = await show_secret(vault, REFERRING, "HOOK")
    assert shown["masked"] == "…" + hook[-4:] and shown["references"] == ["ops", "partner"]
    assert (await show_secret(vault, REFERRING, "UNUSED"))["masked"] == "…"
    assert hook not in repr(listed) + repr(shown) and short not in repr(listed)
    with pytest.raises(NotFound):
        await show_secret(vault, REFERRING, "NOPE")
    # Keys that can't decrypt it: the metadata still shows, the masked value is null.
    assert (await show_secret(Vault(store, [new_key()]), REFERRING, "HOOK"))["masked"] is None


async def test_delete_is_refused_while_referenced_unless_forced(store: Store) -> None:
    vault = Vault(store, [new_key()])
    await vault.set("HOOK", WHSEC, actor=ALICE)
    await vault.set("FREE", value(), actor=ALICE)
    audited = len(await read_entries(store))
    with pytest.raises(SecretInUse, match=r"'HOOK' is referenced by ops, partner") as refused:
        await delete_secret(vault, REFERRING, "HOOK", actor=BOB)
    assert refused.value.integrations == ["ops", "partner"]
    assert await vault.names() == ["FREE", "HOOK"] and len(await read_entries(store)) == audited

    freed = await delete_secret(vault, REFERRING, "FREE", actor=BOB)
    assert freed["references"] == [] and freed["name"] == "FREE"
    forced = await delete_secret(vault, REFERRING, "HOOK", force=True, actor=BOB)
    assert forced["references"] == ["ops", "partner"]
    assert await vault.names() == []
    last = (await read_entries(store))[-1]
    assert last["action"] == "secret.delete" and last["after"] == {"deleted": True, "forced": True,
                                                                   "references": ["ops", "partner"]}
    for name in ("HOOK", "NOPE"):  # gone, or never there: not found, referenced or not
        with pytest.raises(NotFound):
            await delete_secret(vault, REFERRING, name, actor=BOB)


# -- values ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(("bad", "why"), [
    ("", "empty"),
    ("abc\x00def", "NUL"),
    ("x" * (MAX_VALUE + 1), "at most 64 KiB"),
    ("é" * (MAX_VALUE // 2 + 1), "at most 64 KiB"),  # under the limit in characters, over it in bytes
    ("abc\ud800def", "lone surrogate"),
])
async def test_bad_values_are_refused_and_nothing_is_stored(store: Store, bad: str, why: str) -> None:
    vault = Vault(store, [new_key()])
    with pytest.raises(ValueError, match=why):
        await vault.set("S", bad)
    assert await vault.names() == [] and await read_entries(store) == []


def test_the_largest_value_and_names_a_reference_can_hold() -> None:
    assert len(check_value("x" * MAX_VALUE)) == MAX_VALUE
    for good in ("A", "slack-token", "team/ops.hook_2"):
        assert check_name(good) == good
    for bad in ("", "with space", "a" * 201, "ünï", "x}", "a\x00"):
        with pytest.raises(ValueError, match="secret name"):
            check_name(bad)


def test_masking_shows_four_characters_only_of_long_values() -> None:
    assert masked("x" * 15) == "…"
    assert masked("abc") == "…"
    assert masked("0123456789abcdef") == "…cdef"
    assert masked(WHSEC) == "…" + WHSEC[-4:]
    assert credentials.SHOW_TAIL_FROM == 16


def test_a_value_an_integration_would_refuse_is_refused_without_showing_it() -> None:
    check_fits(REFERRING, "SLACK_TOKEN", "xoxb-0000-fine")
    check_fits(REFERRING, "UNREFERENCED", "anything at all")
    wrong = "not-a-slack-token-1234567890"
    with pytest.raises(ValueError, match=r"integrations\.chat\.token refers to SLACK_TOKEN.*xoxb-") as info:
        check_fits(REFERRING, "SLACK_TOKEN", wrong)
    assert wrong not in str(info.value)
    with pytest.raises(ValueError, match=r"integrations\.ops\.secret.*whsec_"):
        check_fits(REFERRING, "HOOK", "plain-secret-value-123")


async def test_a_new_value_is_masked_in_logs_from_the_moment_it_is_stored(store: Store) -> None:
    vault = Vault(store, [new_key()])
    await vault.set("API", value(), actor=ALICE)
    fresh = value()
    assert redact.redact(f"token={fresh}") == f"token={fresh}", "not known before it is stored"
    await vault.set("API", fresh, actor=BOB)
    assert redact.redact(f"token={fresh}") == f"token=…{fresh[-4:]}"
    # ...and in another process, which learns it when it reads it (a running hub resolving it).
    other = "o-" + pysecrets.token_urlsafe(24)
    async with store.write() as conn:  # stored by "someone else": encrypt by hand, no register()
        from cryptography.fernet import Fernet

        key = vault.keys[0]  # type: ignore[index]
        await conn.execute(secrets.update().where(secrets.c.name == "API").values(
            ciphertext=Fernet(key.encode()).encrypt(other.encode())))
    assert redact.redact(other) == other
    assert await vault.get("API") == other
    assert redact.redact(other) == "…" + other[-4:]


# -- removed for good ------------------------------------------------------------------------------
def _sqlite_files(store: Store) -> bytes:
    path = store.sqlite_path
    assert path is not None
    return b"".join(Path(str(path) + s).read_bytes() for s in ("", "-wal", "-journal") if Path(str(path) + s).exists())


@pytest.mark.parametrize("db", ["sqlite"])
async def test_sqlite_leaves_no_byte_of_a_deleted_or_overwritten_ciphertext(store: Store) -> None:
    vault = Vault(store, [new_key()])
    names = [f"S{i:02}" for i in range(40)]
    for name in names:  # small ones inline, large ones on overflow pages
        await vault.set(name, value(2000 if name in ("S03", "S07") else 40))
    kept = {n: await ciphertext(store, n) for n in names}
    overwritten = {n: kept[n] for n in names[::4]}
    for name in overwritten:
        await vault.set(name, value())
    deleted = {n: await ciphertext(store, n) for n in ("S03", "S07", "S10", "S11")}
    for name in deleted:
        result = await vault.delete(name)
        assert result is not None and result["purged"] is True
    files = _sqlite_files(store)
    assert not Path(str(store.sqlite_path) + "-wal").stat().st_size, "the WAL was truncated"
    for name, cipher in {**overwritten, **deleted}.items():
        assert cipher not in files, f"{name}: an old ciphertext is still in the database's files"
    for name in set(names) - set(overwritten) - set(deleted):
        assert kept[name] in files, "the scan looks where the ciphertexts are"


@pytest.mark.parametrize("db", ["sqlite"])
async def test_without_secure_delete_a_deleted_ciphertext_stays_in_the_file(store: Store) -> None:
    """Why the vault deletes as it does: a plain DELETE leaves the bytes in the freed space."""
    vault = Vault(store, [new_key()])
    for i in range(10):
        await vault.set(f"S{i}", value(40))
    cipher = await ciphertext(store, "S4")
    async with store.write() as conn:
        await conn.execute(secrets.delete().where(secrets.c.name == "S4"))
    assert await vault.purge() is True
    assert cipher in _sqlite_files(store)


@pytest.mark.parametrize("db", ["postgresql"])
async def test_postgresql_rewrites_the_table_without_the_deleted_row(store: Store) -> None:
    vault = Vault(store, [new_key()])
    await vault.set("SMALL", value(40))
    await vault.set("LARGE", value(12_000))  # out of line, in the TOAST table
    await vault.set("KEPT", value(40))
    ciphers = {n: await ciphertext(store, n) for n in ("SMALL", "LARGE", "KEPT")}

    async def files() -> tuple[list[str], bytes] | None:
        """The table's and its TOAST table's files (superusers only: pg_read_binary_file)."""
        async with store.write() as conn:
            paths = [p for (p,) in await conn.execute(text(
                "SELECT pg_relation_filepath(c.oid) FROM pg_class c WHERE c.oid = 'secrets'::regclass "
                "UNION ALL SELECT pg_relation_filepath(c.reltoastrelid) FROM pg_class c "
                "WHERE c.oid = 'secrets'::regclass"))]
            if not (await conn.execute(text("SELECT rolsuper FROM pg_roles WHERE rolname = current_user"))).scalar():
                return None
        async with store.engine.connect() as conn:  # type: ignore[union-attr]
            auto = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await auto.exec_driver_sql("CHECKPOINT")  # what is in shared buffers reaches the files
            data = b""
            for path in paths:
                read = text("SELECT pg_read_binary_file(:p, 0, 67108864, true)")
                data += (await auto.execute(read, {"p": path})).scalar() or b""
        return paths, data

    def share(cipher: bytes, data: bytes) -> float:
        """The share of the ciphertext's 64-byte pieces in ``data`` (TOAST stores it in chunks)."""
        pieces = [cipher[i:i + 64] for i in range(0, len(cipher) - 63, 64)]
        return sum(p in data for p in pieces) / len(pieces)

    before = await files()
    if before is not None:
        assert all(share(c, before[1]) > 0.9 for c in ciphers.values()), "the scan looks where the ciphertexts are"
    async with store.read() as conn:
        node = (await conn.execute(text("SELECT pg_relation_filenode('secrets')"))).scalar()
    for name in ("SMALL", "LARGE"):
        result = await vault.delete(name)
        assert result is not None
        if not result["purged"]:  # a transaction older than the delete (another test's) kept it: again
            await eventually(vault.purge, timeout=60, interval=0.2)
    async with store.read() as conn:
        assert (await conn.execute(text("SELECT pg_relation_filenode('secrets')"))).scalar() != node
    assert await vault.names() == ["KEPT"]
    after = await files()
    if after is None:
        pytest.skip("not a superuser: the table was rewritten, but its files can't be read to check")
    assert share(ciphers["KEPT"], after[1]) == 1.0
    assert share(ciphers["SMALL"], after[1]) == 0 and share(ciphers["LARGE"], after[1]) == 0
    assert before is not None and set(after[0]).isdisjoint(before[0]), "new files: the old ones are unlinked"


async def test_a_failed_purge_is_reported_not_raised(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    vault = Vault(store, [new_key()])
    await vault.set("A", value())

    async def stuck() -> bool:
        raise VaultError("lock timeout")

    monkeypatch.setattr(vault, "_truncate_wal" if store.is_sqlite else "_vacuum_full", stuck)
    result = await vault.delete("A")
    assert result is not None and result["purged"] is False
    assert await vault.names() == []



@pytest.mark.parametrize("db", ["postgresql"])
async def test_postgresql_says_so_while_an_older_transaction_may_still_see_the_row(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    import psycopg

    monkeypatch.setattr(vault_module, "PURGE_WAIT", 0.3)
    vault = Vault(store, [new_key()])
    await vault.set("A", value())
    with psycopg.connect(PG_URL) as older:
        older.execute("SELECT txid_current()")  # a transaction that began before the delete, still open
        result = await vault.delete("A")
        assert result is not None and result["purged"] is False
    assert await vault.names() == [], "deleted all the same"
    await eventually(vault.purge, timeout=60, interval=0.2)
