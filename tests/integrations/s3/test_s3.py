"""The s3 kind against moto's S3 server on 127.0.0.1 (through a real hub and outbox, on SQLite and
PostgreSQL): objects at the right keys with the message as the API shows it, SSE and Object Lock
headers sent, wrong credentials and a missing bucket classified (disabled, later deliveries held),
SlowDown / 500 / resets retried with nothing lost and no duplicate, preview, and `integrations test`."""

from __future__ import annotations

import gzip
import json
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from helpers import eventually, local_context
from pydantic import ValidationError
from s3_local import KEY_ID, SECRET, FaultProxy

from tidings import Message
from tidings.integrations.base import Attempt, OutcomeStatus
from tidings.integrations.s3 import S3Notifier, S3Settings, object_key


def archive(endpoint: str, bucket: str, **extra: Any) -> dict[str, Any]:
    return {
        "kind": "s3", "bucket": bucket, "prefix": "tidings/prod", "endpoint_url": endpoint,
        "access_key_id": KEY_ID, "secret_access_key": SECRET, "timeout": 5,
        "retry": {"base": 0.05, "cap": 0.2, "max_attempts": 20}, "breaker": {"min_calls": 1000},
        **extra,
    }


def routed(ops: dict[str, Any]) -> dict[str, Any]:
    return {"integrations": {"archive": ops}, "default": {"to": ["archive"]}}


def keys(s3: Any, bucket: str) -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]


def read(s3: Any, bucket: str, key: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    return data


def notifier(endpoint: str, bucket: str, **extra: Any) -> S3Notifier:
    return S3Notifier("archive", S3Settings(**archive(endpoint, bucket, **extra)), local_context())


def attempt(message: Message, message_id: str = "msg_0001", created_at: float = 1_767_225_600.0) -> Attempt:
    return Attempt("dlv_0001", message_id, 1, created_at, message)


# -- settings -----------------------------------------------------------------------------------------
def test_settings_are_checked() -> None:
    base = archive("http://127.0.0.1:9000", "my-bucket")
    assert S3Settings(**base).key_prefix == "tidings/prod/"
    assert S3Settings(**{**base, "prefix": "/a/b/"}).key_prefix == "a/b/"
    assert S3Settings(**{**base, "prefix": ""}).key_prefix == ""
    for bad, needle in [
        ({"bucket": "My_Bucket"}, "bucket name"),
        ({"prefix": "a//b"}, "key prefix"),
        ({"kms_key_id": "alias/x"}, "kms_key_id needs sse"),
        ({"secret_access_key": None}, "go together"),
        ({"endpoint_url": "ftp://x"}, r"http\(s\) URL"),
        ({"endpoint_url": "http://user:pw@x"}, "no credentials"),
        ({"object_lock": {"mode": "LEGAL", "days": 1}}, "GOVERNANCE"),
        ({"include": ["acks"]}, "deliveries"),
    ]:
        with pytest.raises(ValidationError, match=needle):
            S3Settings(**{**base, **bad})
    s = S3Settings(**{**base, "access_key_id": "${vault:s3_key}", "secret_access_key": "${vault:s3_secret}"})
    assert s.vault_refs() == {"access_key_id": "s3_key", "secret_access_key": "s3_secret"}
    assert set(S3Settings(**base).secret_values()) == {KEY_ID, SECRET}
    locked = S3Settings(**{**base, "object_lock": {"mode": "COMPLIANCE", "days": 7}})
    assert locked.checks_existing and not S3Settings(**base).checks_existing


def test_a_missing_extra_is_a_clear_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "aiobotocore" else real(name, *a))
    with pytest.raises(ValidationError, match=r"pip install 'tidings\[s3\]'"):
        S3Settings(**archive("http://127.0.0.1:9000", "my-bucket"))


def test_the_key_is_the_utc_day_and_the_message_id() -> None:
    at = datetime(2026, 3, 9, 23, 59, 59, tzinfo=UTC).timestamp()
    assert object_key("p/", at, "msg_1") == "p/2026/03/09/msg_1.json"
    assert object_key("", at + 1, "msg_1") == "2026/03/10/msg_1.json"


