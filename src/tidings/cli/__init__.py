"""The ``tidings`` command (Typer + Rich). Errors are one line and a non-zero exit code.

One module per command group; each registers its commands on the root ``app`` when imported."""

from __future__ import annotations

import importlib
import sys

from .. import __version__
from ._common import app, out

# Each module registers its commands when imported; this order is the order of `tidings --help`.
COMMAND_MODULES = ("init", "serve", "send", "deliveries", "config", "tokens", "keys", "secrets", "db", "integrations",
                   "events", "silences")
for _module in COMMAND_MODULES:
    importlib.import_module(f"{__name__}.{_module}")


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


@app.command()
def version() -> None:
    """Print the version."""
    out.print(__version__)


__all__ = ["app", "main"]
