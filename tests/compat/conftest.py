"""Fixtures for the compatibility facades: structlog capture that works whatever logging another
test configured (cached loggers included). The fake Slack and Teams servers, the SMTP server and
``serve_asgi`` come from tests/conftest.py."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

import tidings.compat._channels
import tidings.compat.alerting
import tidings.compat.communication
import tidings.compat.middleware


@pytest.fixture
def logs() -> Iterator[list[dict[str, Any]]]:
    """Every structlog event the facades log during the test (from any thread)."""
    saved = structlog.get_config()
    structlog.configure(
        cache_logger_on_first_use=False,
        wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
    )
    modules = {
        tidings.compat._channels: "tidings.compat",
        tidings.compat.communication: "tidings.compat",
        tidings.compat.alerting: "tidings.compat.alerting",
        tidings.compat.middleware: "tidings.compat.middleware",
    }
    with pytest.MonkeyPatch.context() as mp:
        for module, name in modules.items():
            mp.setattr(module, "log", structlog.get_logger(name))  # a fresh, uncached logger
        try:
            with structlog.testing.capture_logs() as captured:
                yield captured
        finally:
            structlog.configure(**saved)