# -- the notifier against moto ------------------------------------------------------------------------
async def test_a_put_and_a_retry_write_one_object(moto: str, s3: Any, bucket: str) -> None:
    n = notifier(moto, bucket)
    message = Message("Disk full ü 東京", "92%", priority="critical", fields={"host": "web-01"},
                      labels={"source": "prometheus"}, thread_key="disk", dedup_key="d1")
    for _ in range(2):
        out = await n.send(n.render(message), attempt(message))
        assert out.ok, out.error
    await n.close()
    key = "tidings/prod/2026/01/01/msg_0001.json"
    assert keys(s3, bucket) == [key]
    assert out.remote_id is not None and out.remote_id.startswith(f"s3://{bucket}/{key} ")
    got = read(s3, bucket, key)
    assert got == {"id": "msg_0001", "created_at": 1_767_225_600.0, "project": "default", "title": "Disk full ü 東京",
                   "body": "92%", "priority": "critical", "format": "plain", "fields": [["host", "web-01"]],
                   "links": [], "labels": {"source": "prometheus"}, "thread_key": "disk", "dedup_key": "d1",
                   "resolves": False, "source": "prometheus"}
    head = s3.head_object(Bucket=bucket, Key=key)
    assert head["ContentType"] == "application/json"
    assert "ServerSideEncryption" not in head or head["ServerSideEncryption"] == "AES256"  # moto may default it


@pytest.mark.parametrize("sse", ["AES256", "aws:kms"])
async def test_server_side_encryption_is_asked_for(moto: str, s3: Any, bucket: str, sse: str) -> None:
    extra: dict[str, Any] = {"sse": sse}
    if sse == "aws:kms":
        extra["kms_key_id"] = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    n = notifier(moto, bucket, **extra)
    out = await n.send(n.render(Message("secret")), attempt(Message("secret")))
    await n.close()
    assert out.ok, out.error
    head = s3.head_object(Bucket=bucket, Key=keys(s3, bucket)[0])
    assert head["ServerSideEncryption"] == sse
    if sse == "aws:kms":
        assert head["SSEKMSKeyId"] == extra["kms_key_id"]


async def test_object_lock_retention_is_set_and_a_retry_makes_no_new_version(
    moto: str, s3: Any, locked_bucket: str
) -> None:
    n = notifier(moto, locked_bucket, object_lock={"mode": "COMPLIANCE", "days": 30})
    before = datetime.now(UTC)
    first = await n.send(n.render(Message("kept")), attempt(Message("kept")))
    again = await n.send(n.render(Message("kept")), attempt(Message("kept")))
    await n.close()
    assert first.ok and again.ok, (first.error, again.error)
    assert again.remote_id is not None and " unchanged " in again.remote_id
    (key,) = keys(s3, locked_bucket)
    versions = s3.list_object_versions(Bucket=locked_bucket, Prefix=key)["Versions"]
    assert len(versions) == 1, "the retry found the same bytes and wrote nothing"
    head = s3.head_object(Bucket=locked_bucket, Key=key)
    assert head["ObjectLockMode"] == "COMPLIANCE"
    until = head["ObjectLockRetainUntilDate"]
    assert before + timedelta(days=30) - timedelta(seconds=5) <= until <= datetime.now(UTC) + timedelta(days=30, seconds=5)


async def test_changed_content_under_object_lock_is_a_new_version(moto: str, s3: Any, locked_bucket: str) -> None:
    n = notifier(moto, locked_bucket, object_lock={"mode": "GOVERNANCE", "days": 1})
    assert (await n.send(n.render(Message("one")), attempt(Message("one")))).ok
    assert (await n.send(n.render(Message("two")), attempt(Message("two")))).ok
    await n.close()
    (key,) = keys(s3, locked_bucket)
    assert len(s3.list_object_versions(Bucket=locked_bucket, Prefix=key)["Versions"]) == 2
    assert read(s3, locked_bucket, key)["title"] == "two"


