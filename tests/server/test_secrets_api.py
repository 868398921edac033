"""``/api/v1/secrets`` on SQLite and PostgreSQL: metadata, create and rotate, delete refused while
referenced; no answer of any route ever holds a value; only `secret:*` in project `default` may."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

import httpx
import pytest
from sink import Sink
from standardwebhooks import Webhook
from test_api import assert_error

from tidings import Message
from tidings.accounts.projects import create_project, set_member
from tidings.accounts.users import create_user
from tidings.audit import SYSTEM
from tidings.audit.verify import read_entries
from tidings.security import redact
from tidings.security.tokens import create_token
from tidings.security.vault import MAX_VALUE, Vault, load_keys, new_key, write_key_file
from tidings.store.engine import Store

SECRETS = "/api/v1/secrets"


def whsec() -> str:
    return "whsec_" + base64.b64encode(os.urandom(24)).decode()


class Answers:
    """Every answer a test got, to check that none holds a value."""

    def __init__(self, api: Any) -> None:
        self.api = api
        self.bodies: list[str] = []

    async def __call__(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        r = await self.api.request(method, path, **kwargs)
        self.bodies.append(f"{r.status_code} {dict(r.headers)} {r.text}")
        return r

    def assert_never(self, *values: str) -> None:
        for value in values:
            for form in {value, json.dumps(value)[1:-1], value[len("whsec_"):] if value.startswith("whsec_") else value}:
                hits = [b for b in self.bodies if form in b]
                assert not hits, f"an answer holds a value: {hits[0][:300]}"


@pytest.fixture
async def keyed(db_url: str, tmp_path: Path) -> Any:
    """A key file for the hub, and a vault on the test's database to store secrets before it starts."""
    write_key_file(tmp_path / "tidings.key", [new_key()])
    store = Store(db_url)
    await store.migrate()
    yield Vault(store, load_keys(tmp_path))
    await store.close()


def referring(sink: Sink) -> dict[str, Any]:
    return {"integrations": {"ops": {"kind": "webhook", "url": sink.url + "/hook", "secret": "${vault:HOOK}"}},
            "default": {"to": ["ops"]}}


async def test_store_rotate_show_list_and_delete(keyed: Vault, make_api: Any, sink: Sink) -> None:
    hook, first, second = whsec(), "first-" + os.urandom(12).hex(), "second-" + os.urandom(12).hex()
    await keyed.set("HOOK", hook)
    api = await make_api(referring(sink))
    call = Answers(api)

    r = await call("PUT", f"{SECRETS}/team/api-key", json={"value": first})
    assert r.status_code == 201, r.text
    made = r.json()
    assert made["created"] is True and made["name"] == "team/api-key" and made["created_by"] == "test"
    assert made["rotated_at"] is None and made["references"] == []
    assert redact.redact(f"key={first}") == f"key=…{first[-4:]}", "masked in this process's logs from now on"

    r = await call("PUT", f"{SECRETS}/team/api-key", json={"value": second})
    assert r.status_code == 200, r.text
    rotated = r.json()
    assert rotated["created"] is False and rotated["rotated_by"] == "test"
    assert rotated["created_at"] == made["created_at"] and rotated["updated_at"] > made["updated_at"]
    assert redact.redact(second) == "…" + second[-4:]

    r = await call("GET", SECRETS)
    assert r.status_code == 200
    items = {i["name"]: i for i in r.json()["items"]}
    assert set(items) == {"HOOK", "team/api-key"}
    assert items["HOOK"]["references"] == ["ops"] and items["HOOK"]["last_used_at"] is not None, "used at start"
    assert "masked" not in items["HOOK"]
    shown = (await call("GET", f"{SECRETS}/team/api-key")).json()
    assert shown["masked"] == "…" + second[-4:] and shown["rotated_by"] == "test"
    assert (await call("GET", f"{SECRETS}/HOOK")).json()["masked"] == "…" + hook[-4:]

    detail = assert_error(await call("DELETE", f"{SECRETS}/HOOK"), 409, "conflict")
    assert "referenced by ops" in detail
    r = await call("DELETE", f"{SECRETS}/HOOK", params={"force": "true"})
    assert r.status_code == 200 and r.json()["references"] == ["ops"] and r.json()["deleted"] is True
    r = await call("DELETE", f"{SECRETS}/team/api-key")
    assert r.status_code == 200 and r.json()["references"] == []
    assert_error(await call("GET", f"{SECRETS}/team/api-key"), 404, "not found")
    assert_error(await call("DELETE", f"{SECRETS}/team/api-key"), 404, "not found")
    assert (await call("GET", SECRETS)).json() == {"items": []}

    call.assert_never(hook, first, second)
    entries = [e for e in await read_entries(api.hub.store) if e["action"].startswith("secret.")]
    assert [(e["action"], e["target"]) for e in entries] == [
        ("secret.set", "secret/HOOK"), ("secret.set", "secret/team/api-key"), ("secret.rotate", "secret/team/api-key"),
        ("secret.delete", "secret/HOOK"), ("secret.delete", "secret/team/api-key")]
    assert all(e["actor_name"] == "test" and e["auth_method"] == "token" for e in entries[1:])
    assert not any(v in repr(entries) for v in (hook, first, second))


