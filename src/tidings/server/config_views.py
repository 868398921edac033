"""What a reader sees of the configuration: the current document, a revision's document and an
integration's settings with every secret masked (never a value)."""

from __future__ import annotations

import copy
import os
import re
from typing import Any

from ..config import revisions
from ..config.document import FILE_REF, Document, is_reference, normalize, secret_fields
from ..errors import VaultError
from ..hub import Hub
from ..integrations.base import VAULT_REF
from ..integrations.registry import KINDS
from ..security.credentials import masked
from ..security.redact import redact_value

_ENV = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-[^}]*)?\}$")


async def head_of(hub: Hub) -> tuple[int, Document]:
    """The current revision's number and document (0 and an empty document before the first)."""
    async with hub.require_store().read() as conn:
        head = await revisions.current(conn)
    return (head.number, head.document) if head is not None else (0, normalize({}))


def mask_document(doc: Document) -> Document:
    """``doc`` with every secret field that is not a reference masked (``…abcd``), and any known
    secret elsewhere (a password in a URL's userinfo) masked as the logs mask it."""
    out = copy.deepcopy(normalize(doc))
    for entry in out["integrations"].values():
        if not isinstance(entry, dict) or entry.get("kind") not in KINDS:
            continue
        for name in secret_fields(entry["kind"]):
            value = entry.get(name)
            if value is not None and not is_reference(value):
                entry[name] = masked(value) if isinstance(value, str) else "…"
    return redact_value(out)  # type: ignore[no-any-return]


async def secret_view(hub: Hub, value: Any) -> dict[str, Any]:
    """What a reader sees of a secret field: whether it is set, its last characters at most, and
    the reference it is written as (never the value)."""
    if not isinstance(value, str):
        return {"set": False, "masked": None, "reference": None}
    if (ref := VAULT_REF.match(value)) is not None:
        shown = None
        if hub.vault is not None and hub.vault.available:
            try:
                shown = masked(await hub.vault.get(ref.group(1)))
            except VaultError:
                shown = None
        exists = shown is not None or (hub.vault is not None and await hub.vault.info(ref.group(1)) is not None)
        return {"set": exists, "masked": shown, "reference": value}
    if (ref := FILE_REF.match(value)) is not None:
        settings = hub.file_config.integrations.get(ref.group(1))
        secret = getattr(settings, ref.group(2), None) if settings is not None else None
        value_of = secret.get_secret_value() if secret is not None and hasattr(secret, "get_secret_value") else None
        return {"set": bool(value_of), "masked": masked(value_of) if value_of else None, "reference": value}
    if (ref := _ENV.match(value)) is not None:
        env = os.environ.get(ref.group(1))
        return {"set": env is not None, "masked": masked(env) if env else None, "reference": value}
    return {"set": bool(value), "masked": masked(value) if value else None, "reference": None}


async def settings_view(hub: Hub, entry: dict[str, Any]) -> dict[str, Any]:
    """An integration's settings as written, without ``kind`` and ``project``, secrets as
    :func:`secret_view`, any known secret elsewhere masked (a password in a URL)."""
    out = redact_value({k: copy.deepcopy(v) for k, v in entry.items() if k not in ("kind", "project")})
    if entry.get("kind") in KINDS:
        for name in secret_fields(entry["kind"]):
            if name in out:
                out[name] = await secret_view(hub, out[name])
    return out