async def test_object_lock_on_a_bucket_without_it_is_permanent_with_the_reason(moto: str, bucket: str) -> None:
    n = notifier(moto, bucket, object_lock={"mode": "GOVERNANCE", "days": 1}, skip_existing=False)
    out = await n.send(n.render(Message("x")), attempt(Message("x")))
    await n.close()
    assert out.status is OutcomeStatus.PERMANENT, out
    assert "Object Lock" in (out.error or "") or "lock" in (out.error or "").lower(), out.error


async def test_integrations_test_checks_the_bucket_and_its_object_lock(
    moto: str, bucket: str, locked_bucket: str
) -> None:
    cases = [
        (notifier(moto, bucket), True, f"bucket {bucket} exists"),
        (notifier(moto, locked_bucket, object_lock={"mode": "COMPLIANCE", "days": 1}), True, "Object Lock enabled"),
        (notifier(moto, bucket, object_lock={"mode": "COMPLIANCE", "days": 1}), False, "does not have Object Lock"),
        (notifier(moto, "no-such-bucket-here"), False, "does not exist"),
    ]
    for n, ok, needle in cases:
        out = await n.test()
        await n.close()
        assert out.ok is ok, out
        assert needle in (out.remote_id if ok else out.error) or "", out


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_the_outbound_guard_refuses_loopback_unless_allowed(moto: str, s3: Any, bucket: str, host: str) -> None:
    from tidings.integrations.base import Context
    from tidings.security.outbound import Destinations

    endpoint = moto.replace("127.0.0.1", host)
    for allow, ok in [([], False), (["127.0.0.0/8", "::1/128"], True)]:
        settings = S3Settings(**archive(endpoint, bucket, allow_destinations=allow))
        n = S3Notifier("archive", settings, Context(store=None, threads=None,  # type: ignore[arg-type]
                                                    destinations=Destinations()))
        out = await n.send(n.render(Message("x")), attempt(Message("x")))
        await n.close()
        assert out.ok is ok, out
        if not ok:
            assert out.status is OutcomeStatus.PERMANENT and "loopback" in (out.error or ""), out
    assert len(keys(s3, bucket)) == 1


# -- through a hub ------------------------------------------------------------------------------------
async def wait_status(hub: Any, message_id: str, status: str) -> dict[str, Any]:
    async def reached() -> bool:
        return bool((await hub.message(message_id))["deliveries"][0]["status"] == status)

    await eventually(reached)
    d: dict[str, Any] = (await hub.message(message_id))["deliveries"][0]
    return d


async def test_every_message_is_archived_at_its_key(make_hub: Any, moto: str, s3: Any, bucket: str) -> None:
    hub = await make_hub(routed(archive(moto, bucket, include=["deliveries"])))
    receipts = [await hub.notify(Message(f"m{i}", "body", labels={"n": str(i)})) for i in range(5)]
    for r in receipts:
        d = await wait_status(hub, r.id, "delivered")
        shown = await hub.message(r.id)
        day = datetime.fromtimestamp(shown["created_at"], UTC)
        key = f"tidings/prod/{day:%Y/%m/%d}/{r.id}.json"
        assert d["remote_id"].startswith(f"s3://{bucket}/{key} ")
        got = read(s3, bucket, key)
        for field in ("id", "project", "created_at", "title", "body", "priority", "labels", "fields", "links",
                      "thread_key", "dedup_key"):
            assert got[field] == shown[field], field
        (mine,) = got["deliveries"]
        assert mine["id"] == d["id"] and mine["integration"] == "archive" and mine["status"] == "sending"
    assert len(keys(s3, bucket)) == 5


