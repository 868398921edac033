"""Logging: structlog on stderr, with every known secret masked before anything is written.

``configure`` is what the commands call (``TIDINGS_LOG_LEVEL``, ``TIDINGS_LOG_FORMAT``). Used as
a library, tidings leaves a structlog configuration alone when the application made one; when
it made none, :func:`library_default` sends structlog's lines to stderr (never stdout, which
belongs to the application) and keeps them replaceable by a later ``structlog.configure``.

:class:`Throttle` keeps what could flood (one line per failed delivery or rejected request) to
one line per key every so many seconds, with the count of lines held back.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Hashable
from typing import Any, TextIO

import structlog

from .security.redact import structlog_processor


class _Stderr:
    """Whatever ``sys.stderr`` is when a line is written, not when logging was configured: a
    stream replaced later (a test runner's capture, a daemon redirecting its output) and closed
    must not take the process's logging, and with it every request that logs, down."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure(
    level: str | None = None, json: bool | None = None, *, cache: bool = True, file: TextIO | None = None
) -> None:
    """structlog with secrets masked, to ``file`` (default: whatever ``sys.stderr`` is at each line)."""
    level = (level or os.environ.get("TIDINGS_LOG_LEVEL") or "INFO").upper()
    if json is None:
        json = os.environ.get("TIDINGS_LOG_FORMAT", "").lower() == "json" or not sys.stderr.isatty()
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog_processor,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping().get(level, logging.INFO)),
        logger_factory=structlog.PrintLoggerFactory(file=file or _Stderr()),  # type: ignore[arg-type]
        cache_logger_on_first_use=cache,
    )


def library_default() -> None:
    """Configure structlog as :func:`configure` does (stderr, masked), unless it is configured
    already; loggers aren't cached, so the application's own ``structlog.configure`` still wins."""
    if not structlog.is_configured():
        configure(cache=False)


class Throttle:
    """At most one line per key every ``interval`` seconds. A line let through after others were
    held back carries ``suppressed=<how many>``. Keys are few (integration and reason), and the
    table is bounded all the same."""

    MAX_KEYS = 4096

    def __init__(self, interval: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self._clock = clock
        self._seen: dict[Hashable, tuple[float, int]] = {}
        self._lock = threading.Lock()

    def __call__(self, emit: Callable[..., Any], key: Hashable, event: str, **fields: Any) -> bool:
        """``emit(event, **fields)`` unless a line of ``key`` went out less than ``interval`` ago."""
        now = self._clock()
        with self._lock:
            last, held = self._seen.get(key, (float("-inf"), 0))
            if now - last < self.interval:
                self._seen[key] = (last, held + 1)
                return False
            if len(self._seen) >= self.MAX_KEYS and key not in self._seen:
                self._seen.clear()
            self._seen[key] = (now, 0)
        if held:
            fields["suppressed"] = held
        emit(event, **fields)
        return True


__all__ = ["Throttle", "configure", "library_default"]
