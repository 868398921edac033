"""`tidings keys`."""

from __future__ import annotations

import os
import sys

import typer

from ..config import config_path
from ._common import (
    ConfigOpt,
    _vault,
    app,
    handled,
    out,
    run,
)

keys_app = typer.Typer(help="The keys that encrypt stored secrets.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


@keys_app.command("rotate")
@handled
def keys_rotate(config: ConfigOpt = None) -> None:
    """Add a new primary key and re-encrypt every stored secret with it."""
    from ..security.vault import KEY_ENV, key_file_path, new_key, write_key_file

    fresh = new_key()
    path = config_path(config)
    key_file = key_file_path(path.resolve().parent)

    async def _rotate() -> tuple[int, list[str]]:
        async with _vault(config) as vault:
            if not vault.available:
                raise ValueError(f"no key to rotate: set ${KEY_ENV} or run `tidings init`")
            count = await vault.rotate(fresh)
            return count, vault.keys or []

    count, keys = run(_rotate())
    if os.environ.get(KEY_ENV):
        out.print(f"re-encrypted {count} secret(s). Set this in the environment of every tidings process:")
        sys.stdout.write(f"{KEY_ENV}={','.join(keys)}\n")
        return
    write_key_file(key_file, keys)
    out.print(f"re-encrypted {count} secret(s) with a new key; {key_file} holds it (older keys kept for reading)")
