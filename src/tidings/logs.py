"""Logging: structlog, with every known secret masked before anything is written."""

from __future__ import annotations

import logging
import os
import sys

import structlog

from .security.redact import structlog_processor


def configure(level: str | None = None, json: bool | None = None) -> None:
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
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
