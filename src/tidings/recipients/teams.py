"""A recipient's own Microsoft Teams workflow URL, read when a card is sent to them.

The URL is a credential: the recipient's row holds only ``${vault:recipient/<project>/<name>/teams}``
(see ``recipients/store.py``), so planning and addressing never see it; the Teams integration asks
:class:`TeamsUrls` for it (``Context.person_url``) right before it posts. A resolved URL is kept
while the directory holds the same :class:`~tidings.recipients.model.Person`: the directory makes
new ones whenever it reloads (at once after a change in this process, every few seconds for a change
made elsewhere), so a rotated URL applies within that time without a vault read per card.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import VaultError
from ..integrations.base import VAULT_REF
from .model import Person

if TYPE_CHECKING:
    from ..hub import Hub


class AddressGone(LookupError):
    """The person can't be reached there (any more): the delivery ends ``dead`` with this reason."""


class TeamsUrls:
    """``(recipient id, project) -> (their name, their Teams workflow URL)``; raises
    :class:`AddressGone` with the reason when there is none to post to."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self._known: dict[str, tuple[Person, str]] = {}
        """Recipient id -> (the Person the URL was read for, the URL)."""

    async def __call__(self, recipient_id: str, project: str) -> tuple[str, str]:
        directory = self.hub.directory
        person = directory.person(recipient_id) if directory is not None else None
        if person is None:
            self._known.pop(recipient_id, None)
            raise AddressGone(f"recipient {recipient_id} no longer exists: nothing sent")
        if person.project != project:
            raise AddressGone(f"recipient {recipient_id} is not of project {project}: nothing sent")
        ref = VAULT_REF.match(person.teams_url or "")
        if ref is None:
            self._known.pop(recipient_id, None)
            raise AddressGone(f"{person.name} has no Teams workflow URL any more: nothing sent")
        known = self._known.get(recipient_id)
        if known is not None and known[0] is person:
            return person.name, known[1]
        url = await self._read(person, ref.group(1))
        self._known[recipient_id] = (person, url)
        return person.name, url

    async def _read(self, person: Person, secret: str) -> str:
        vault = self.hub.vault
        if vault is None or not vault.available:
            raise AddressGone(f"{person.name}'s Teams workflow URL is in the vault, which has no secret key here:"
                              " nothing sent")
        try:
            return await vault.get(secret)
        except VaultError as exc:
            if await vault.info(secret) is None:  # removed since the directory last loaded
                raise AddressGone(f"{person.name} has no Teams workflow URL any more: nothing sent") from None
            raise AddressGone(f"{person.name}'s Teams workflow URL can't be read: {exc}: nothing sent") from None
