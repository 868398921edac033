"""The web UI: server-rendered pages (Jinja2, htmx) under ``/ui``, a client of the API.

Each area is a module with a ``router``; :func:`install` adds them all to the app."""

from __future__ import annotations

from fastapi import FastAPI

AREAS = ("dashboard", "integrations", "messages", "events", "tasks", "history", "audit", "people", "tokens",
         "connections", "recipients")


def install(app: FastAPI) -> None:
    import importlib

    from . import pages

    pages.install(app)
    for area in AREAS:
        app.include_router(importlib.import_module(f".{area}", __name__).router)
