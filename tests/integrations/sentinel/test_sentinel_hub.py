"""The sentinel kind through the hub and the outbox, on SQLite and PostgreSQL: records arrive as
documented, several per request, with one token for many sends; a token renewed, a token replaced,
bad credentials and a missing role that disable and hold, Azure's refusals dead with its reason,
faults that lose nothing, oversized records, preview and the integrations test — and neither the
secret nor a token in any row or log."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
from conftest import sentinel_settings
from helpers import all_status, eventually, first_deliveries, queued
from peers.azure_monitor import SECRET, AzureMonitor
from sqlalchemy import select

from tidings import Message
from tidings.audit import Actor
from tidings.security.vault import Vault, load_keys, new_key, write_key_file
from tidings.store.engine import Store
from tidings.store.tables import metadata


def config(azure: AzureMonitor, **extra: Any) -> dict[str, Any]:
    ops = sentinel_settings(azure, **{"retry": {"base": 0.05, "cap": 0.2, "max_attempts": 100},
                                      "breaker": {"min_calls": 1000}, **extra})
    return {"integrations": {"sentinel": ops}, "default": {"to": ["sentinel"]}}


async def everything(hub: Any) -> str:
    """Every row of every table, as text."""
    out = []
    async with hub.store.read() as conn:
        for table in metadata.sorted_tables:
            out += [repr(tuple(row)) for row in (await conn.execute(select(table))).all()]
    return "\n".join(out)


async def no_leaks(hub: Any, azure: AzureMonitor, capfd: pytest.CaptureFixture[str]) -> None:
    out, err = capfd.readouterr()
    for text in (await everything(hub), out, err):
        assert SECRET not in text
        assert not any(token in text for token in azure.issued)


async def test_records_arrive_as_documented_few_requests_one_token(make_hub: Any, azure: AzureMonitor,
                                                                   capfd: pytest.CaptureFixture[str]) -> None:
    cfg = config(azure)
    messages = [Message(f"alert {i}", body="disk", priority="high", labels={"source": "prometheus", "env": "prod"},
                        fields=[("host", f"web-{i}")], dedup_key=f"disk-{i}") for i in range(30)]
    ids = await queued(make_hub, cfg, messages)
    hub = await make_hub(cfg)
    done = await all_status(hub, ids)
    assert len(azure.requests) <= 4 and sum(azure.requests) == 30, azure.requests
    assert azure.token_requests == 1 and all(d["attempts"] == 1 for d in done)
    assert not azure.undeclared and not azure.mistyped and all(r.gzipped for r in azure.rows)
    assert Counter(r["DeliveryId"] for r in azure.records()) == Counter({d["id"]: 1 for d in done})
    by_id = {r["MessageId"]: r for r in azure.records()}
    assert set(by_id) == set(ids)
    first = by_id[ids[0]]
    assert first["MessageTitle"] == "alert 0" and first["Severity"] == "High" and first["Priority"] == "high"
    assert first["Source"] == "prometheus" and first["Labels"] == {"source": "prometheus", "env": "prod"}
    assert first["Fields"] == {"host": "web-0"} and first["DedupKey"] == "disk-0" and first["Project"] == "default"
    assert first["TimeGenerated"].endswith("Z")
    more = await hub.notify_many([Message(f"later {i}") for i in range(5)])
    await all_status(hub, [r.id for r in more])
    assert azure.token_requests == 1, "the token is cached across sends"
    await no_leaks(hub, azure, capfd)


async def test_a_token_is_renewed_after_it_expires(make_hub: Any, azure: AzureMonitor) -> None:
    azure.token_lifetime = 1.0
    hub = await make_hub(config(azure))
    sent: list[str] = []

    async def renewed() -> bool:
        sent.append((await hub.notify(Message(f"tick {len(sent)}"))).id)
        await all_status(hub, sent[-1:])
        return azure.token_requests >= 2

    await eventually(renewed, timeout=10, interval=0.1)
    assert all(d["attempts"] == 1 for d in await first_deliveries(hub, sent)), "no send was refused for an old token"


async def test_a_refused_token_is_replaced_and_the_record_delivered(make_hub: Any, azure: AzureMonitor) -> None:
    hub = await make_hub(config(azure))
    await all_status(hub, [(await hub.notify(Message("first"))).id])
    azure.fail("unauthorized")
    (d,) = await all_status(hub, [(await hub.notify(Message("after a revoked token"))).id])
    assert d["attempts"] == 1 and azure.token_requests == 2
    assert [r["MessageTitle"] for r in azure.records()] == ["first", "after a revoked token"]


async def test_a_bad_secret_disables_and_holds(make_hub: Any, azure: AzureMonitor,
                                               capfd: pytest.CaptureFixture[str]) -> None:
    azure.secret = "the-rotated-secret"
    cfg = config(azure, batch_max_records=1, concurrency=1)
    ids = await queued(make_hub, cfg, [Message(f"refused {i}") for i in range(3)])
    hub = await make_hub(cfg)

    async def settled() -> bool:
        return sorted(d["status"] for d in await first_deliveries(hub, ids)) == ["dead", "held", "held"]

    await eventually(settled)
    done = await first_deliveries(hub, ids)
    (dead,) = [d for d in done if d["status"] == "dead"]
    assert "invalid_client: AADSTS7000215" in dead["last_error"]
    info = {i["name"]: i for i in await hub.integrations()}["sentinel"]
    assert info["health"] == "disabled" and "AADSTS7000215" in info["disabled_reason"]
    assert azure.ingest_calls == 0
    later = await hub.notify(Message("waits"))
    assert (await first_deliveries(hub, [later.id]))[0]["status"] == "held", "written held: its integration is disabled"
    azure.secret = SECRET
    await hub.set_enabled("sentinel", True)
    held = [i for i, d in zip(ids, done, strict=True) if d["status"] == "held"]
    await all_status(hub, [later.id, *held])
    assert len(azure.rows) == 3
    await no_leaks(hub, azure, capfd)


async def test_no_role_on_the_dcr_disables_with_the_hint(make_hub: Any, azure: AzureMonitor) -> None:
    azure.role = False
    hub = await make_hub(config(azure))
    (d,) = await all_status(hub, [(await hub.notify(Message("forbidden"))).id], status="dead")
    assert "HTTP 403" in d["last_error"] and "Monitoring Metrics Publisher" in d["last_error"]
    info = {i["name"]: i for i in await hub.integrations()}["sentinel"]
    assert info["health"] == "disabled" and "Monitoring Metrics Publisher" in info["disabled_reason"]


async def test_a_refused_request_is_dead_with_azures_reason(make_hub: Any, azure: AzureMonitor) -> None:
    azure.fail("bad_request", message="The stream does not accept column 'MessageTitle' of this size.")
    hub = await make_hub(config(azure))
    (d,) = await all_status(hub, [(await hub.notify(Message("refused"))).id], status="dead")
    assert d["attempts"] == 1 and "InvalidRequest: The stream does not accept column 'MessageTitle'" in d["last_error"]
    assert {i["name"]: i for i in await hub.integrations()}["sentinel"]["health"] != "disabled"
    (ok,) = await all_status(hub, [(await hub.notify(Message("fine"))).id])
    assert ok["attempts"] == 1


@pytest.mark.parametrize("fault", [{"kind": "throttled", "retry_after": 0}, {"kind": "unavailable", "retry_after": 0},
                                   {"kind": "error"}, {"kind": "reset"}, {"kind": "timeout", "seconds": 3}])
async def test_faults_are_retried_and_nothing_is_lost(make_hub: Any, azure: AzureMonitor, fault: dict[str, Any]) -> None:
    cfg = config(azure, timeout=1.0)
    ids = await queued(make_hub, cfg, [Message(f"alert {i}") for i in range(10)])
    azure.fail(**{"times": 2, **fault})
    done = await all_status(await make_hub(cfg), ids)
    assert all(d["attempts"] >= 2 for d in done), "the first request failed for them all"
    rows = Counter(r["DeliveryId"] for r in azure.records())
    assert set(rows) == {d["id"] for d in done}
    if fault["kind"] != "timeout":  # a late answer may still ingest what timed out here
        assert set(rows.values()) == {1}


async def test_oversized_records_and_batches(make_hub: Any, azure: AzureMonitor) -> None:
    cfg = config(azure, max_request_bytes="16KiB")
    messages = [Message(f"big {i}", body="x" * 5000) for i in range(6)] + [Message("huge", body="y" * 20_000)]
    ids = await queued(make_hub, cfg, messages)
    hub = await make_hub(cfg)

    async def settled() -> bool:
        return sorted(d["status"] for d in await first_deliveries(hub, ids)) == ["dead"] + ["delivered"] * 6

    await eventually(settled)
    (dead,) = [d for d in await first_deliveries(hub, ids) if d["status"] == "dead"]
    assert "Azure takes at most 16384" in dead["last_error"] and dead["attempts"] == 1
    assert max(azure.requests) <= 3 and sum(azure.requests) == 6


async def test_413_splits_and_delivers_everything(make_hub: Any, azure: AzureMonitor) -> None:
    azure.max_bytes = 8000
    cfg = config(azure)
    ids = await queued(make_hub, cfg, [Message(f"mid {i}", body="z" * 1500) for i in range(12)])
    done = await all_status(await make_hub(cfg), ids)
    assert all(d["attempts"] == 1 for d in done) and azure.ingest_calls > len(azure.requests)
    assert Counter(r["DeliveryId"] for r in azure.records()) == Counter({d["id"]: 1 for d in done})


async def test_preview_and_test(make_hub: Any, azure: AzureMonitor) -> None:
    hub = await make_hub(config(azure))
    (preview,) = hub.preview(Message("what would go", priority="critical", thread_key="t-1"))
    payload = preview["payload"]
    assert preview["kind"] == "sentinel" and payload["TimeGenerated"] == "(set when sent)"
    assert payload["MessageTitle"] == "what would go" and payload["Severity"] == "High" and payload["ThreadKey"] == "t-1"
    assert azure.token_requests == 0 and azure.ingest_calls == 0, "a preview sends nothing"
    ok = await hub.test("sentinel")
    assert ok.ok and "nothing was ingested" in (ok.remote_id or "")
    assert azure.token_requests == 1 and azure.ingest_calls == 0
    azure.secret = "rotated"
    bad = await hub.test("sentinel")
    assert not bad.ok and "AADSTS7000215" in (bad.error or "") and "would disable" in (bad.error or "")
    assert {i["name"]: i for i in await hub.integrations()}["sentinel"]["health"] != "disabled"
    assert azure.rows == []


@pytest.fixture
async def vault(db_url: str, tmp_path: Path) -> AsyncIterator[Vault]:
    """The hub's vault as `tidings secrets set` sees it (the key file the hub reads)."""
    write_key_file(tmp_path / "tidings.key", [new_key()])
    store = Store(db_url)
    await store.migrate()
    yield Vault(store, load_keys(tmp_path))
    await store.close()


