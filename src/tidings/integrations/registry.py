"""Kind -> integration class. The only module that names providers; the core never imports one."""

from __future__ import annotations

import importlib
from functools import cache

from .base import IntegrationSettings, Notifier

KINDS: dict[str, str] = {
    "inbox": "tidings.integrations.inbox:InboxNotifier",
    "slack": "tidings.integrations.slack:SlackNotifier",
    "webhook": "tidings.integrations.webhook:WebhookNotifier",
    "teams": "tidings.integrations.teams:TeamsNotifier",
    "email": "tidings.integrations.email:EmailNotifier",
}


def kinds() -> list[str]:
    return sorted(KINDS)


@cache
def notifier_class(kind: str) -> type[Notifier]:
    try:
        target = KINDS[kind]
    except KeyError:
        raise KeyError(f"unknown integration kind {kind!r}; known kinds: {', '.join(kinds())}") from None
    module, _, attr = target.partition(":")
    cls: type[Notifier] = getattr(importlib.import_module(module), attr)
    return cls


def settings_model(kind: str) -> type[IntegrationSettings]:
    return notifier_class(kind).Settings
