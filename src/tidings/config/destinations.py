"""What `tidings config validate` says about destinations the outbound guard would refuse."""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import SecretStr

from ..integrations.base import is_vault_ref
from ..security.outbound import Destinations
from .models import Config


def destination_problems(config: Config) -> list[str]:
    """One line per integration URL or host, with its path, that the outbound guard would refuse
    without looking anything up: IP addresses (in any spelling) that aren't public and cloud
    metadata names, unless allow-listed. Host names are checked on every connection instead,
    on the addresses they resolve to then."""
    server = Destinations.parse(config.server.allow_destinations)
    problems: list[str] = []
    for name, settings in config.integrations.items():
        allowed = server.merged(settings.allow_destinations)
        for field in type(settings).outbound:
            value = getattr(settings, field, None)
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            if not isinstance(value, str) or not value or is_vault_ref(value):
                continue
            try:
                host = urlsplit(value).hostname if "://" in value else value
            except ValueError:  # the settings' own validation reports malformed URLs
                continue
            if host and (reason := allowed.host_refusal(host)):
                problems.append(f"integrations.{name}.{field}: {reason}")
    return problems
