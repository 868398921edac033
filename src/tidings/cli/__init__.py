"""The ``tidings`` command (Typer + Rich). Errors are one line and a non-zero exit code.

One module per command group; each registers its commands on the root ``app`` when imported.
"""

import importlib
import sys
from typing import Annotated

import typer

from .. import __version__
from ._common import ConfigOpt, JsonOpt, app, print_json, reset_config

# Each module registers its commands when imported; this order is the order of `tidings --help`.
COMMAND_MODULES = ("init", "serve", "send", "deliveries", "messages", "config", "users", "projects", "members",
                   "tokens", "keys", "secrets", "db", "integrations", "events", "silences", "tasks", "calendars", "audit",
                   "sync", "connections", "recipients", "incidents")


def _print_version(value: bool) -> None:
    if value:
        sys.stdout.write(__version__ + "\n")
        raise typer.Exit()


@app.callback()
def root(
    config: ConfigOpt = None,
    version: Annotated[bool, typer.Option("--version", is_eager=True, callback=_print_version,
                                          help="print the version and exit")] = False,
) -> None:
    """tidings: notifications out, verified webhooks in, durable in between."""
    reset_config(config)


for _module in COMMAND_MODULES:
    importlib.import_module(f"{__name__}.{_module}")


@app.command()
def version(as_json: JsonOpt = False) -> None:
    """Print the version."""
    if as_json:
        print_json({"version": __version__})
    else:
        sys.stdout.write(__version__ + "\n")


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


__all__ = ["app", "main"]
