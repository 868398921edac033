"""The HTTP server: REST API, health and metrics (FastAPI, run by uvicorn)."""

from .app import create_app

__all__ = ["create_app"]
