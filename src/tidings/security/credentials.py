"""The credential manager: what the CLI (``tidings secret``) and the API (``/api/v1/secrets``) show
of stored secrets and how they delete them. Values never leave: a secret is shown as its metadata,
the integrations that refer to it, and at most its last four characters (:func:`masked`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..audit import SYSTEM, Actor
from ..errors import NotFound, VaultError
from ..integrations.base import secret_refs
from .vault import Vault, check_name

if TYPE_CHECKING:
    from ..config import Config

SHOW_TAIL_FROM = 16
"""A value shows its last four characters only when it has at least this many: four characters of
a 16-character secret still leave twelve unknown; of a shorter one (a PIN, a short password) they
would give away too much, so it shows as ``…`` alone."""


class SecretInUse(VaultError):
    """A secret that integrations refer to was to be deleted without ``force``."""

    def __init__(self, name: str, integrations: list[str]) -> None:
        from ..oauth.names import is_connection_secret

        self.integrations = integrations
        users = ", ".join(integrations)
        if is_connection_secret(name):
            super().__init__(
                f"secret {name!r} is referenced by {users}: it is the token of an OAuth connection in use; "
                "disconnect the integration instead (or set oauth: false first)"
            )
            return
        super().__init__(
            f"secret {name!r} is referenced by {users}: remove the ${{vault:{name}}} references "
            "first, or force it (those integrations then keep the value they hold until their next start, which fails)"
        )


def references(config: Config) -> dict[str, list[str]]:
    """Secret name -> the integrations whose settings refer to it as ``${vault:NAME}`` in ``config``
    (sorted). The one place that answers "who uses this secret" for list, show and delete."""
    found: dict[str, set[str]] = {}
    for integration, settings in config.integrations.items():
        for secret in secret_refs(integration, settings).values():
            found.setdefault(secret, set()).add(integration)
    return {name: sorted(users) for name, users in sorted(found.items())}


def check_fits(config: Config, name: str, value: str) -> None:
    """ValueError when an integration referring to ``name`` would refuse ``value`` (a Slack token
    not starting with ``xoxb-``, a webhook secret without ``whsec_``...): stored, the running hub
    would keep the old value and the next start would fail. The message never holds the value."""
    from pydantic import ValidationError

    for integration, settings in config.integrations.items():
        for field, secret in settings.vault_refs().items():
            if secret != name:
                continue
            try:
                type(settings).model_validate({**settings.model_dump(), field: value})
            except ValidationError as exc:
                why = "; ".join(str(e.get("msg", "invalid")).removeprefix("Value error, ") for e in exc.errors())
                raise ValueError(f"integrations.{integration}.{field} refers to {name} and would refuse this value: "
                                 + why.replace(value, masked(value))) from None


def masked(value: str) -> str:
    """``…abcd``: the last four characters of a value of at least :data:`SHOW_TAIL_FROM`
    characters; ``…`` alone for a shorter one."""
    return "…" + value[-4:] if len(value) >= SHOW_TAIL_FROM else "…"


async def list_secrets(vault: Vault, config: Config) -> list[dict[str, Any]]:
    """Every stored secret's metadata and the integrations referring to it (never a value)."""
    refs = references(config)
    return [{**info, "references": refs.get(info["name"], [])} for info in await vault.infos()]


async def show_secret(vault: Vault, config: Config, name: str) -> dict[str, Any]:
    """One secret's metadata, references and masked value (None when the configured keys can't
    decrypt it); :class:`NotFound` when there is no such secret."""
    info = await vault.info(name)
    if info is None:
        raise NotFound(f"no secret named {name!r}")
    try:
        shown: str | None = masked(await vault.get(name))
    except VaultError:
        shown = None
    return {**info, "references": references(config).get(name, []), "masked": shown}


async def delete_secret(
    vault: Vault, config: Config, name: str, *, force: bool = False, actor: Actor = SYSTEM
) -> dict[str, Any]:
    """Delete ``name`` for good. Refused (:class:`SecretInUse`) while integrations of ``config``
    refer to it, unless ``force``; :class:`NotFound` when there is no such secret. Returns its
    metadata, the references it had and whether the purge completed (``purged``)."""
    using = references(config).get(name, [])
    if using and not force:
        if await vault.info(name) is None:
            raise NotFound(f"no secret named {name!r}")
        raise SecretInUse(name, using)
    note = {"forced": True, "references": using} if using else None
    deleted = await vault.delete(name, actor=actor, note=note)
    if deleted is None:
        raise NotFound(f"no secret named {name!r}")
    return {**deleted, "references": using}


__all__ = ["SHOW_TAIL_FROM", "SecretInUse", "check_fits", "check_name", "delete_secret", "list_secrets", "masked", "references",
           "show_secret"]
