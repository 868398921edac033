"""Checkpoints signed by a running hub, every N entries or M minutes; with many workers on
PostgreSQL each tree size is signed once."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from helpers import eventually

from tidings.audit import SYSTEM, Signer, Verified, append, load_signer, make_checkpoint, verify_store
from tidings.audit.checkpointer import Checkpointer
from tidings.audit.checkpoints import load_checkpoints
from tidings.config.models import AuditSettings
from tidings.store.engine import Store

CONFIG = {"integrations": {"inbox": {"kind": "inbox"}}}


async def _changes(hub: Any, n: int) -> None:
    for i in range(n):
        await hub.silence({"service": f"s{i}"}, 60, by="test")


@pytest.fixture
def signer(tmp_path: Path) -> Signer:
    """The hub's key: tidings.audit.key beside the test's tidings.key."""
    made = load_signer(tmp_path, create=True)
    assert made is not None and (tmp_path / "tidings.audit.key").exists()
    return made


async def test_a_running_hub_signs_a_checkpoint_every_n_entries(make_hub: Any, signer: Signer) -> None:
    hub = await make_hub({**CONFIG, "audit": {"checkpoint_every": 5, "checkpoint_interval": "1d"}})
    assert hub.checkpointer is not None and hub.checkpointer.poll == 1.0
    await _changes(hub, 2)  # after the start's own entry (the configuration's first revision)
    assert not await hub.checkpointer.due()  # 3 < 5 and younger than a day
    await _changes(hub, 3)

    async def signed() -> bool:
        return [cp.tree_size for cp in await load_checkpoints(hub.store)] == [6]

    await eventually(signed, timeout=10)
    await _changes(hub, 5)

    async def again() -> bool:
        return [cp.tree_size for cp in await load_checkpoints(hub.store)] == [6, 11]

    await eventually(again, timeout=10)
    assert await verify_store(hub.store, signer.public_key) == Verified(1, 11, 2)


async def test_a_running_hub_signs_once_the_oldest_entry_is_old_enough(make_hub: Any, signer: Signer) -> None:
    hub = await make_hub({**CONFIG, "audit": {"checkpoint_every": 1000, "checkpoint_interval": "2s"}})
    await _changes(hub, 2)

    async def signed() -> bool:
        return [cp.tree_size for cp in await load_checkpoints(hub.store)] == [3]  # the start's revision, 2 changes

    await eventually(signed, timeout=10)
    [cp] = await load_checkpoints(hub.store)
    entries_at = [e["at"] async for e in _entries(hub.store)]
    assert cp.at - entries_at[0] >= 2.0 and cp.valid(signer.public_key)


async def _entries(store: Store) -> Any:
    from tidings.audit.verify import iter_entries

    async for e in iter_entries(store):
        yield e


async def test_a_hub_without_a_key_signs_nothing_and_says_why(make_hub: Any, tmp_path: Path) -> None:
    assert not (tmp_path / "tidings.audit.key").exists()
    hub = await make_hub({**CONFIG, "audit": {"checkpoint_every": 1}})
    assert hub.checkpointer is None
    cli = await make_hub(CONFIG, dispatch=False)  # a CLI command's hub never runs background tasks
    assert cli.checkpointer is None


async def test_a_key_others_can_read_stops_the_hub(make_hub: Any, signer: Signer, tmp_path: Path) -> None:
    from tidings.audit.checkpoints import AuditKeyError

    (tmp_path / "tidings.audit.key").chmod(0o644)
    with pytest.raises(AuditKeyError, match="readable by others"):
        await make_hub(CONFIG)


async def test_the_checkpointer_decides_under_the_lock(store: Store) -> None:
    """Checkpointers of many workers racing on the same head sign it once."""
    signer = Signer(Ed25519PrivateKey.generate())
    for i in range(7):
        async with store.write() as conn:
            await append(conn, SYSTEM, "silence.create", target=f"silence/{i}")
    workers = [Checkpointer(store, signer, AuditSettings(checkpoint_every=5), poll=1.0) for _ in range(8)]
    made = await asyncio.gather(*(w.tick() for w in workers))
    assert [cp.tree_size for cp in made if cp is not None] == [7]
    assert [cp.tree_size for cp in await load_checkpoints(store)] == [7]
    assert not await workers[0].due()
    # Not due: fewer than `every` new entries, and none old enough.
    async with store.write() as conn:
        await append(conn, SYSTEM, "silence.end", target="silence/0")
    assert await make_checkpoint(store, signer, every=5, interval=3600) is None
    assert (await make_checkpoint(store, signer, every=5, interval=0.0)) is not None  # old enough


@pytest.mark.parametrize("db", ["postgresql"])
async def test_two_workers_on_postgresql_sign_each_size_once(make_hub: Any, signer: Signer) -> None:
    settings = {**CONFIG, "audit": {"checkpoint_every": 3, "checkpoint_interval": "1s"}}
    a, b = await make_hub(settings), await make_hub(settings)
    await asyncio.gather(_changes(a, 10), _changes(b, 10))

    async def signed_head() -> bool:  # 20 changes and the first hub's revision (the second found it)
        sizes = [cp.tree_size for cp in await load_checkpoints(a.store)]
        return bool(sizes) and sizes[-1] == 21

    await eventually(signed_head, timeout=15)
    sizes = [cp.tree_size for cp in await load_checkpoints(a.store)]
    assert sizes == sorted(set(sizes))
    assert await verify_store(a.store, signer.public_key) == Verified(1, 21, len(sizes))
    assert (a.revision, b.revision) == (1, 1)