async def test_slowdown_500_and_resets_are_retried_and_nothing_is_lost(
    make_hub: Any, proxy: FaultProxy, s3: Any, bucket: str
) -> None:
    proxy.script = ["slowdown", "reset", "internal", "slowdown"]
    hub = await make_hub(routed(archive(proxy.url, bucket)))
    r = await hub.notify(Message("through the storm"))
    d = await wait_status(hub, r.id, "delivered")
    assert proxy.script == [] and d["attempts"] >= 4, d  # aiohttp itself may redo a PUT on a reset kept-alive connection
    (key,) = keys(s3, bucket)
    assert key.endswith(f"/{r.id}.json") and read(s3, bucket, key)["title"] == "through the storm"


async def test_wrong_credentials_disable_the_integration_and_hold_later_deliveries(
    make_hub: Any, proxy: FaultProxy, s3: Any, bucket: str
) -> None:
    hub = await make_hub(routed(archive(proxy.url, bucket, access_key_id="AKIAWRONGWRONGWRONG0")))
    first = await hub.notify(Message("one"))
    d = (await hub.wait(first.id))["deliveries"][0]
    assert d["status"] == "dead" and d["attempts"] == 1
    assert "InvalidAccessKeyId" in d["last_error"] and "integration disabled" in d["last_error"]
    assert "AKIAWRONGWRONGWRONG0" not in d["last_error"] and SECRET not in d["last_error"]

    async def disabled() -> bool:
        return {i["name"]: i for i in await hub.integrations()}["archive"]["health"] == "disabled"

    await eventually(disabled)
    puts = proxy.puts()
    second = await hub.notify(Message("two"))
    d = (await hub.message(second.id))["deliveries"][0]
    assert d["status"] in ("pending", "held") and d["attempts"] == 0, "kept, not sent, not dead"
    assert proxy.puts() == puts and keys(s3, bucket) == []


async def test_a_missing_bucket_is_permanent_with_a_clear_error(make_hub: Any, moto: str) -> None:
    hub = await make_hub(routed(archive(moto, "no-such-bucket-anywhere")))
    r = await hub.notify(Message("lost?"))
    d = (await hub.wait(r.id))["deliveries"][0]
    assert d["status"] == "dead" and d["attempts"] == 1
    assert "bucket no-such-bucket-anywhere does not exist" in d["last_error"]


async def test_preview_and_test_through_the_hub(make_hub: Any, moto: str, bucket: str, s3: Any) -> None:
    hub = await make_hub(routed(archive(moto, bucket, sse="AES256")), dispatch=False)
    (target,) = hub.preview(Message("Preview me", fields={"a": "1"}))
    assert target["kind"] == "s3"
    assert target["payload"]["key"] == "tidings/prod/yyyy/mm/dd/(message id).json"
    assert target["payload"]["object"]["title"] == "Preview me"
    json.dumps(target["payload"])
    out = await hub.test("archive")
    assert out.ok and out.remote_id == f"bucket {bucket} exists", out
    assert keys(s3, bucket) == [], "a test writes nothing"


# -- batch: true ----------------------------------------------------------------------------------------
BATCH_KEY = re.compile(r"^tidings/prod/(\d{4})/(\d\d)/(\d\d)/(\d\d)-(\d\d)-[0-9a-f]+-(\d{6})\.jsonl\.gz$")


def batch_lines(s3: Any, bucket: str) -> dict[str, list[dict[str, Any]]]:
    out = {}
    for key in keys(s3, bucket):
        assert BATCH_KEY.match(key), key
        got = s3.get_object(Bucket=bucket, Key=key)
        assert got["ContentType"] == "application/gzip"
        out[key] = [json.loads(line) for line in gzip.decompress(got["Body"].read()).splitlines()]
    return out


def test_batch_settings_exclude_per_object_ones() -> None:
    base = archive("http://127.0.0.1:9000", "my-bucket", batch=True)
    with pytest.raises(ValidationError, match="include"):
        S3Settings(**{**base, "include": ["deliveries"]})
    with pytest.raises(ValidationError, match="skip_existing"):
        S3Settings(**{**base, "skip_existing": True})
    assert not S3Settings(**{**base, "object_lock": {"mode": "GOVERNANCE", "days": 1}}).checks_existing


