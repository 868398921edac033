"""Configuration revisions (config/revisions.py, config/imports.py) on SQLite and PostgreSQL:
numbering, audit, If-Match, concurrent writers, file imports in each mode, held deliveries, NOTIFY."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import orjson
import pytest
from helpers import PG_URL
from sqlalchemy import select, text

from tidings.audit import Actor
from tidings.config import parse_config
from tidings.config import revisions as rv
from tidings.config.document import normalize, to_config
from tidings.config.imports import import_file
from tidings.errors import ConfigError
from tidings.store.engine import Store
from tidings.store.tables import audit_log, config_revisions, config_state, deliveries

ALICE = Actor("user", id="u-alice", name="alice@example.com", auth_method="session")
HOOK = {"kind": "webhook", "url": "https://a.example.com/"}
SLACK_TOKEN = "xoxb-4242424242-literal-revision-token"
BEARER = "Bearer literal-revision-bearer-xyz"
OPS = {"kind": "webhook", "url": "https://ops.example.com/", "project": "ops"}
WEB = {"kind": "webhook", "url": "https://web.example.com/", "project": "web"}


def doc(integrations: dict[str, Any] | None = None, routes: list[Any] | None = None,
        default: dict[str, Any] | None = None) -> dict[str, Any]:
    return normalize({"integrations": {"inbox": {"kind": "inbox"}, **(integrations or {})},
                      "routes": routes or [], "default": default or {}})


def projects_doc(ops_url: str = "https://ops.example.com/", web_url: str = "https://web.example.com/") -> dict[str, Any]:
    return doc({"ops-hook": {**OPS, "url": ops_url}, "web-hook": {**WEB, "url": web_url}},
               [{"project": "ops", "to": ["ops-hook"]}, {"project": "web", "to": ["web-hook"]}])


async def commit(store: Store, document: dict[str, Any], **kwargs: Any) -> tuple[rv.Revision, bool]:
    async with store.write() as conn:
        return await rv.commit(conn, document, **kwargs)


async def current(store: Store) -> rv.Revision | None:
    async with store.read() as conn:
        return await rv.current(conn)


async def audit_entries(store: Store, action: str = "config.revision") -> list[Any]:
    async with store.read() as conn:
        return list(await conn.execute(select(audit_log).where(audit_log.c.action == action).order_by(audit_log.c.seq)))


async def count(store: Store, table: Any) -> int:
    async with store.read() as conn:
        return len((await conn.execute(select(table))).all())


# -- commit -------------------------------------------------------------------------------------


async def test_revisions_are_numbered_and_carry_who_made_them(store: Store) -> None:
    assert await current(store) is None
    async with store.read() as conn:
        assert await rv.current_number(conn) == 0
    first, made = await commit(store, doc(), source="file", comment="seed", now=100.0)
    assert made and (first.number, first.parent, first.author, first.source, first.comment) == (1, None, "tidings", "file", "seed")
    second, made = await commit(store, doc({"a": HOOK}), actor=ALICE, source="api", comment="add a", now=200.0)
    assert made and (second.number, second.parent, second.author, second.source) == (2, 1, "alice@example.com", "api")
    third, _ = await commit(store, doc(), actor=Actor("token", id="t-1"), source="cli", comment=None)
    assert (third.number, third.parent, third.author, third.comment) == (3, 2, "t-1", None)
    async with store.read() as conn:
        assert await rv.current_number(conn) == 3
        assert (await rv.current(conn)) == third
        assert await rv.get(conn, 2) == second
        assert [r.number for r in await rv.history(conn)] == [3, 2, 1]
        assert [r.number for r in await rv.history(conn, limit=1, before=3)] == [2]
    assert second.etag == '"2"' and "document" not in second.summary()
    assert second.document == doc({"a": HOOK}) and second.created_at == 200.0


async def test_each_revision_is_audited_and_linked_to_its_entry(store: Store) -> None:
    await commit(store, doc())
    revision, _ = await commit(store, doc({"a": HOOK}, [{"to": ["a"]}]), actor=ALICE, comment="why", scope="default")
    [_, entry] = await audit_entries(store)
    assert revision.audit_seq == entry.seq
    assert (entry.actor, entry.actor_id, entry.target, entry.project) == ("user", "u-alice", "config/revision/2", "default")
    assert entry.after == {"revision": 2, "source": "api", "comment": "why", "parent": 1, "integrations_added": ["a"],
                           "integrations_removed": [], "integrations_changed": [], "routes_changed": True}
    async with store.read() as conn:
        stored = (await conn.execute(select(config_revisions.c.audit_seq).where(config_revisions.c.number == 2))).scalar()
    assert stored == entry.seq


async def test_an_equal_document_makes_no_revision(store: Store) -> None:
    first, _ = await commit(store, doc({"a": HOOK}))
    # The same content in another key order, without the sections every document has.
    again, made = await commit(store, {"integrations": {"a": {"url": HOOK["url"], "kind": "webhook"}}})
    assert not made and again == first
    assert len(await audit_entries(store)) == 1 and await count(store, config_revisions) == 1


async def test_an_invalid_document_stores_nothing(store: Store) -> None:
    base = parse_config({})
    first, _ = await commit(store, doc())
    bad = doc({"a": {"kind": "webhook"}}, [{"to": ["missing"]}])
    with pytest.raises(ConfigError) as caught:
        await commit(store, bad, validate=lambda d: to_config(d, base))
    assert any(p.startswith("routes[0].to[0]") for p in caught.value.problems)
    assert await current(store) == first
    assert await count(store, config_revisions) == 1 and len(await audit_entries(store)) == 1


async def test_an_invalid_first_document_leaves_no_pointer(store: Store) -> None:
    with pytest.raises(ConfigError):
        await commit(store, doc({"a": {"kind": "nope"}}), validate=lambda d: to_config(d, parse_config({})))
    assert await count(store, config_state) == 0 and await count(store, config_revisions) == 0


async def test_a_stale_if_match_on_the_same_project_is_refused(store: Store) -> None:
    await commit(store, projects_doc())
    second, _ = await commit(store, projects_doc(ops_url="https://ops2.example.com/"), expected=1, scope="ops")
    for scope in ("ops", None):
        with pytest.raises(rv.StaleRevision) as caught:
            await commit(store, projects_doc(ops_url="https://ops3.example.com/"), expected=1, scope=scope)
        assert caught.value.current == second
        assert "revision 2" in str(caught.value)
    for expected in (0, 3, 99, -1):  # none yet, a revision not made, nonsense
        with pytest.raises(rv.StaleRevision):
            await commit(store, projects_doc(ops_url="https://ops3.example.com/"), expected=expected, scope="ops")
    assert await current(store) == second and len(await audit_entries(store)) == 2


async def test_a_stale_if_match_whose_project_did_not_change_is_accepted_and_keeps_the_others(store: Store) -> None:
    first, _ = await commit(store, projects_doc())
    await commit(store, projects_doc(web_url="https://web2.example.com/"), expected=1, scope="web")
    # A writer who read revision 1 changes ops: accepted, and web's change in 2 stays.
    third, made = await commit(store, projects_doc(ops_url="https://ops2.example.com/"), expected=1, scope="ops")
    assert made and third.number == 3 and third.parent == 2
    assert third.document["integrations"]["ops-hook"]["url"] == "https://ops2.example.com/"
    assert third.document["integrations"]["web-hook"]["url"] == "https://web2.example.com/"
    assert [r["project"] for r in third.document["routes"]] == ["ops", "web"]
    # Without a scope, every project counts: the same stale write is refused.
    with pytest.raises(rv.StaleRevision):
        await commit(store, projects_doc(ops_url="https://ops3.example.com/"), expected=1)
    assert first.number == 1


async def test_expected_star_or_none_takes_whatever_is_current(store: Store) -> None:
    await commit(store, doc())
    assert (await commit(store, doc({"a": HOOK}), expected="*"))[0].number == 2
    assert (await commit(store, doc({"b": HOOK}), expected=None))[0].number == 3
    assert (await commit(store, doc({"c": HOOK}), expected=3))[0].number == 4


async def test_the_first_revision_expects_zero(store: Store) -> None:
    with pytest.raises(rv.StaleRevision):
        await commit(store, doc(), expected=1)
    assert (await commit(store, doc(), expected=0))[0].number == 1


# -- concurrent writers -------------------------------------------------------------------------


async def _race(stores: list[Store], inside: bool) -> list[Any]:
    """Two writers who both read revision 1 commit a change of the same project, expecting 1.
    ``inside``: they meet with their transactions open (PostgreSQL; SQLite's writers exclude
    each other from the transaction's start, so they meet before it)."""
    barrier = asyncio.Barrier(len(stores))

    async def write(i: int, store: Store) -> rv.Revision:
        async with store.read() as conn:
            expected = await rv.current_number(conn)
        if not inside:
            await barrier.wait()
        async with store.write() as conn:
            if inside:
                await conn.execute(select(config_state))  # the transaction is open
                await barrier.wait()
            revision, _ = await rv.commit(conn, projects_doc(ops_url=f"https://ops{i}.example.com/"),
                                          expected=expected, scope="ops", actor=Actor("user", id=f"u{i}"))
            return revision

    return await asyncio.gather(*(write(i, s) for i, s in enumerate(stores)), return_exceptions=True)


@pytest.mark.parametrize("writers", [2, 4])
async def test_concurrent_writers_with_the_same_if_match_exactly_one_wins(db_url: str, db: str, writers: int) -> None:
    stores = [Store(db_url) for _ in range(writers)]
    try:
        await stores[0].migrate()
        await commit(stores[0], projects_doc())
        results = await _race(stores, inside=db == "postgresql")
        won = [r for r in results if isinstance(r, rv.Revision)]
        lost = [r for r in results if not isinstance(r, rv.Revision)]
        assert len(won) == 1 and all(isinstance(e, rv.StaleRevision) for e in lost), results
        head = await current(stores[0])
        assert head == won[0] and head.number == 2
        assert await count(stores[0], config_revisions) == 2 and len(await audit_entries(stores[0])) == 2
    finally:
        for s in stores:
            await s.close()


async def test_concurrent_writers_of_different_projects_both_win(db_url: str, db: str) -> None:
    stores = [Store(db_url), Store(db_url)]
    try:
        await stores[0].migrate()
        await commit(stores[0], projects_doc())
        barrier = asyncio.Barrier(2)

        async def write(store: Store, document: dict[str, Any], scope: str) -> rv.Revision:
            await barrier.wait()
            async with store.write() as conn:
                return (await rv.commit(conn, document, expected=1, scope=scope))[0]

        await asyncio.gather(write(stores[0], projects_doc(ops_url="https://ops9.example.com/"), "ops"),
                             write(stores[1], projects_doc(web_url="https://web9.example.com/"), "web"))
        head = await current(stores[0])
        assert head is not None and head.number == 3
        assert head.document == projects_doc(ops_url="https://ops9.example.com/", web_url="https://web9.example.com/")
    finally:
        for s in stores:
            await s.close()


# -- secrets never stored -----------------------------------------------------------------------


async def test_no_literal_secret_reaches_a_row(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("T_REV_TOKEN", "xoxb-environment-revision-token")
    config = parse_config({"integrations": {
        "chat": {"kind": "slack", "token": SLACK_TOKEN, "channel": "#ops"},
        "chat-env": {"kind": "slack", "token": "${T_REV_TOKEN}", "channel": "#ops"},
        "hook": {"kind": "webhook", "url": "https://u:literal-url-password@h.example.com/", "headers": {"Authorization": BEARER}},
    }})
    revision, made = await import_file(store, config)
    assert made and revision.document["integrations"]["chat"]["token"] == "${file:integrations.chat.token}"
    # And through the API-style path: the document of a changed configuration.
    changed = copy.deepcopy(revision.document)
    changed["integrations"]["chat"]["channel"] = "#other"
    await commit(store, changed, validate=lambda d: to_config(d, config))
    async with store.read() as conn:
        rows = [
            *(await conn.execute(select(config_revisions))).all(),
            *(await conn.execute(select(config_state))).all(),
            *(await conn.execute(select(audit_log))).all(),
        ]
    stored = orjson.dumps([[str(v) for v in row] for row in rows]).decode()
    assert "${file:integrations.chat.token}" in stored and "${T_REV_TOKEN}" in stored
    for literal in (SLACK_TOKEN, "literal-revision-bearer-xyz", "literal-url-password", "xoxb-environment-revision-token"):
        assert literal not in stored
    run = to_config((await current(store)).document, config)  # type: ignore[union-attr]
    assert run.integrations["chat"].token.get_secret_value() == SLACK_TOKEN
    assert run.integrations["hook"].headers["Authorization"] == BEARER


# -- file imports -------------------------------------------------------------------------------


def file_config(mode: str, integrations: dict[str, Any], routes: list[Any] | None = None) -> Any:
    return parse_config({"server": {"config_source": mode}, "integrations": integrations, "routes": routes or []})


async def test_import_both_merges_the_file_change_into_what_the_api_made(store: Store) -> None:
    first, made = await import_file(store, file_config("both", {"a": HOOK}))
    assert made and first.number == 1 and first.source == "file" and first.author == "tidings"
    api_doc = copy.deepcopy(first.document)
    api_doc["integrations"]["api"] = {**HOOK, "url": "https://api.example.com/"}
    await commit(store, api_doc, actor=ALICE, expected=1)
    same, made = await import_file(store, file_config("both", {"a": HOOK}))
    assert not made and same.number == 2  # the file did not change: nothing imported
    changed, made = await import_file(store, file_config("both", {"a": {**HOOK, "url": "https://a2.example.com/"}}))
    assert made and changed.number == 3
    assert changed.document["integrations"]["a"]["url"] == "https://a2.example.com/"
    assert changed.document["integrations"]["api"]["url"] == "https://api.example.com/"
    async with store.read() as conn:
        state = await rv.lock_state(conn)
    assert state.file_document is not None and set(state.file_document["integrations"]) == {"a", "inbox"}


async def test_import_file_replaces_the_whole_revision(store: Store) -> None:
    await import_file(store, file_config("file", {"a": HOOK}))
    api_doc = doc({"a": HOOK, "api": HOOK})
    await commit(store, api_doc, expected=1)
    same, made = await import_file(store, file_config("file", {"a": HOOK}))
    assert not made and same.number == 2  # unchanged file: no revision
    new, made = await import_file(store, file_config("file", {"b": HOOK}))
    assert made and new.number == 3 and set(new.document["integrations"]) == {"b", "inbox"}


async def test_import_database_seeds_only_the_first_revision(store: Store) -> None:
    first, made = await import_file(store, file_config("database", {"a": HOOK}))
    assert made and first.number == 1 and set(first.document["integrations"]) == {"a", "inbox"}
    again, made = await import_file(store, file_config("database", {"b": HOOK}))
    assert not made and again == first
    assert len(await audit_entries(store)) == 1


async def test_an_import_whose_result_is_invalid_changes_nothing(store: Store) -> None:
    await import_file(store, file_config("both", {"a": HOOK, "x": HOOK}))
    routed = doc({"a": HOOK, "x": HOOK}, [{"to": ["x"]}])  # the API routes to x
    await commit(store, routed, expected=1)
    async with store.read() as conn:
        before = (await conn.execute(select(config_state))).one()
    with pytest.raises(ConfigError) as caught:
        await import_file(store, file_config("both", {"a": HOOK}))  # the file removes x
    assert any(p.startswith("routes[0].to[0]") for p in caught.value.problems)
    async with store.read() as conn:
        assert (await conn.execute(select(config_state))).one() == before
    assert (await current(store)).number == 2  # type: ignore[union-attr]


# -- held deliveries ----------------------------------------------------------------------------


ROWS = [  # id, integration, status, attempts, next_attempt_at
    ("d-pending", "hook", "pending", 0, 50.0),
    ("d-retrying", "hook", "retrying", 2, 500.0),
    ("d-leased", "hook", "sending", 1, 10_000.0),  # being sent: its lease runs
    ("d-expired", "hook", "sending", 1, 50.0),  # its sender is gone
    ("d-done", "hook", "delivered", 1, 50.0),
    ("d-dead", "hook", "dead", 10, 50.0),
    ("d-other", "other", "pending", 0, 50.0),
]


async def _deliveries(store: Store) -> dict[str, tuple[str, str | None, float]]:
    async with store.read() as conn:
        rows = await conn.execute(select(deliveries.c.id, deliveries.c.status, deliveries.c.last_error,
                                         deliveries.c.next_attempt_at))
        return {r.id: (r.status, r.last_error, r.next_attempt_at) for r in rows}


async def test_a_removed_integrations_deliveries_are_held_and_resume_when_it_returns(store: Store) -> None:
    with_hook = doc({"hook": HOOK, "other": HOOK})
    await commit(store, with_hook)
    async with store.write() as conn:
        await conn.execute(text("INSERT INTO messages (id, created_at, title, priority, data) VALUES ('m', 1, 't', 2, '{}')"))
        for d_id, integration, status, attempts, due in ROWS:
            await conn.execute(deliveries.insert().values(
                id=d_id, message_id="m", integration=integration, status=status, priority=2, attempts=attempts,
                created_at=1.0, updated_at=1.0, queued_at=1.0, next_attempt_at=due,
                lease_owner="w1" if status == "sending" else None, last_error="timeout" if attempts else None))
    removed, _ = await commit(store, doc({"other": HOOK}), now=100.0)
    held = await _deliveries(store)
    reason = f"held: integration removed in configuration revision {removed.number}"
    for d_id in ("d-pending", "d-retrying", "d-expired"):
        assert held[d_id][:2] == ("held", reason), d_id
    assert held["d-leased"][0] == "sending" and held["d-done"][0] == "delivered" and held["d-dead"][0] == "dead"
    assert held["d-other"][0] == "pending"
    assert (await audit_entries(store))[-1].after["integrations_removed"] == ["hook"]

    await commit(store, doc({"other": HOOK, "unrelated": HOOK}), now=150.0)  # not hook: still held
    assert (await _deliveries(store))["d-pending"][0] == "held"

    await commit(store, with_hook, now=200.0)
    back = await _deliveries(store)
    assert back["d-pending"] == ("pending", None, 200.0)
    assert back["d-retrying"] == ("retrying", None, 200.0)  # it was tried before
    assert back["d-expired"] == ("retrying", None, 200.0)
    assert back["d-leased"][0] == "sending" and back["d-done"][0] == "delivered" and back["d-dead"][0] == "dead"


# -- NOTIFY ---------------------------------------------------------------------------------------


async def test_a_commit_notifies_listeners_on_postgresql(pg_url: str) -> None:
    import psycopg

    store = Store(pg_url)
    listener = await psycopg.AsyncConnection.connect(PG_URL, autocommit=True)
    try:
        await store.migrate()
        await listener.execute(f"LISTEN {rv.CHANNEL}")
        async with store.write() as conn:
            pid = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar()
            revision, _ = await rv.commit(conn, doc({"a": HOOK}))
            early = await _notified(listener, pid, timeout=0.3)
        assert early is None  # nothing before the transaction commits
        assert await _notified(listener, pid, timeout=10) == str(revision.number)
        async with store.write() as conn:  # an equal document: no revision, no notification
            pid = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar()
            assert not (await rv.commit(conn, doc({"a": HOOK})))[1]
        assert await _notified(listener, pid, timeout=0.3) is None
    finally:
        await listener.close()
        await store.close()


async def _notified(listener: Any, pid: int, timeout: float) -> str | None:
    """The payload of the next notification sent by backend ``pid`` (other tests share the
    database, and so the channel), or None after ``timeout``."""
    async for notify in listener.notifies(timeout=timeout):
        if notify.pid == pid:
            return str(notify.payload)
    return None


async def test_no_notification_on_sqlite(tmp_path: Any) -> None:
    store = Store(f"sqlite:///{tmp_path / 'n.db'}")
    try:
        await store.migrate()
        executed: list[str] = []
        assert store.sync_engine is not None
        from sqlalchemy import event

        event.listen(store.sync_engine, "before_cursor_execute",
                     lambda *args: executed.append(str(args[2])))
        await commit(store, doc())
        assert executed and not any("pg_notify" in s for s in executed)
    finally:
        await store.close()

