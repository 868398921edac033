"""The vault: Fernet-encrypted secrets with rotating keys, key files, and the guarantee that no
plaintext secret ever lands in the database (DESIGN rule 7)."""

from __future__ import annotations

import base64
import os
import secrets as pysecrets
import stat
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from helpers import eventually
from sink import Reply, Sink
from sqlalchemy import select, text
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from tidings import Message
from tidings.errors import TidingsError, VaultError
from tidings.hub import Hub
from tidings.security.vault import KEY_ENV, KEY_FILE_ENV, Vault, key_file_path, load_keys, new_key, write_key_file
from tidings.store.engine import Store
from tidings.store.tables import metadata, secrets


async def ciphertexts(store: Store) -> dict[str, bytes]:
    async with store.read() as conn:
        return {r.name: bytes(r.ciphertext) for r in await conn.execute(select(secrets.c.name, secrets.c.ciphertext))}


# -- what is stored ------------------------------------------------------------------------
async def test_set_get_round_trip_overwrite_list_delete(store: Store) -> None:
    vault = Vault(store, [new_key()])
    assert vault.available
    await vault.set("OPS_TOKEN", "xoxb-first-value")
    await vault.set("B_SECRET", "ünïcødé ✓ value with spaces")
    assert await vault.get("OPS_TOKEN") == "xoxb-first-value"
    assert await vault.get("B_SECRET") == "ünïcødé ✓ value with spaces"
    await vault.set("OPS_TOKEN", "xoxb-second-value")
    assert await vault.get("OPS_TOKEN") == "xoxb-second-value"
    assert await vault.names() == ["B_SECRET", "OPS_TOKEN"]
    deleted = await vault.delete("OPS_TOKEN")
    assert deleted is not None and deleted["name"] == "OPS_TOKEN" and isinstance(deleted["purged"], bool)
    assert await vault.delete("OPS_TOKEN") is None
    assert await vault.names() == ["B_SECRET"]
    with pytest.raises(VaultError):
        await vault.get("OPS_TOKEN")


async def test_stored_value_is_fernet_ciphertext_of_the_newest_key(store: Store) -> None:
    key = new_key()
    await Vault(store, [key]).set("S", "plain-value-123")
    token = (await ciphertexts(store))["S"]
    assert b"plain-value-123" not in token
    assert Fernet(key.encode()).decrypt(token) == b"plain-value-123"


async def test_get_unknown_secret_is_a_vault_error_with_a_hint(store: Store) -> None:
    with pytest.raises(VaultError, match=r"no secret named 'NOPE'.*tidings secret set NOPE"):
        await Vault(store, [new_key()]).get("NOPE")


async def test_wrong_key_is_a_vault_error_not_a_crypto_traceback(store: Store) -> None:
    await Vault(store, [new_key()]).set("S", "value-abcdef")
    with pytest.raises(VaultError, match="can't be decrypted with the configured keys") as info:
        await Vault(store, [new_key()]).get("S")
    assert isinstance(info.value, TidingsError)
    assert info.value.__suppress_context__, "the cryptography exception must not be chained in"
    assert "value-abcdef" not in str(info.value)


async def test_no_key_means_no_vault(store: Store) -> None:
    vault = Vault(store, None)
    assert not vault.available
    with pytest.raises(VaultError, match=f"no secret key: set {KEY_ENV}"):
        await vault.set("S", "value-abcdef")
    assert await vault.names() == []


def test_a_malformed_key_is_refused() -> None:
    with pytest.raises(VaultError, match="not a valid Fernet key"):
        Vault(None, ["not-a-fernet-key"])  # type: ignore[arg-type]
    with pytest.raises(VaultError):
        Vault(None, [new_key(), "short"])  # type: ignore[arg-type]


