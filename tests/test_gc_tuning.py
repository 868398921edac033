"""The collector settings a running hub applies, and puts back when it stops."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any

import pytest

from tidings import gc_tuning


@pytest.fixture(autouse=True)
def pristine_collector() -> Iterator[None]:
    """Each test starts from CPython's defaults with nothing frozen, and leaves them so."""
    saved = gc.get_threshold()
    gc.unfreeze()
    gc.set_threshold(700, 10, 10)
    yield
    while gc_tuning._users:
        gc_tuning.restore()
    gc.unfreeze()
    gc.set_threshold(*saved)


def test_tune_freezes_the_heap_and_raises_the_young_threshold() -> None:
    assert gc_tuning.tune(20_000) is True
    assert gc.get_threshold() == (20_000, 10, 10)
    assert gc.get_freeze_count() > 0
    gc_tuning.restore()
    assert gc.get_threshold() == (700, 10, 10)
    assert gc.get_freeze_count() == 0


def test_none_leaves_the_collector_alone() -> None:
    assert gc_tuning.tune(None) is False
    assert gc.get_threshold() == (700, 10, 10)
    assert gc.get_freeze_count() == 0


def test_nested_users_restore_only_when_the_last_one_stops() -> None:
    gc_tuning.tune(20_000)
    gc_tuning.tune(50_000)  # a second hub: the first one's settings stay
    assert gc.get_threshold() == (20_000, 10, 10)
    gc_tuning.restore()
    assert gc.get_threshold() == (20_000, 10, 10)
    gc_tuning.restore()
    assert gc.get_threshold() == (700, 10, 10)
    gc_tuning.restore()  # one too many: harmless
    assert gc.get_threshold() == (700, 10, 10)


def test_a_heap_frozen_by_the_application_stays_frozen(monkeypatch: pytest.MonkeyPatch) -> None:
    gc.freeze()
    frozen = gc.get_freeze_count()
    calls: list[str] = []
    monkeypatch.setattr(gc, "freeze", lambda: calls.append("freeze"))
    monkeypatch.setattr(gc, "unfreeze", lambda: calls.append("unfreeze"))
    gc_tuning.tune(20_000)
    gc_tuning.restore()
    assert calls == [], "the application's frozen heap is neither frozen again nor unfrozen"
    # Not an exact count: a frozen object can still be freed by its last reference going away
    # (another thread of this worker did, between the two reads, in a CI run).
    assert gc.get_freeze_count() > frozen * 0.99


def test_a_threshold_already_higher_is_kept() -> None:
    gc.set_threshold(100_000, 10, 10)
    gc_tuning.tune(20_000)
    assert gc.get_threshold() == (100_000, 10, 10)
    gc_tuning.restore()
    assert gc.get_threshold() == (100_000, 10, 10)


async def test_a_hub_tunes_while_it_runs_and_restores_on_stop(make_hub: Any) -> None:
    hub = await make_hub()
    assert gc.get_threshold()[0] == 20_000
    await hub.stop()
    assert gc.get_threshold() == (700, 10, 10)
    assert gc.get_freeze_count() == 0


async def test_gc_threshold_null_in_the_config_leaves_it_alone(make_hub: Any) -> None:
    hub = await make_hub({"server": {"gc_threshold": None}})
    assert gc.get_threshold() == (700, 10, 10)
    await hub.stop()
    assert gc.get_threshold() == (700, 10, 10)


@pytest.mark.fresh_db
async def test_a_hub_that_fails_to_start_leaves_the_collector_alone(make_config: Any, tmp_path: Any) -> None:
    from tidings import Hub

    hub = Hub(make_config(), config_dir=tmp_path, migrate=False)  # no tables: the dispatcher can't start
    with pytest.raises(Exception):  # noqa: B017 (whatever the database says)
        await hub.start()
    assert not hub.started
    assert gc.get_threshold() == (700, 10, 10)
    assert gc.get_freeze_count() == 0
    await hub.stop()  # harmless
