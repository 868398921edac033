"""`tidings keys rotate`."""

import os
from typing import Any

from ._common import ConfigOpt, JsonOpt, _vault, cli_actor, emit, group, handled, out, run

keys_app = group("keys", "The keys that encrypt stored secrets.")


@keys_app.command("rotate")
@handled
def keys_rotate(config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Add a new primary key and re-encrypt every stored secret with it (one transaction, audited)."""
    from ..config import config_path
    from ..security.vault import KEY_ENV, key_file_path, new_key, write_key_file

    fresh = new_key()
    key_file = key_file_path(config_path(config).resolve().parent)
    from_env = bool(os.environ.get(KEY_ENV))

    async def _rotate() -> tuple[int, list[str]]:
        async with _vault(config) as vault:
            if not vault.available:
                raise ValueError(f"no key to rotate: set ${KEY_ENV} or run `tidings init`")
            if not from_env:  # the new key is on disk before any secret depends on it
                write_key_file(key_file, [fresh, *(vault.keys or [])])
            count = await vault.rotate(fresh, actor=cli_actor())
            return count, vault.keys or []

    count, keys = run(_rotate())
    if from_env:
        line = f"{KEY_ENV}={','.join(keys)}"

        def human() -> None:
            out.print(f"re-encrypted {count} secret(s). Set this in the environment of every tidings process:")
            out.print(line, highlight=False, soft_wrap=True)

        emit({"re_encrypted": count, "env": line}, as_json, human)
        return
    data: dict[str, Any] = {"re_encrypted": count, "key_file": str(key_file)}
    emit(data, as_json, f"re-encrypted {count} secret(s) with a new key; {key_file} holds it (older keys kept for reading)")