async def test_a_value_rotated_through_the_api_signs_the_very_next_send(keyed: Vault, make_api: Any, sink: Sink) -> None:
    old, new = whsec(), whsec()
    await keyed.set("HOOK", old)
    api = await make_api(referring(sink))
    r = await api.request("PUT", f"{SECRETS}/HOOK", json={"value": new})
    assert r.status_code == 200 and r.json()["references"] == ["ops"]
    receipt = await api.hub.notify(Message("right after"))
    assert (await api.hub.wait(receipt.id))["deliveries"][0]["status"] == "delivered"
    [received] = sink.received
    headers = {k.lower(): v for k, v in received.headers.items()}
    Webhook(new).verify(received.body, headers)


async def test_bad_input_is_refused_with_a_4xx_and_changes_nothing(keyed: Vault, make_api: Any) -> None:
    await keyed.set("SLACK", "xoxb-1111-2222-goodtokenvalue")
    api = await make_api({"integrations": {"chat": {"kind": "slack", "token": "${vault:SLACK}", "channel": "#ops"}}},
                         dispatch=False)
    call = Answers(api)
    before = len(await read_entries(api.hub.store))

    async def put(path: str, **kwargs: Any) -> httpx.Response:
        return await call("PUT", path, **kwargs)

    cases: list[tuple[httpx.Response, int, str]] = [
        (await put(f"{SECRETS}/A", json={"value": "abc\x00def-nul-value"}), 422, "value"),
        (await put(f"{SECRETS}/A", json={"value": "x" * (MAX_VALUE + 1)}), 422, "value"),
        (await put(f"{SECRETS}/A", json={"value": "é" * (MAX_VALUE // 2 + 1)}), 422, "64 KiB"),
        (await put(f"{SECRETS}/A", content=b'{"value": "lone \\ud800 surrogate"}',
                   headers={"Content-Type": "application/json"}), 422, "body.value"),
        (await put(f"{SECRETS}/A", json={"value": ""}), 422, "value"),
        (await put(f"{SECRETS}/A", json={"value": 12345678}), 422, "value"),
        (await put(f"{SECRETS}/A", json={"value": "fine-value-123", "reveal": True}), 422, "reveal"),
        (await put(f"{SECRETS}/A", json={}), 422, "value"),
        (await put(f"{SECRETS}/A", content=b'{"value": ', headers={"Content-Type": "application/json"}), 400, ""),
        (await put(f"{SECRETS}/A", content=b"value=x", headers={"Content-Type": "text/plain"}), 415, ""),
        (await put(f"{SECRETS}/with%20space", json={"value": "fine-value-123"}), 422, "name"),
        (await put(f"{SECRETS}/{'n' * 201}", json={"value": "fine-value-123"}), 422, "name"),
        (await put(f"{SECRETS}/A", params={"reveal": "1"}, json={"value": "fine-value-123"}), 422, "reveal"),
        (await put(f"{SECRETS}/SLACK", json={"value": "not-a-bot-token-123456"}), 422, "xoxb-"),
        (await call("GET", f"{SECRETS}/SLACK", params={"reveal": "true"}), 422, "reveal"),
        (await call("DELETE", f"{SECRETS}/SLACK", params={"force": "maybe"}), 422, "force"),
    ]
    for i, (r, status, fragment) in enumerate(cases):
        detail = assert_error(r, status)
        assert fragment in json.dumps(detail), (i, detail)
    assert [i["name"] for i in (await call("GET", SECRETS)).json()["items"]] == ["SLACK"]
    assert await keyed.get("SLACK") == "xoxb-1111-2222-goodtokenvalue"
    assert len(await read_entries(api.hub.store)) == before, "nothing changed, nothing audited"
    call.assert_never("abc\x00def-nul-value", "not-a-bot-token-123456", "xoxb-1111-2222-goodtokenvalue")


async def test_without_a_secret_key_storing_is_503_and_listing_works(make_api: Any) -> None:
    api = await make_api(dispatch=False)
    detail = assert_error(await api.request("PUT", f"{SECRETS}/A", json={"value": "some-value-1234"}), 503,
                          "vault unavailable")
    assert "no secret key" in detail
    assert (await api.get(SECRETS)).json() == {"items": []}


async def _token(store: Store, email: str, *, project: str = "default", role: str) -> dict[str, str]:
    async with store.write() as conn:
        await create_user(conn, SYSTEM, email=email)
        await set_member(conn, SYSTEM, project, email, role)
    return {"Authorization": f"Bearer {await create_token(store, email, user=email)}"}


async def test_only_secret_permissions_in_project_default_may(keyed: Vault, make_api: Any) -> None:
    value = "kept-" + os.urandom(12).hex()
    await keyed.set("KEPT", value)
    api = await make_api(dispatch=False)
    store = api.hub.store
    async with store.write() as conn:
        await create_user(conn, SYSTEM, email="admin@example.com", site_admin=True)  # adopts the test token
        await create_project(conn, SYSTEM, "other")
    viewer = await _token(store, "viewer@example.com", role="viewer")
    member = await _token(store, "member@example.com", role="member")
    elsewhere = await _token(store, "owner-other@example.com", project="other", role="owner")
    owner = await _token(store, "owner@example.com", role="owner")
    async with store.write() as conn:  # owner here and there, with a token scoped to the other project
        await set_member(conn, SYSTEM, "other", "owner@example.com", "owner")
    scoped_away = {"Authorization": f"Bearer {await create_token(store, 'scoped', user='owner@example.com', project='other')}"}
    call = Answers(api)
    audited = len(await read_entries(store))

    refused = 0
    for who in (viewer, member, elsewhere, scoped_away):
        for method, path, kwargs in (("GET", SECRETS, {}), ("GET", f"{SECRETS}/KEPT", {}),
                                     ("PUT", f"{SECRETS}/KEPT", {"json": {"value": "stolen-value-1234"}}),
                                     ("DELETE", f"{SECRETS}/KEPT", {"params": {"force": "true"}})):
            r = await call(method, path, auth=False, headers=who, **kwargs)
            detail = assert_error(r, 403, "forbidden")
            assert "secret:" in detail and "'default'" in detail, detail
            refused += 1
    for method in ("GET", "PUT", "DELETE"):
        assert_error(await call(method, f"{SECRETS}/KEPT", auth=False, json={"value": "x" * 20}), 401)
    entries = (await read_entries(store))[audited:]
    assert len(entries) == refused and {e["action"] for e in entries} == {"access.denied"}
    assert await keyed.get("KEPT") == value and (await keyed.info("KEPT"))["rotated_at"] is None  # type: ignore[index]

    r = await call("PUT", f"{SECRETS}/NEW", auth=False, headers=owner, json={"value": "owned-value-12345"})
    assert r.status_code == 201 and r.json()["created_by"] == "owner@example.com"
    assert (await call("GET", f"{SECRETS}/NEW", auth=False, headers=owner)).status_code == 200
    assert (await call("GET", SECRETS)).status_code == 200, "a site admin may too"
    call.assert_never(value, "owned-value-12345")
