"""The in-memory views read without a query (silences, recipients, the integrations disabled) never
go back to older rows: a periodic load that began reading before a change committed, and ends after
the load that change made, is dropped (on PostgreSQL a read awaits, so the two overlap)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from tidings.audit import SYSTEM
from tidings.background import Loads
from tidings.config import parse_config
from tidings.delivery.dispatcher import Dispatcher
from tidings.delivery.holds import set_disabled
from tidings.integrations.base import Context
from tidings.integrations.webhook import WebhookIntegration
from tidings.recipients.directory import Directory
from tidings.recipients.store import create_recipient
from tidings.silences import Silences
from tidings.store.engine import Store

T = TypeVar("T")


def slow_first_read(store: Store) -> tuple[asyncio.Event, asyncio.Event]:
    """The store's first read takes its rows, then waits for ``release`` before it ends (as a read
    still under way when a change commits); ``read`` is set once it has its rows."""
    read, release = asyncio.Event(), asyncio.Event()
    original = store.read
    calls = 0

    @contextlib.asynccontextmanager
    async def reading() -> AsyncIterator[Any]:
        nonlocal calls
        calls += 1
        first = calls == 1
        async with original() as conn:
            yield conn
        if first:
            read.set()
            await release.wait()

    store.read = reading  # type: ignore[method-assign]
    return read, release


async def change_during_a_load(store: Store, load: Callable[[], Awaitable[None]], change: Callable[[], Awaitable[T]]) -> T:
    """Begin ``load`` (its read takes its rows, then is held open), make ``change`` (which loads
    again itself, as the code does after a change), then let the first load end."""
    read, release = slow_first_read(store)
    periodic = asyncio.create_task(load())
    await read.wait()
    made = await change()
    release.set()
    await periodic
    return made


async def test_a_load_begun_before_a_silence_does_not_take_it_away(db_url: str) -> None:
    store = Store(db_url)
    try:
        view = Silences(store)

        async def add() -> Any:
            made, _ = await view.create({"service": "api"}, 600, by="ops")  # commits, then loads again
            assert view.match({"service": "api"}) == made
            return made

        made = await change_during_a_load(store, view.load, add)
        assert view.match({"service": "api"}) == made, "the older rows were dropped"
        await view.load()
        assert view.match({"service": "api"}) == made
    finally:
        await store.close()


async def test_a_load_begun_before_a_new_recipient_does_not_take_them_away(db_url: str) -> None:
    store = Store(db_url)
    try:
        view = Directory(store)

        async def add_ann() -> dict[str, Any]:
            async with store.write() as conn:
                made = await create_recipient(conn, "default", "ann", {"email": "ann@example.com"}, actor=SYSTEM)
            await view.reload("default")
            assert view.person(made["id"]) is not None
            return made

        made = await change_during_a_load(store, view.load, add_ann)
        assert view.person(made["id"]) is not None, "the older rows were dropped"
        assert [p.name for p in view.people("default").persons.values()] == ["ann"]
    finally:
        await store.close()


async def test_a_read_begun_before_an_enable_does_not_disable_the_lane_again(db_url: str) -> None:
    store = Store(db_url)
    try:
        settings = parse_config({"integrations": {"ops": {"kind": "webhook", "url": "https://x.example.com"}}})
        ops = WebhookIntegration("ops", settings.integrations["ops"], Context(store=store, threads=None))  # type: ignore[arg-type]
        dispatcher = Dispatcher(store, [ops])
        async with store.write() as conn:
            await set_disabled(conn, "ops", True, "disabled by hand", time.time())

        async def enable() -> None:  # what Hub.set_enabled does
            async with store.write() as conn:
                await set_disabled(conn, "ops", False, None, time.time())
            dispatcher.set_enabled("ops", True)

        await change_during_a_load(store, lambda: dispatcher._refresh_disabled(force=True), enable)
        assert not dispatcher.lanes["ops"].disabled, "the older rows were dropped"
        await dispatcher._refresh_disabled(force=True)
        assert not dispatcher.lanes["ops"].disabled
    finally:
        await store.close()


def test_loads_show_only_what_is_newer_than_shown() -> None:
    loads = Loads()
    first, second = loads.begin(), loads.begin()
    assert loads.show(second)
    assert not loads.show(first), "begun before the one shown"
    third = loads.begin()
    assert loads.show(third)
    fourth, fifth = loads.begin(), loads.begin()
    assert loads.show(fourth) and loads.show(fifth), "in the order they began: both shown"
