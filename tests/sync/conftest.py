"""Fixtures for the sync engine: a hub on the test's database (migrated once per worker, emptied
per test: tests/migrated.py), fake trackers, engines on them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fake_tracker import FakeTracker
from sync.e2e_support import make_world  # noqa: F401  (fixture: a served hub with GitHub and Jira stand-ins)

from tidings import Hub
from tidings.sync.engine import Engine


@pytest.fixture
async def hub(make_hub: Callable[..., Any]) -> Hub:
    return await make_hub(dispatch=False, migrate=False)  # type: ignore[no-any-return]


@pytest.fixture
def make_engine(hub: Hub) -> Callable[..., tuple[Engine, FakeTracker]]:
    """``make_engine(name, **sync)``: a fake tracker with that ``sync:`` block and an engine on it."""

    def build(name: str = "fake", **sync: Any) -> tuple[Engine, FakeTracker]:
        carries = sync.pop("carries", None)
        tracker = FakeTracker(name, **({"carries": carries} if carries else {}), **sync)
        engine = Engine(hub, tracker)
        engine.retry_delays = (0.0, 0.0)
        engine.claim_poll = 0.005
        return engine, tracker

    return build
