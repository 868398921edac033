"""`tidings config`."""

from __future__ import annotations

import json
import sys

import typer

from ..config import config_path, config_schema, load_config
from ._common import (
    ConfigOpt,
    app,
    handled,
    out,
)

config_app = typer.Typer(help="Check the configuration or print its JSON Schema.", no_args_is_help=True)
app.add_typer(config_app, name="config")


@config_app.command("validate")
@handled
def config_validate(config: ConfigOpt = None) -> None:
    """Check tidings.yaml: one line per problem, with its path; exit code 2 when invalid."""
    cfg = load_config(config, required=True)
    out.print(f"{config_path(config)}: ok ({len(cfg.integrations)} integrations, {len(cfg.routes)} routes)", highlight=False)


@config_app.command("schema")
def config_schema_cmd() -> None:
    """Print the JSON Schema of tidings.yaml (for editor completion)."""
    sys.stdout.write(json.dumps(config_schema(), indent=2) + "\n")