# -- keys: files and the environment ---------------------------------------------------------
def test_key_file_is_written_0600_newest_first_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "tidings.key"
    keys = [new_key(), new_key()]
    write_key_file(path, keys)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not (tmp_path / "tidings.key.tmp").exists()
    assert load_keys(tmp_path) == keys
    lines = [line for line in path.read_text().splitlines() if line and not line.startswith("#")]
    assert lines == keys


def test_rewriting_a_too_open_key_file_makes_it_private(tmp_path: Path) -> None:
    path = tmp_path / "tidings.key"
    path.write_text(new_key() + "\n")
    path.chmod(0o644)
    write_key_file(path, [new_key()])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620, 0o660, 0o700 | 0o001])
def test_key_file_readable_by_others_is_refused_with_a_chmod_hint(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "tidings.key"
    write_key_file(path, [new_key()])
    path.chmod(mode)
    with pytest.raises(VaultError) as info:
        load_keys(tmp_path)
    assert f"chmod 600 {path}" in str(info.value)
    assert "readable by others" in str(info.value)


def test_key_file_without_keys_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "tidings.key"
    write_key_file(path, [])
    path.write_text("# only a comment\n\n")
    path.chmod(0o600)
    with pytest.raises(VaultError, match="holds no key"):
        load_keys(tmp_path)


def test_no_key_anywhere_is_none(tmp_path: Path) -> None:
    assert load_keys(tmp_path) is None


def test_key_file_location(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_FILE_ENV)
    assert key_file_path(tmp_path) == tmp_path / "tidings.key"
    monkeypatch.setenv(KEY_FILE_ENV, str(tmp_path / "elsewhere.key"))
    assert key_file_path(tmp_path) == tmp_path / "elsewhere.key"


def test_env_keys_are_comma_separated_and_win_over_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = new_key(), new_key()
    path = tmp_path / "tidings.key"
    write_key_file(path, [new_key()])
    path.chmod(0o644)  # would be refused, but the environment comes first
    monkeypatch.setenv(KEY_ENV, f" {a} ,{b},, ")
    assert load_keys(tmp_path) == [a, b]


async def test_env_key_list_decrypts_with_any_and_encrypts_with_the_first(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old, new = new_key(), new_key()
    await Vault(store, [old]).set("LEGACY", "written-with-old")
    monkeypatch.setenv(KEY_ENV, f"{new},{old}")
    vault = Vault(store, load_keys(tmp_path))
    assert await vault.get("LEGACY") == "written-with-old"
    await vault.set("FRESH", "written-with-new")
    assert await Vault(store, [new]).get("FRESH") == "written-with-new"
    with pytest.raises(VaultError):
        await Vault(store, [old]).get("FRESH")


# -- rotation --------------------------------------------------------------------------------
async def test_rotate_re_encrypts_every_secret_with_the_new_key(store: Store) -> None:
    old = new_key()
    vault = Vault(store, [old])
    values = {f"S{i}": f"value-number-{i}-{pysecrets.token_hex(4)}" for i in range(5)}
    for name, value in values.items():
        await vault.set(name, value)
    before = await ciphertexts(store)
    fresh = new_key()
    assert await vault.rotate(fresh) == 5
    assert vault.keys == [fresh, old]
    after = await ciphertexts(store)
    assert set(after) == set(before)
    assert all(after[n] != before[n] for n in values)
    only_new = Vault(store, [fresh])
    for name, value in values.items():
        assert await only_new.get(name) == value
        assert await vault.get(name) == value
    with pytest.raises(VaultError):
        await Vault(store, [old]).get("S0")
    # New writes use the new key too.
    await vault.set("S9", "after-rotation")
    assert await only_new.get("S9") == "after-rotation"


async def test_rotate_with_keys_that_cannot_read_a_secret_changes_nothing(store: Store) -> None:
    await Vault(store, [new_key()]).set("A", "readable-by-other-key")
    mine = new_key()
    vault = Vault(store, [mine])
    await vault.set("B", "readable-by-mine")
    before = await ciphertexts(store)
    with pytest.raises(VaultError, match="'A' can't be decrypted"):
        await vault.rotate(new_key())
    assert await ciphertexts(store) == before
    assert vault.keys == [mine]
    assert await vault.get("B") == "readable-by-mine"


async def test_rotate_an_empty_vault(store: Store) -> None:
    vault = Vault(store, [new_key()])
    fresh = new_key()
    assert await vault.rotate(fresh) == 0
    assert vault.keys is not None and vault.keys[0] == fresh


# -- the hub reads ${vault:NAME} -------------------------------------------------------------
async def test_hub_refuses_to_start_when_a_vault_reference_is_missing(
    make_config: Any, tmp_path: Path, sink: Sink
) -> None:
    write_key_file(tmp_path / "tidings.key", [new_key()])
    config = make_config({"integrations": {"ops": {"kind": "webhook", "url": sink.url, "secret": "${vault:MISSING}"}}})
    hub = Hub(config, config_dir=tmp_path)
    with pytest.raises(VaultError, match="MISSING"):
        await hub.start()
    assert not hub.started


# -- THE test: no plaintext secret in the database -----------------------------------------------
def _b64_forms(secret: bytes) -> set[bytes]:
    """Every way ``secret`` could appear base64-encoded inside a longer base64 string: the
    encoding's stable core at each of the three byte alignments, standard and URL-safe."""
    forms = set()
    for pad in range(3):
        for enc in (base64.b64encode, base64.urlsafe_b64encode):
            encoded = enc(b"\0" * pad + secret).rstrip(b"=")
            core = encoded[4 if pad else 0 : -4]
            assert len(core) >= 16
            forms.add(core)
    return forms


def forbidden_forms(*secrets_: str | bytes) -> dict[bytes, str]:
    """Byte strings that must never appear, mapped to a description for the failure message."""
    out: dict[bytes, str] = {}
    for s in secrets_:
        raw = s.encode() if isinstance(s, str) else s
        label = f"secret ending {raw[-4:]!r}"
        out[raw] = f"plaintext of {label}"
        out[raw.hex().encode()] = f"hex of {label}"
        for form in _b64_forms(raw):
            out[form] = f"base64 of {label}"
    return out


def assert_absent(haystack: bytes, forbidden: dict[bytes, str], where: str) -> None:
    found = [desc for needle, desc in forbidden.items() if needle in haystack]
    assert not found, f"{where} contains: {found}"


async def database_bytes(store: Store) -> dict[str, bytes]:
    """SQLite: the raw bytes of the database file, its WAL and shared memory. PostgreSQL: the text
    of every row of every table (bytea rendered as hex)."""
    if store.is_sqlite:
        path = store.sqlite_path
        assert path is not None
        files = {}
        for suffix in ("", "-wal", "-shm", "-journal"):
            f = Path(str(path) + suffix)
            if f.exists():
                files[f.name] = f.read_bytes()
        assert path.name in files
        return files
    tables = [t.name for t in metadata.sorted_tables] + ["alembic_version"]
    out = {}
    async with store.read() as conn:
        for name in tables:
            rows = await conn.execute(text(f'SELECT t::text FROM "{name}" t'))
            out[name] = "\n".join(r[0] for r in rows).encode()
    return out


async def test_no_plaintext_secret_ever_lands_in_the_database(
    db_url: str, make_hub: Any, sink: Sink, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    signing_key = os.urandom(24)
    whsec = "whsec_" + base64.b64encode(signing_key).decode()
    header_token = "hdr-" + pysecrets.token_urlsafe(24)
    api_key = "sk_live_" + pysecrets.token_urlsafe(24)
    fernet_key = new_key()
    write_key_file(tmp_path / "tidings.key", [fernet_key])
    monkeypatch.setenv("OPS_HEADER_TOKEN", header_token)

    # Secrets go into the vault first, as `tidings secret set` does.
    setup = Store(db_url)
    await setup.migrate()
    vault = Vault(setup, load_keys(tmp_path))
    await vault.set("OPS_SIGNING", whsec)
    await vault.set("UNUSED_API_KEY", api_key)
    await setup.close()

    hub = await make_hub(
        {
            "integrations": {
                "ops": {
                    "kind": "webhook",
                    "url": sink.url + "/hook",
                    "secret": "${vault:OPS_SIGNING}",
                    "headers": {"X-Api-Token": "${OPS_HEADER_TOKEN}", "X-Team": "ops"},
                    "retry": {"base": 0.05, "cap": 0.1, "max_attempts": 5},
                    "breaker": {"failures": 100},
                }
            },
            "default": {"to": ["ops"]},
        }
    )
    echo = f"rejected token={header_token} secret={whsec} key={api_key}"
    sink.script(
        200,
        Reply(400, body=echo),  # permanent: dead, with the (masked) answer as its error
        Reply(503, body=echo),  # retryable: the error is stored while it waits
        200,
    )
    ok = await hub.notify(Message("first", "fine"))
    assert (await hub.wait(ok.id))["deliveries"][0]["status"] == "delivered"
    rejected = await hub.notify(Message("second", "rejected"))
    dead = (await hub.wait(rejected.id))["deliveries"][0]
    assert dead["status"] == "dead"
    flaky = await hub.notify(Message("third", "flaky"))
    retrying = (await hub.wait(flaky.id))["deliveries"][0]
    assert retrying["status"] == "retrying"

    # Errors were stored, masked.
    for d in (dead, retrying):
        assert d["last_error"].startswith("HTTP "), d
        assert "…" + header_token[-4:] in d["last_error"]
        assert header_token not in d["last_error"] and whsec not in d["last_error"] and api_key not in d["last_error"]

    async def delivered() -> bool:
        return (await hub.message(flaky.id))["deliveries"][0]["status"] == "delivered"

    await eventually(delivered)
    more = await hub.notify_many([Message(f"bulk {i}") for i in range(10)])
    for r in more:
        await hub.wait(r.id)

    # Every request was signed with the secret from the vault and carried the header token.
    assert len(sink.received) == 4 + 10
    verifier = Webhook(whsec)
    impostor = Webhook("whsec_" + base64.b64encode(os.urandom(24)).decode())
    for r in sink.received:
        headers = {k.lower(): v for k, v in r.headers.items()}
        assert headers["x-api-token"] == header_token
        body = verifier.verify(r.body, headers)
        assert body["id"] == headers["webhook-id"]
        with pytest.raises(WebhookVerificationError):
            impostor.verify(r.body, headers)

    forbidden = forbidden_forms(whsec, signing_key, header_token, api_key, fernet_key)
    assert hub.store is not None
    for name, data in (await database_bytes(hub.store)).items():
        assert_absent(data, forbidden, f"{name} (hub running)")
    # The ciphertext is there, so the search did look at the right place.
    everything = b"".join((await database_bytes(hub.store)).values())
    assert b"OPS_SIGNING" in everything
    assert b"rejected token=" in everything

    await hub.stop()
    check = Store(db_url)
    try:
        for name, data in (await database_bytes(check)).items():
            assert_absent(data, forbidden, f"{name} (after stop)")
    finally:
        await check.close()


def test_the_search_would_find_a_base64_copy() -> None:
    """The checker itself: base64 of a secret inside a longer string is found at any offset."""
    secret = b"hdr-" + pysecrets.token_urlsafe(24).encode()
    forbidden = forbidden_forms(secret)
    for prefix in (b"", b"x", b"xy", b"xyz"):
        for enc in (base64.b64encode, base64.urlsafe_b64encode):
            haystack = b"row:" + enc(prefix + secret + b"-trailer") + b";"
            with pytest.raises(AssertionError):
                assert_absent(haystack, forbidden, "test")
    with pytest.raises(AssertionError):
        assert_absent(b"\\x" + secret.hex().encode(), forbidden, "test")
    assert_absent(b"unrelated bytes", forbidden, "test")