async def test_the_secret_from_the_vault_and_rotated(make_hub: Any, azure: AzureMonitor, vault: Vault,
                                                     capfd: pytest.CaptureFixture[str]) -> None:
    cli = Actor("user", name="cli:ops", auth_method="cli")
    await vault.set("AZURE_SECRET", SECRET, actor=cli)
    hub = await make_hub(config(azure, client_secret="${vault:AZURE_SECRET}"))
    await all_status(hub, [(await hub.notify(Message("with the first secret"))).id])
    rotated = "n3w~Qx8Q~rotated-client-secret-4567"
    azure.secret = rotated  # Entra now takes only the new secret (tokens already issued stay good)
    await vault.set("AZURE_SECRET", rotated, actor=cli, must_exist=True)

    async def rotated_in() -> bool:
        return hub.notifiers["sentinel"].settings.client_secret.get_secret_value() == rotated

    await eventually(rotated_in, timeout=10, interval=0.1)
    assert azure.token_requests == 1
    await all_status(hub, [(await hub.notify(Message("with the new secret"))).id])
    assert azure.token_requests == 2, "new settings, a new token: the cached one was dropped"
    assert parse_qs(azure.bodies[-2].decode())["client_secret"] == [rotated]
    assert (await hub.test("sentinel")).ok
    assert [r["MessageTitle"] for r in azure.records()] == ["with the first secret", "with the new secret"]
    out, err = capfd.readouterr()
    for text in (await everything(hub), out, err):
        assert rotated not in text and SECRET not in text
