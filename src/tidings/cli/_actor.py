"""Who runs a CLI command, as the audit trail records it."""

from __future__ import annotations

import getpass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..audit import Actor


def _cli_actor() -> Actor:
    """The person at the terminal: ``cli:<login name>``, authenticated by access to the host."""
    from ..audit import Actor

    try:
        login = getpass.getuser()
    except (OSError, KeyError):  # no USER/LOGNAME and no passwd entry (a bare container)
        login = "unknown"
    return Actor("user", name=f"cli:{login}", auth_method="cli")