async def test_a_batch_is_one_gzip_json_lines_object(moto: str, s3: Any, bucket: str) -> None:
    n = notifier(moto, bucket, batch=True, max_batch=50, sse="AES256")
    assert n.effective_max_batch == 50 and notifier(moto, bucket).effective_max_batch == 1
    messages = [Message(f"m{i} ü", labels={"i": str(i)}) for i in range(3)]
    before = time.time()
    outs = await n.send_batch([n.render(m) for m in messages],
                              [attempt(m, f"msg_{i}") for i, m in enumerate(messages)])
    await n.close()
    ((key, lines),) = batch_lines(s3, bucket).items()
    assert [o.ok for o in outs] == [True] * 3
    assert [o.remote_id.split(" ")[:3] for o in outs if o.remote_id] == [[f"s3://{bucket}/{key}", "line", str(i)]
                                                                       for i in (1, 2, 3)]
    assert [(x["id"], x["title"], x["labels"]) for x in lines] == [(f"msg_{i}", f"m{i} ü", {"i": str(i)}) for i in range(3)]
    minute = datetime.fromtimestamp(before, UTC)
    assert BATCH_KEY.match(key).group(4) in (f"{minute:%H}", f"{(minute + timedelta(minutes=1)):%H}")  # type: ignore[union-attr]
    assert s3.head_object(Bucket=bucket, Key=key)["ServerSideEncryption"] == "AES256"


async def test_a_failed_batch_fails_each_delivery_alike(proxy: FaultProxy, bucket: str) -> None:
    proxy.script = ["slowdown"]
    n = notifier(proxy.url, bucket, batch=True)
    outs = await n.send_batch([n.render(Message("a")), n.render(Message("b"))],
                              [attempt(Message("a"), "msg_a"), attempt(Message("b"), "msg_b")])
    await n.close()
    assert [o.status for o in outs] == [OutcomeStatus.RETRY] * 2 and "SlowDown" in (outs[0].error or "")


async def test_batches_through_the_hub_archive_every_message_once(make_hub: Any, moto: str, s3: Any, bucket: str) -> None:
    config = routed(archive(moto, bucket, batch=True, max_batch=8))
    writer = await make_hub(config, dispatch=False)
    ids = [(await writer.notify(Message(f"alert {i}"))).id for i in range(20)]
    await writer.stop()
    hub = await make_hub(config)
    for message_id in ids:
        await wait_status(hub, message_id, "delivered")
    objects = batch_lines(s3, bucket)
    archived = [line["id"] for lines in objects.values() for line in lines]
    assert sorted(archived) == sorted(ids), "every message once"
    assert 3 <= len(objects) < 20 and max(len(v) for v in objects.values()) <= 8


async def test_each_put_carries_content_md5_and_the_lock_headers_and_no_crc_trailer(
    proxy: FaultProxy, s3: Any, locked_bucket: str
) -> None:
    import base64
    import hashlib

    n = notifier(proxy.url, locked_bucket, object_lock={"mode": "GOVERNANCE", "days": 2}, sse="AES256")
    assert (await n.send(n.render(Message("x")), attempt(Message("x")))).ok
    await n.close()
    methods = [m for m, _ in proxy.requests]
    assert methods == ["HEAD", "PUT"], "skip_existing asks first"
    put = proxy.headers[1]
    (key,) = keys(s3, locked_bucket)
    body = s3.get_object(Bucket=locked_bucket, Key=key)["Body"].read()
    assert put["content-md5"] == base64.b64encode(hashlib.md5(body).digest()).decode()
    assert put["x-amz-object-lock-mode"] == "GOVERNANCE" and put["x-amz-server-side-encryption"] == "AES256"
    until = datetime.fromisoformat(put["x-amz-object-lock-retain-until-date"].replace("Z", "+00:00"))
    assert abs((until - datetime.now(UTC)) - timedelta(days=2)) < timedelta(minutes=1)
    assert not any(h.startswith("x-amz-checksum") or h == "x-amz-trailer" for h in put), put
