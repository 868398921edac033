"""The sentinel notifier against the Azure Monitor stand-in (tests/peers/azure_monitor.py): the
record it makes, gzipped JSON-array batches under the size bound, the Entra token cached, renewed
and replaced, and every answer read into the right outcome."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
import pytest
from conftest import documented_columns, sentinel_settings
from helpers import eventually, local_context
from peer import free_port
from peers.azure_monitor import SECRET, STREAM, AzureMonitor
from pydantic import ValidationError

from tidings import Message
from tidings.integrations.base import Attempt, OutcomeStatus
from tidings.integrations.registry import integration_class
from tidings.integrations.sentinel import SentinelNotifier, SentinelSettings
from tidings.message import Field, Link, Priority

D, R, P = OutcomeStatus.DELIVERED, OutcomeStatus.RETRY, OutcomeStatus.PERMANENT


def a_message(n: int = 0, **kw: Any) -> Message:
    return Message(**{
        "title": f"disk full {n}", "body": "/var is at 99%", "priority": Priority.CRITICAL,
        "labels": {"source": "alertmanager", "env": "prod", "event_type": "alert.firing"},
        "fields": [Field("host", "web-01")], "links": [Link("runbook", "https://runbooks.example.com/disk")],
        "thread_key": "disk:web-01", "dedup_key": f"disk-{n}", **kw,
    })


def attempt(m: Message, n: int = 0) -> Attempt:
    return Attempt(f"dlv-{n}", f"msg-{n}", 1, 1_700_000_000.25 + n, m)


@pytest.fixture
async def make(azure: AzureMonitor) -> AsyncIterator[Callable[..., SentinelNotifier]]:
    made: list[SentinelNotifier] = []

    def build(**extra: Any) -> SentinelNotifier:
        settings = SentinelSettings(**sentinel_settings(azure, **extra))
        n = SentinelNotifier("sentinel", settings, local_context())
        made.append(n)
        return n

    yield build
    for n in made:
        await n.close()


async def send(n: SentinelNotifier, count: int, **kw: Any) -> list[Any]:
    messages = [a_message(i, **kw) for i in range(count)]
    return await n.send_batch([n.render(m) for m in messages], [attempt(m, i) for i, m in enumerate(messages)])


def no_secrets(azure: AzureMonitor, *texts: str | None) -> None:
    tokens = list(azure.issued)
    for text in texts:
        assert SECRET not in (text or "") and not any(t in (text or "") for t in tokens), text


# -- settings and the record -----------------------------------------------------------------------
def test_registered_and_settings_checked(azure: AzureMonitor) -> None:
    assert integration_class("sentinel") is SentinelNotifier
    s = SentinelSettings(**sentinel_settings(azure, endpoint="https://dce.westeurope-1.ingest.monitor.azure.com/"))
    assert s.endpoint == "https://dce.westeurope-1.ingest.monitor.azure.com"
    assert SECRET not in repr(s) and s.secret_values() == [SECRET]
    assert s.scope == "https://monitor.azure.com//.default" and s.api_version == "2023-01-01"
    assert SentinelSettings(**sentinel_settings(azure, client_secret="${vault:az}")).vault_refs() == {"client_secret": "az"}
    for bad in ({"endpoint": "http://dce.example.com"}, {"dcr_immutable_id": "my-rule"}, {"stream": "TidingsAlerts_CL"},
                {"authority_url": "http://login.example.com"}, {"max_request_bytes": "2MiB"}, {"tenant_id": "a/b"}):
        with pytest.raises(ValidationError):
            SentinelSettings(**sentinel_settings(azure, **bad))


def test_the_record_has_the_documented_columns(make: Callable[..., SentinelNotifier]) -> None:
    n = make()
    m = a_message(3)
    payload = n.render(m)
    assert payload == n.render(m), "pure"
    record = orjson.loads(n.record(payload, attempt(m, 3)))
    assert record == {
        "TimeGenerated": "2023-11-14T22:13:23.250Z", "MessageTitle": "disk full 3", "Body": "/var is at 99%",
        "Format": "plain", "Severity": "High", "Priority": "critical", "Project": "default",
        "Source": "alertmanager", "EventType": "alert.firing",
        "Labels": {"source": "alertmanager", "env": "prod", "event_type": "alert.firing"},
        "Fields": {"host": "web-01"}, "Links": [{"label": "runbook", "url": "https://runbooks.example.com/disk"}],
        "ThreadKey": "disk:web-01", "DedupKey": "disk-3", "Resolves": False, "MessageId": "msg-3",
        "DeliveryId": "dlv-3",
    }
    assert set(record) == set(documented_columns()[STREAM])
    assert n.render(Message("bare", priority="info")).keys() >= {"MessageTitle", "Severity"}
    assert "ThreadKey" not in n.render(Message("bare")) and n.render(Message("x", priority="info"))["Severity"] == "Informational"
    preview = n.preview(payload)
    assert preview["TimeGenerated"] == preview["MessageId"] == "(set when sent)"


# -- sending ----------------------------------------------------------------------------------------
async def test_a_batch_is_one_gzipped_array_and_one_token(make: Callable[..., SentinelNotifier], azure: AzureMonitor) -> None:
    n = make()
    outcomes = await send(n, 5)
    assert [o.status for o in outcomes] == [D] * 5 and outcomes[0].remote_id
    for _ in range(3):
        assert {o.status for o in await send(n, 2)} == {D}
    assert azure.requests == [5, 2, 2, 2] and azure.token_requests == 1
    assert all(r.gzipped for r in azure.rows) and not azure.undeclared and not azure.mistyped
    assert [r["MessageTitle"] for r in azure.records()[:5]] == [f"disk full {i}" for i in range(5)]


async def test_concurrent_sends_share_one_token_request(make: Callable[..., SentinelNotifier], azure: AzureMonitor) -> None:
    n = make()
    results = await asyncio.gather(*(send(n, 1) for _ in range(20)))
    assert all(r[0].ok for r in results) and azure.token_requests == 1


async def test_senders_waiting_for_a_failed_token_share_its_failure(make: Callable[..., SentinelNotifier],
                                                                   azure: AzureMonitor) -> None:
    n = make()
    await n.open()
    azure.fail_token("unavailable")
    results = await asyncio.gather(*(send(n, 1) for _ in range(10)))
    assert {r[0].status for r in results} == {R}, [(r[0].status, r[0].error, azure.token_requests) for r in results]
    assert azure.token_requests == 1
    assert (await send(n, 1))[0].ok and azure.token_requests == 2


async def test_a_token_is_renewed_before_it_expires(make: Callable[..., SentinelNotifier], azure: AzureMonitor) -> None:
    azure.token_lifetime = 1.0
    n = make()
    assert (await send(n, 1))[0].ok
    first = azure.token_requests

    async def renewed() -> bool:
        return (await send(n, 1))[0].ok and azure.token_requests > first

    await eventually(renewed, timeout=5, interval=0.1)
    assert azure.ingest_calls == len(azure.requests), "no request was refused for an expired token"


async def test_a_refused_token_is_replaced_once(make: Callable[..., SentinelNotifier], azure: AzureMonitor) -> None:
    n = make()
    assert (await send(n, 1))[0].ok
    azure.fail("unauthorized")
    (outcome,) = await send(n, 1)
    assert outcome.ok and azure.token_requests == 2 and azure.ingest_calls == 3


async def test_a_token_refused_twice_disables(make: Callable[..., SentinelNotifier], azure: AzureMonitor) -> None:
    n = make()
    azure.fail("unauthorized", times=2)
    outcomes = await send(n, 2)
    assert {o.status for o in outcomes} == {P} and outcomes[0].disable
    assert "HTTP 401" in (outcomes[0].error or "") and azure.token_requests == 2 and azure.ingest_calls == 2
    no_secrets(azure, outcomes[0].error)


@pytest.mark.parametrize(("change", "expect", "hint"), [
    ({"client_secret": "wrong"}, "invalid_client: AADSTS7000215: Invalid client secret provided",
     "client_secret is wrong (paste the secret's Value, not its Secret ID)"),
    ({"client_id": "11111111-2222-3333-4444-555555555555"}, "unauthorized_client: AADSTS700016",
     "client_id is not an application in this tenant"),
    ({"tenant_id": "00000000-0000-0000-0000-000000000000"}, "invalid_request: AADSTS90002",
     "tenant_id is not a known tenant"),
    ({"scope": "https://monitor.azure.com/"}, "invalid_scope: AADSTS1002012", "a client credentials scope ends in /.default"),
])
async def test_bad_credentials_are_permanent_and_disable(make: Callable[..., SentinelNotifier], azure: AzureMonitor,
                                                          change: dict[str, str], expect: str, hint: str) -> None:
    n = make(**change)
    outcomes = await send(n, 3)
    assert {o.status for o in outcomes} == {P} and all(o.disable for o in outcomes)
    error = outcomes[0].error or ""
    assert expect in error and "Entra ID token" in error and hint in error, error
    assert "Trace ID" not in error, "only the description's first line"
    assert azure.ingest_calls == 0
    no_secrets(azure, outcomes[0].error)
    test = (await n.test()).as_test()
    assert not test.ok and "would disable" in (test.error or "")


@pytest.mark.parametrize("fault", ["unavailable", "throttled"])
async def test_token_endpoint_trouble_is_retried(make: Callable[..., SentinelNotifier], azure: AzureMonitor,
                                                  fault: str) -> None:
    n = make()
    azure.fail_token(fault, retry_after=7)
    (outcome,) = await send(n, 1)
    assert outcome.status is R and not outcome.disable
    assert "Entra ID token: HTTP" in (outcome.error or "") and (fault != "throttled" or outcome.retry_after == 7)
    assert (await send(n, 1))[0].ok


async def test_no_role_on_the_dcr(make: Callable[..., SentinelNotifier], azure: AzureMonitor) -> None:
    azure.role = False
    (outcome,) = await send(make(), 1)
    assert outcome.status is P and outcome.disable
    assert "OperationFailed" in (outcome.error or "") and "Monitoring Metrics Publisher" in (outcome.error or "")


async def test_a_token_the_api_calls_invalid_with_403_is_replaced_once(make: Callable[..., SentinelNotifier],
                                                                      azure: AzureMonitor) -> None:
    n = make()
    assert (await send(n, 1))[0].ok
    azure.fail("forbidden_token")
    (outcome,) = await send(n, 1)
    assert outcome.ok and azure.token_requests == 2, outcome
    azure.fail("forbidden_token", times=2)
    (outcome,) = await send(n, 1)
    assert outcome.status is P and outcome.disable and "InvalidAuthenticationToken" in (outcome.error or "")


async def test_unknown_stream_dcr_and_bad_data(make: Callable[..., SentinelNotifier], azure: AzureMonitor) -> None:
    (unknown,) = await send(make(stream="Custom-Other_CL"), 1)
    assert unknown.status is P and unknown.disable and "InvalidStream" in (unknown.error or "")
    assert "check stream" in (unknown.error or ""), "a stream the DCR lacks fails every request: a setting"
    (version,) = await send(make(api_version="2021-11-01-preview"), 1)
    assert version.status is P and version.disable and "InvalidApiVersion" in (version.error or "")
    (no_dcr,) = await send(make(dcr_immutable_id="dcr-ffffffffffffffffffffffffffffffff"), 1)
    assert no_dcr.status is P and no_dcr.disable and "HTTP 404" in (no_dcr.error or "")
    azure.fail("bad_request", message="Record 0 is not valid: column MessageTitle is too long.")
    bad = await send(make(), 2)
    assert {o.status for o in bad} == {P} and not bad[0].disable, "bad records don't stop the next ones"
    assert "HTTP 400: InvalidRequest: Record 0 is not valid: column MessageTitle is too long." in (bad[0].error or "")


@pytest.mark.parametrize("fault", ["throttled", "unavailable", "error", "reset", "timeout"])
async def test_faults_are_retried(make: Callable[..., SentinelNotifier], azure: AzureMonitor, fault: str) -> None:
    n = make(timeout=1.0)  # a loaded machine may take longer than half a second to answer
    azure.fail(fault, retry_after=3, seconds=5)
    outcomes = await send(n, 3)
    assert {o.status for o in outcomes} == {R}
    if fault in ("throttled", "unavailable"):
        assert outcomes[0].retry_after == 3
    if fault == "unavailable":  # Microsoft's troubleshooting: a 503 can be a role not yet propagated
        assert "role not yet applied" in (outcomes[0].error or "")
    again = await send(n, 3)
    assert {o.status for o in again} == {D}, again


async def test_down_is_retried(azure: AzureMonitor) -> None:
    settings = SentinelSettings(**sentinel_settings(azure, endpoint=f"http://127.0.0.1:{free_port()}"))
    n = SentinelNotifier("sentinel", settings, local_context())
    try:
        (outcome,) = await send(n, 1)
    finally:
        await n.close()
    assert outcome.status is R and "Connect" in (outcome.error or "")


async def test_batches_are_cut_at_the_size_bound(make: Callable[..., SentinelNotifier], azure: AzureMonitor) -> None:
    n = make(max_request_bytes="16KiB")
    payloads = [n.render(a_message(i, body="x" * 3000)) for i in range(10)]
    cut = n.batch_cut(payloads)
    assert 2 <= cut <= 5
    messages = [a_message(i, body="x" * 3000) for i in range(cut)]
    assert {o.status for o in await n.send_batch(payloads[:cut], [attempt(m, i) for i, m in enumerate(messages)])} == {D}
    assert azure.requests == [cut]


async def test_one_record_too_large_is_dead_without_a_request(make: Callable[..., SentinelNotifier],
                                                              azure: AzureMonitor) -> None:
    n = make(max_request_bytes="8KiB")
    (outcome,) = await send(n, 1, body="x" * 9000)
    assert outcome.status is P and "Azure takes at most 8192" in (outcome.error or "")
    assert azure.ingest_calls == 0


async def test_413_splits_the_batch(make: Callable[..., SentinelNotifier], azure: AzureMonitor) -> None:
    azure.max_bytes = 7000
    n = make()
    outcomes = await send(n, 8, body="y" * 1200)
    assert [o.status for o in outcomes] == [D] * 8
    assert sum(azure.requests) == 8 and max(azure.requests) < 8 and azure.ingest_calls > len(azure.requests)
    assert sorted(r["DeliveryId"] for r in azure.records()) == sorted(f"dlv-{i}" for i in range(8))
    azure.max_bytes = 1000
    (single,) = await send(n, 1, body="z" * 1200)
    assert single.status is P and "HTTP 413" in (single.error or "") and "ContentLengthLimitExceeded" in (single.error or "")
    assert "Maximum allowed content length: 1000 bytes" in (single.error or "")


def test_column_names_azure_reserves_are_refused() -> None:
    """"Logs Ingestion API in Azure Monitor": _ResourceId, id, _SubscriptionId, TenantId, Type, UniqueId
    and Title are reserved column names; the record and the documented DCR use none of them."""
    with pytest.raises(ValueError, match="reserved"):
        AzureMonitor(columns={STREAM: {"TimeGenerated": "datetime", "Title": "string"}})
    (columns,) = documented_columns().values()
    assert not {"_ResourceId", "id", "_SubscriptionId", "TenantId", "Type", "UniqueId", "Title"} & set(columns)


@pytest.mark.parametrize(("status", "body", "headers", "then", "disable"), [
    (400, b"", {"x-ms-error-code": "InvalidStream"}, "done", True),
    (400, b'{"error":{"code":"InvalidRequest","message":"bad"}}', {}, "done", False),
    (403, b'{"error":{"code":"InvalidAuthenticationTokenAudience","message":"wrong audience"}}', {}, "new token", True),
    (403, b'{"error":{"code":"OperationFailed","message":"no access"}}', {}, "done", True),
    (404, b'{"error":{"code":"NotFound","message":"no such DCR"}}', {}, "done", True),
])
def test_azure_codes_decide_from_the_body_or_the_header(status: int, body: bytes, headers: dict[str, str], then: str,
                                                          disable: bool) -> None:
    from tidings.integrations.sentinel.answers import classify

    outcome, next_step = classify(status, headers, body, 3, "tok")
    assert outcome.status is P and outcome.disable is disable and next_step.value == then
    assert (headers.get("x-ms-error-code") or orjson.loads(body)["error"]["code"]) in (outcome.error or "")


async def test_the_connection_test_gets_a_token_and_ingests_nothing(make: Callable[..., SentinelNotifier],
                                                                   azure: AzureMonitor) -> None:
    n = make()
    outcome = await n.test()
    assert outcome.ok and "nothing was ingested" in (outcome.remote_id or "")
    assert azure.token_requests == 1 and azure.ingest_calls == 0
    await n.test()
    assert azure.token_requests == 2, "a test asks for a new token each time"
    no_secrets(azure, outcome.remote_id)


async def test_the_secret_travels_only_to_the_token_endpoint(make: Callable[..., SentinelNotifier],
                                                              azure: AzureMonitor) -> None:
    await send(make(), 2)
    assert SECRET.encode() in azure.bodies[0] and len(azure.bodies) == 2
    assert b'"MessageTitle":"disk full 1"' in azure.bodies[1] and SECRET.encode() not in azure.bodies[1]


async def test_the_default_bound_fills_a_request_azure_takes(make: Callable[..., SentinelNotifier],
                                                              azure: AzureMonitor) -> None:
    n = make()
    messages = [a_message(i, body="é" * 4000) for i in range(300)]
    payloads = [n.render(m) for m in messages]
    cut = n.batch_cut(payloads)
    assert 80 <= cut < 300
    outcomes = await n.send_batch(payloads[:cut], [attempt(m, i) for i, m in enumerate(messages[:cut])])
    assert {o.status for o in outcomes} == {D} and azure.requests == [cut]
    assert 900_000 < len(azure.bodies[-1]) <= 1_000_000
