"""Who the CLI acts as in the audit trail: the operating-system user running it."""

from __future__ import annotations

import getpass
import os

from ..audit import Actor


def _cli_actor() -> Actor:
    """``cli:<login>`` (``cli:uid:<n>`` where the system has no name for the user)."""
    try:
        login = getpass.getuser()
    except (OSError, KeyError):  # no $USER and no passwd entry (a container's random uid)
        login = f"uid:{os.getuid()}"
    return Actor("user", name=f"cli:{login}", auth_method="cli")
