"""The configuration API: integrations created, changed and deleted through HTTP, each write one
revision with its author and source; ETag and If-Match (428, 412, concurrent writers); invalid
writes change nothing; secrets go to the vault and never come back; who may do what; the file as
the only source (409); revisions listed, shown, compared and rolled back. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import base64
import os
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet
from people import person
from signin_support import PASSWORD, add_user, sign_in  # noqa: F401  (a fixture)
from sqlalchemy import select

from tidings.audit.verify import read_entries
from tidings.store.tables import audit_log, config_revisions, metadata

ALPHA, BETA = "/api/v1/projects/alpha", "/api/v1/projects/beta"
CONFIG: dict[str, Any] = {
    "integrations": {
        "inbox": {"kind": "inbox"},
        "alpha-inbox": {"kind": "inbox", "project": "alpha"},
        "beta-inbox": {"kind": "inbox", "project": "beta"},
    },
    "routes": [{"project": "alpha", "name": "all", "to": ["alpha-inbox"]}, {"project": "beta", "to": ["beta-inbox"]}],
}


def whsec() -> str:
    return "whsec_" + base64.b64encode(os.urandom(24)).decode()


def as_(token: str, etag: str | None = None, **headers: str) -> dict[str, Any]:
    return {"auth": False, "headers": {"Authorization": f"Bearer {token}", **({"If-Match": etag} if etag else {}),
                                       **headers}}


@pytest.fixture(name="vault_key")
def vault_key_fixture(monkeypatch: pytest.MonkeyPatch) -> None:
    """A secret key for the vault (none by default in the tests)."""
    monkeypatch.setenv("TIDINGS_SECRET_KEY", Fernet.generate_key().decode())


async def start(make_api: Any, config: dict[str, Any] | None = None, **kwargs: Any) -> tuple[Any, dict[str, str]]:
    api = await make_api(config or CONFIG, **{"dispatch": False, **kwargs})
    store = api.hub.store
    people = {
        "owner": await person(store, "owner@example.com", {"alpha": "owner", "default": "owner"}),
        "member": await person(store, "member@example.com", {"alpha": "member"}),
        "viewer": await person(store, "viewer@example.com", {"alpha": "viewer"}),
        "beta": await person(store, "beta@example.com", {"beta": "owner"}),
        "admin": await person(store, "admin@example.com", {}, site_admin=True),
    }
    return api, people


async def revisions(api: Any) -> list[Any]:
    async with api.hub.store.read() as conn:
        return list((await conn.execute(select(config_revisions).order_by(config_revisions.c.number))).all())


async def everything(api: Any) -> str:
    """Every row of every table, as text: what a secret must never be found in."""
    out = []
    async with api.hub.store.read() as conn:
        for table in metadata.sorted_tables:
            out += [repr(tuple(row)) for row in (await conn.execute(select(table))).all()]
    return "\n".join(out)


async def test_an_integration_made_changed_and_deleted_through_the_api(
    make_api: Any, vault_key: None, capfd: pytest.CaptureFixture[str]
) -> None:
    api, people = await start(make_api)
    owner = people["owner"]
    r = await api.get(f"{ALPHA}/integrations", **as_(owner))
    etag = r.headers["ETag"]
    assert r.status_code == 200 and etag == f'"{len(await revisions(api))}"'
    assert [(i["name"], i["settings"]) for i in r.json()] == [("alpha-inbox", {})]
    assert r.json()[0]["health"] == "ok"  # the running integration's answer is kept
    secret = whsec()
    body = {"name": "ops", "kind": "webhook", "settings": {"url": "https://hooks.example.com/ops", "secret": secret,
                                                           "description": "on call", "retry": {"max_attempts": 3}}}
    # No If-Match: 428, and nothing stored.
    before = len(await revisions(api))
    r = await api.post(f"{ALPHA}/integrations", json=body, **as_(owner))
    assert r.status_code == 428 and "If-Match" in r.json()["detail"], r.text
    assert len(await revisions(api)) == before and await api.hub.vault.info("alpha/ops/secret") is None
    # Created: one revision, by the owner, through the API, with the comment; the secret in the vault.
    r = await api.post(f"{ALPHA}/integrations", json=body, **as_(owner, etag, **{"X-Tidings-Comment": "add ops"}))
    assert r.status_code == 201, r.text
    made = r.json()
    assert r.headers["ETag"] == f'"{before + 1}"' and made["revision"] == before + 1 and made["changed"] is True
    assert made["settings"]["secret"] == {"set": True, "masked": "…" + secret[-4:], "reference": "${vault:alpha/ops/secret}"}
    assert made["settings"]["url"] == "https://hooks.example.com/ops" and made["project"] == "alpha"
    rows = await revisions(api)
    assert len(rows) == before + 1
    assert (rows[-1].author, rows[-1].source, rows[-1].comment) == ("owner@example.com", "api", "add ops")
    assert await api.hub.vault.get("alpha/ops/secret") == secret
    audit = [e for e in await read_entries(api.hub.store) if e["action"] in ("config.revision", "secret.set")]
    assert [(e["action"], e["actor_name"]) for e in audit[-2:]] == [("secret.set", "owner@example.com"),
                                                                     ("config.revision", "owner@example.com")]
    # Read back by name; members and viewers read it too, redacted alike.
    for who in ("owner", "member", "viewer"):
        r = await api.get(f"{ALPHA}/integrations/ops", **as_(people[who]))
        assert r.status_code == 200 and r.json()["settings"] == made["settings"], (who, r.text)
        assert r.headers["ETag"] == f'"{before + 1}"'
    etag = r.headers["ETag"]
    # A merge patch: one field changed, one removed, one nested merged; the masked secret given back stays.
    patch = {"description": None, "retry": {"base": "1s"}, "secret": made["settings"]["secret"],
             "url": "https://hooks.example.com/ops2"}
    r = await api.request("PATCH", f"{ALPHA}/integrations/ops", json=patch, **as_(owner, etag))
    assert r.status_code == 200, r.text
    settings = r.json()["settings"]
    assert "description" not in settings and settings["retry"] == {"max_attempts": 3, "base": "1s"}
    assert settings["url"] == "https://hooks.example.com/ops2" and settings["secret"]["masked"] == "…" + secret[-4:]
    assert await api.hub.vault.get("alpha/ops/secret") == secret
    # A new secret value: a rotation of the same vault secret (audited); the document still refers to it as before,
    # so no revision is made.
    rotated = whsec()
    count = len(await revisions(api))
    r = await api.request("PATCH", f"{ALPHA}/integrations/ops", json={"secret": rotated},
                          **as_(owner, r.headers["ETag"]))
    assert r.status_code == 200 and r.json()["settings"]["secret"]["masked"] == "…" + rotated[-4:], r.text
    assert r.json()["changed"] is True and len(await revisions(api)) == count
    assert await api.hub.vault.get("alpha/ops/secret") == rotated
    assert [e["action"] for e in await read_entries(api.hub.store)][-1] == "secret.rotate"
    # The same patch again changes nothing: no revision.
    r = await api.request("PATCH", f"{ALPHA}/integrations/ops", json={"url": "https://hooks.example.com/ops2"},
                          **as_(owner, r.headers["ETag"]))
    assert r.status_code == 200 and r.json()["changed"] is False and len(await revisions(api)) == count
    # kind and project can't change.
    for bad, path in (({"kind": "slack"}, "integrations.ops.kind"), ({"project": "beta"}, "integrations.ops.project")):
        r = await api.request("PATCH", f"{ALPHA}/integrations/ops", json=bad, **as_(owner, "*"))
        assert r.status_code == 422 and r.json()["problems"][0].startswith(path), r.text
    # Deleted: one revision; gone.
    r = await api.request("DELETE", f"{ALPHA}/integrations/ops", **as_(owner, "*"))
    assert r.status_code == 200 and r.json() == {"name": "ops", "deleted": True, "revision": count + 1, "killed": 0}
    assert (await api.get(f"{ALPHA}/integrations/ops", **as_(owner))).status_code == 404
    assert len(await revisions(api)) == count + 1
    # The values were never in an answer, a stored row (revisions, audit, anything) or a log line.
    stored = await everything(api)
    logged = capfd.readouterr()
    for value in (secret, rotated):
        assert value not in stored and value not in logged.out + logged.err
        assert value[6:] not in stored


async def test_if_match_guards_every_write(make_api: Any) -> None:
    api, people = await start(make_api)
    owner, beta = people["owner"], people["beta"]
    etag = (await api.get(f"{ALPHA}/routes", **as_(owner))).headers["ETag"]
    route = {"to": ["alpha-inbox"], "match": {"priority": "critical"}}
    # Garbage is refused (422); an old revision of a changed project is stale (412, with the current one).
    r = await api.post(f"{ALPHA}/routes", json=route, **as_(owner, "yesterday"))
    assert r.status_code == 422 and r.json()["detail"][0].startswith("header.If-Match"), r.text
    r = await api.post(f"{ALPHA}/routes", json=route, **as_(owner, etag))
    assert r.status_code == 201, r.text
    current = r.headers["ETag"]
    r = await api.post(f"{ALPHA}/routes", json=route, **as_(owner, etag))
    assert r.status_code == 412 and r.headers["ETag"] == current, r.text
    assert r.json()["revision"] == int(current.strip('"')) and "revision" in r.json()["detail"]
    # Another project's change in between is no conflict for this one (the scope is the project).
    r = await api.post(f"{BETA}/routes", json={"to": ["beta-inbox"]}, **as_(beta, current))
    assert r.status_code == 201, r.text
    r = await api.post(f"{ALPHA}/routes", json=route, **as_(owner, f'W/{current}'))
    assert r.status_code == 201, r.text
    # Two writers with the same If-Match: exactly one wins, the other gets 412.
    etag = r.headers["ETag"]
    before = len(await revisions(api))
    answers = await asyncio.gather(*(
        api.request("PATCH", f"{ALPHA}/routes/all", json={"cooldown": f"{n}m"}, **as_(owner, etag)) for n in (1, 2)))
    assert sorted(a.status_code for a in answers) == [200, 412], [a.text for a in answers]
    assert len(await revisions(api)) == before + 1
    # `*`: whatever is current.
    r = await api.request("PATCH", f"{ALPHA}/routes/all", json={"cooldown": "3m"}, **as_(owner, "*"))
    assert r.status_code == 200 and r.json()["cooldown"] == "3m", r.text


async def test_an_invalid_write_changes_nothing(make_api: Any, vault_key: None) -> None:
    api, people = await start(make_api)
    owner = people["owner"]
    before = await revisions(api)
    secret = whsec()
    # The configuration the write would make is invalid: 422, one line per problem with its path, nothing stored
    # (not even the secret the write carried: it is one transaction).
    r = await api.post(f"{ALPHA}/integrations", json={"name": "bad", "kind": "webhook", "settings": {
        "secret": secret, "retry": {"max_attempts": 0}, "method": "GET"}}, **as_(owner, "*"))
    assert r.status_code == 422, r.text
    assert r.json()["problems"] == r.json()["detail"] and all(p.startswith("integrations.bad") for p in r.json()["problems"])
    assert {p.split(":")[0] for p in r.json()["problems"]} == {"integrations.bad.method",
                                                               "integrations.bad.retry.max_attempts"}, r.json()
    assert secret not in r.text
    assert await revisions(api) == before and await api.hub.vault.info("alpha/bad/secret") is None
    # A secret the kind refuses is refused before it is stored (its value is checked, not only the reference).
    r = await api.post(f"{ALPHA}/integrations", json={"name": "bad", "kind": "webhook", "settings": {
        "url": "https://hooks.example.com/x", "secret": "not-a-whsec-value"}}, **as_(owner, "*"))
    assert r.status_code == 422 and "whsec_" in r.text and "not-a-whsec-value" not in r.text, r.text
    assert await api.hub.vault.info("alpha/bad/secret") is None
    # A route to an integration that doesn't exist; a route to another project's integration.
    for to, why in ((["nope"], "unknown integration 'nope'"), (["beta-inbox"], "belongs to project 'beta'")):
        r = await api.post(f"{ALPHA}/routes", json={"to": to}, **as_(owner, "*"))
        assert r.status_code == 422 and why in r.json()["problems"][0] and r.json()["problems"][0].startswith("routes["), r.text
    # Deleting an integration a route sends to names the route.
    r = await api.request("DELETE", f"{ALPHA}/integrations/alpha-inbox", **as_(owner, "*"))
    assert r.status_code == 422 and r.json()["problems"] == [
        "routes[0].to[0]: sends to 'alpha-inbox', which this deletes; remove or change the route first"], r.text
    # A name taken (in any project) is a conflict; a malformed one, invalid.
    r = await api.post(f"{ALPHA}/integrations", json={"name": "beta-inbox", "kind": "inbox"}, **as_(owner, "*"))
    assert r.status_code == 409 and "exists already" in r.json()["detail"], r.text
    r = await api.post(f"{ALPHA}/integrations", json={"name": "Bad Name", "kind": "inbox"}, **as_(owner, "*"))
    assert r.status_code == 422, r.text
    # A reference to a secret the vault doesn't hold.
    r = await api.post(f"{ALPHA}/integrations", json={"name": "ref", "kind": "webhook", "settings": {
        "url": "https://hooks.example.com/x", "secret": "${vault:nobody/has/this}"}}, **as_(owner, "*"))
    assert r.status_code == 422 and r.json()["problems"] == [
        "integrations.ref.secret: no secret 'nobody/has/this' in the vault (store it with `tidings secret set "
        "nobody/has/this`)"], r.text
    assert await revisions(api) == before


async def test_a_credential_outside_the_secret_fields_is_refused_not_stored(make_api: Any, monkeypatch: Any) -> None:
    """A password in a webhook URL or a token in its query can't go to the vault (only secret fields
    do): kept in the revision it would be in every row of the history, so it is refused, with the
    way that works (an ${ENV} reference, resolved by each server)."""
    api, people = await start(make_api)
    owner = people["owner"]
    before = await revisions(api)
    for url in ("https://ops:pa55word-x1@hooks.example.com/in", "https://hooks.example.com/in?token=t0ken-y2z"):
        r = await api.post(f"{ALPHA}/integrations", json={"name": "creds", "kind": "webhook",
                                                          "settings": {"url": url}}, **as_(owner, "*"))
        assert r.status_code == 422, r.text
        [problem] = r.json()["problems"]
        assert problem.startswith("integrations.creds.url: holds a credential") and "${ENV_VAR}" in problem
        assert "pa55word-x1" not in r.text and "t0ken-y2z" not in r.text
    assert await revisions(api) == before
    # The way that works: the credential stays in the server's environment, the revision holds the reference.
    monkeypatch.setenv("CREDS_TOKEN", "t0ken-y2z")
    r = await api.post(f"{ALPHA}/integrations", json={"name": "creds", "kind": "webhook", "settings": {
        "url": "https://hooks.example.com/in?token=${CREDS_TOKEN}"}}, **as_(owner, "*"))
    assert r.status_code in (200, 201), r.text
    async with api.hub.store.read() as conn:
        rows = (await conn.execute(select(config_revisions.c.document))).scalars().all()
    assert not any("t0ken-y2z" in row for row in rows) and any("${CREDS_TOKEN}" in row for row in rows)


async def test_a_vault_without_a_key_refuses_a_secret_value_but_keeps_a_reference(make_api: Any) -> None:
    api, people = await start(make_api)
    r = await api.post(f"{ALPHA}/integrations", json={"name": "hook", "kind": "webhook", "settings": {
        "url": "https://hooks.example.com/x", "secret": whsec()}}, **as_(people["owner"], "*"))
    assert r.status_code == 422 and r.json()["problems"] == [
        "integrations.hook.secret: the server has no secret key (TIDINGS_SECRET_KEY or tidings.key), so a secret "
        "can't be stored; give a reference (${vault:NAME} or ${ENV}) instead"], r.text
    os.environ["TIDINGS_TEST_HOOK_SECRET"] = whsec()
    try:
        r = await api.post(f"{ALPHA}/integrations", json={"name": "hook", "kind": "webhook", "settings": {
            "url": "https://hooks.example.com/x", "secret": "${TIDINGS_TEST_HOOK_SECRET}"}}, **as_(people["owner"], "*"))
        assert r.status_code == 201, r.text
        assert r.json()["settings"]["secret"] == {"set": True, "reference": "${TIDINGS_TEST_HOOK_SECRET}",
                                                  "masked": "…" + os.environ["TIDINGS_TEST_HOOK_SECRET"][-4:]}
    finally:
        del os.environ["TIDINGS_TEST_HOOK_SECRET"]


async def test_who_may_read_and_write(make_api: Any) -> None:
    api, people = await start(make_api)
    body = {"name": "extra", "kind": "inbox"}
    # Viewers and members read but don't write: 403, audited.
    async with api.hub.store.read() as conn:
        seq = max(r.seq for r in (await conn.execute(select(audit_log.c.seq))).all())
    for who in ("viewer", "member"):
        r = await api.post(f"{ALPHA}/integrations", json=body, **as_(people[who], "*"))
        assert r.status_code == 403 and "'integration:write'" in r.json()["detail"], r.text
        r = await api.request("PATCH", f"{ALPHA}/routes/0", json={"cooldown": "1m"}, **as_(people[who], "*"))
        assert r.status_code == 403, r.text
    async with api.hub.store.read() as conn:
        denied = (await conn.execute(select(audit_log).where(audit_log.c.seq > seq).order_by(audit_log.c.seq))).all()
    assert [(d.action, d.actor_name, d.project) for d in denied] == [
        ("access.denied", f"{who}@example.com", "alpha") for who in ("viewer", "viewer", "member", "member")]
    # Another project's integration or route is not found, whoever asks on this project's path.
    owner = people["owner"]
    for method, path in (("GET", "/integrations/beta-inbox"), ("PATCH", "/integrations/beta-inbox"),
                         ("DELETE", "/integrations/beta-inbox"), ("GET", "/integrations/inbox")):
        r = await api.request(method, ALPHA + path, json={} if method == "PATCH" else None, **as_(owner, "*"))
        assert r.status_code == 404, (method, path, r.text)
    r = await api.get(f"{BETA}/integrations/beta-inbox", **as_(owner))
    assert r.status_code == 403
    # The unscoped routes act on the project `default`.
    r = await api.get("/api/v1/integrations/inbox", **as_(owner))
    assert r.status_code == 200 and r.json()["project"] == "default"
    assert (await api.get("/api/v1/integrations/alpha-inbox", **as_(owner))).status_code == 404
    # allow_destinations opens the outbound guard: a site admin's to set or change.
    entry = {"name": "lan", "kind": "webhook", "settings": {"url": "http://10.0.0.5/hook",
                                                            "allow_destinations": ["10.0.0.0/8"]}}
    r = await api.post(f"{ALPHA}/integrations", json=entry, **as_(owner, "*"))
    assert r.status_code == 403 and "allow_destinations" in r.json()["detail"] and "site:admin" in r.json()["detail"]
    async with api.hub.store.read() as conn:
        last = (await conn.execute(select(audit_log).order_by(audit_log.c.seq.desc()).limit(1))).one()
    assert (last.action, last.actor_name, last.after["permission"]) == ("access.denied", "owner@example.com", "site:admin")
    r = await api.post(f"{ALPHA}/integrations", json=entry, **as_(people["admin"], "*"))
    assert r.status_code == 201, r.text
    r = await api.request("PATCH", f"{ALPHA}/integrations/lan", json={"description": "the LAN hook"}, **as_(owner, "*"))
    assert r.status_code == 200, r.text  # other settings: the owner's
    r = await api.request("PATCH", f"{ALPHA}/integrations/lan", json={"allow_destinations": ["0.0.0.0/0"]},
                          **as_(owner, "*"))
    assert r.status_code == 403, r.text


async def test_a_file_only_configuration_is_read_only(make_api: Any) -> None:
    api, people = await start(make_api, {**CONFIG, "server": {"config_source": "file"}})
    owner, admin = people["owner"], people["admin"]
    assert (await api.get(f"{ALPHA}/integrations/alpha-inbox", **as_(owner))).status_code == 200
    before = await revisions(api)
    for method, path, body, who in (
        ("POST", f"{ALPHA}/integrations", {"name": "x", "kind": "inbox"}, owner),
        ("PATCH", f"{ALPHA}/integrations/alpha-inbox", {"description": "x"}, owner),
        ("DELETE", f"{ALPHA}/integrations/alpha-inbox", None, owner),
        ("POST", f"{ALPHA}/routes", {"to": ["alpha-inbox"]}, owner),
        ("PUT", "/api/v1/default-route", {"to": ["inbox"]}, owner),
        ("POST", "/api/v1/config/rollback", {"to": 1}, admin),
    ):
        r = await api.request(method, path, json=body, **as_(who, "*"))
        assert r.status_code == 409 and "config_source is `file`" in r.json()["detail"], (method, path, r.text)
        r = await api.request(method, path, json=body, **as_(who))  # read-only says so before If-Match is asked
        assert r.status_code == 409, (method, path, r.text)
    assert await revisions(api) == before


async def test_revisions_are_listed_shown_compared_and_rolled_back(make_api: Any, vault_key: None) -> None:
    api, people = await start(make_api)
    owner, admin, beta = people["owner"], people["admin"], people["beta"]
    first = len(await revisions(api))
    secret = whsec()
    r = await api.post(f"{ALPHA}/integrations", json={"name": "ops", "kind": "webhook", "settings": {
        "url": "https://hooks.example.com/ops", "secret": secret}}, **as_(owner, "*"))
    assert r.status_code == 201
    r = await api.post(f"{BETA}/routes", json={"to": ["beta-inbox"], "name": "second"}, **as_(beta, "*"))
    assert r.status_code == 201
    r = await api.request("PATCH", f"{ALPHA}/integrations/ops", json={"description": "changed"}, **as_(owner, "*"))
    current = first + 3
    assert r.headers["ETag"] == f'"{current}"'
    # Newest first, a page at a time, no documents.
    r = await api.get("/api/v1/config/revisions?limit=2", **as_(admin))
    assert r.status_code == 200 and r.headers["ETag"] == f'"{current}"'
    page = r.json()
    assert [i["number"] for i in page["items"]] == [current, current - 1] and page["next"] == current - 1
    assert page["items"][0]["current"] and not page["items"][1]["current"] and "document" not in page["items"][0]
    assert page["items"][0]["author"] == "owner@example.com" and page["items"][1]["author"] == "beta@example.com"
    rest = (await api.get(f"/api/v1/config/revisions?before={page['next']}", **as_(admin))).json()
    assert [i["number"] for i in rest["items"]] == list(range(current - 2, 0, -1)) and rest["next"] is None
    # A project's own list holds only the revisions that changed it.
    r = await api.get(f"{ALPHA}/config/revisions", **as_(people["viewer"]))
    assert r.status_code == 200 and [i["number"] for i in r.json()["items"]][:2] == [current, current - 2], r.text
    assert current - 1 not in [i["number"] for i in r.json()["items"]]
    assert (await api.get(f"{ALPHA}/config/revisions?limit=1", **as_(owner))).json()["next"] == current
    # One revision: its document, the secret as its reference only.
    r = await api.get(f"/api/v1/config/revisions/{current}", **as_(admin))
    assert r.status_code == 200 and r.json()["document"]["integrations"]["ops"]["secret"] == "${vault:alpha/ops/secret}"
    assert (await api.get("/api/v1/config/revisions/999", **as_(admin))).status_code == 404
    # A diff, readable, secrets never shown.
    r = await api.get(f"/api/v1/config/diff?from={first}&to={current}", **as_(admin))
    assert r.status_code == 200, r.text
    diff = r.json()
    assert diff["from"] == first and diff["to"] == current and diff["changes"] and "ops" in diff["text"]
    assert secret not in r.text
    assert (await api.get("/api/v1/config/diff", **as_(admin))).json()["from"] == current - 1
    # Rollback: a new revision equal to the one named; needs If-Match.
    r = await api.post("/api/v1/config/rollback", json={"to": first}, **as_(admin))
    assert r.status_code == 428
    r = await api.post("/api/v1/config/rollback", json={"to": first}, **as_(admin, f'"{first}"'))
    assert r.status_code == 412 and r.json()["revision"] == current
    r = await api.post("/api/v1/config/rollback", json={"to": first, "comment": "undo"}, **as_(admin, f'"{current}"'))
    assert r.status_code == 200 and r.json() == {"revision": current + 1, "changed": True}, r.text
    rows = await revisions(api)
    assert rows[-1].digest == rows[first - 1].digest and rows[-1].comment == "undo" and rows[-1].author == "admin@example.com"
    assert (await api.get(f"{ALPHA}/integrations/ops", **as_(owner))).status_code == 404
    r = await api.post("/api/v1/config/rollback", json={"to": 999}, **as_(admin, "*"))
    assert r.status_code == 404


async def test_a_session_writes_revisions_from_the_ui(make_api: Any) -> None:
    api, _ = await start(make_api)
    await add_user(api, "ui@example.com", roles={"alpha": "owner"}, password=PASSWORD)
    async with httpx.AsyncClient(base_url=api.url, timeout=15.0) as browser:
        csrf = await sign_in(browser, "ui@example.com")
        r = await browser.post(f"{ALPHA}/routes", json={"to": ["alpha-inbox"]},
                               headers={"X-CSRF-Token": csrf, "If-Match": "*"})
        assert r.status_code == 201, r.text
    last = (await revisions(api))[-1]
    assert (last.author, last.source) == ("ui@example.com", "ui")
