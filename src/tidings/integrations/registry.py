"""Kind -> integration class. The only module that names providers; the core never imports one."""

from __future__ import annotations

import importlib
from functools import cache

from .base import Integration, IntegrationSettings

KINDS: dict[str, str] = {
    "inbox": "tidings.integrations.inbox:InboxNotifier",
    "slack": "tidings.integrations.slack:SlackNotifier",
    "webhook": "tidings.integrations.webhook:WebhookIntegration",
    "teams": "tidings.integrations.teams:TeamsNotifier",
    "email": "tidings.integrations.email:EmailNotifier",
    "jira": "tidings.integrations.jira:JiraReceiver",
    "alertmanager": "tidings.integrations.alertmanager:AlertmanagerReceiver",
    "github": "tidings.integrations.github:GitHubReceiver",
    "google_calendar": "tidings.integrations.google:GoogleCalendar",
    "outlook_calendar": "tidings.integrations.microsoft:OutlookCalendar",
    "syslog": "tidings.integrations.syslog:SyslogNotifier",
    "splunk": "tidings.integrations.splunk:SplunkNotifier",
    "sentinel": "tidings.integrations.sentinel:SentinelNotifier",
    "s3": "tidings.integrations.s3:S3Notifier",
    "servicenow": "tidings.integrations.servicenow:ServiceNowNotifier",
    "apprise": "tidings.integrations.apprise:AppriseNotifier",
}


def kinds() -> list[str]:
    return sorted(KINDS)


@cache
def integration_class(kind: str) -> type[Integration]:
    try:
        target = KINDS[kind]
    except KeyError:
        raise KeyError(f"unknown integration kind {kind!r}; known kinds: {', '.join(kinds())}") from None
    module, _, attr = target.partition(":")
    cls: type[Integration] = getattr(importlib.import_module(module), attr)
    return cls


def settings_model(kind: str) -> type[IntegrationSettings]:
    return integration_class(kind).Settings
