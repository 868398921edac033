"""What tidings knows of each OAuth provider: endpoints, default scopes, how the token endpoint
wants its request, and whether refresh tokens rotate. Facts from each provider's documentation
(see ../shared/DESIGN.md "Platforms for sync, calendars, OAuth"); overridable per deployment in
``oauth.<provider>`` (:class:`~tidings.oauth.settings.OAuthClient`)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

from .settings import OAuthClient


@dataclass(frozen=True)
class Provider:
    name: str
    authorize_url: str
    token_url: str
    api_url: str
    scopes: tuple[str, ...]
    authorize_params: dict[str, str] = field(default_factory=dict)
    """Extra query parameters of the authorization request (Google's ``access_type=offline``...)."""
    scope_param: str = "scope"
    """Slack asks for bot scopes in ``scope`` (user scopes would be ``user_scope``)."""
    token_body: Literal["form", "json"] = "form"
    """Atlassian's token endpoint takes JSON; the others a form."""
    rotates: bool = False
    """A refresh answers a new refresh token and the old one stops working (so two refreshes at once lose the connection)."""
    scope_separator: str = " "


PROVIDERS: dict[str, Provider] = {
    "github": Provider(
        "github", "https://github.com/login/oauth/authorize", "https://github.com/login/oauth/access_token",
        "https://api.github.com", ("repo",), scope_separator=" ", rotates=True,
    ),
    "slack": Provider(
        "slack", "https://slack.com/oauth/v2/authorize", "https://slack.com/api/oauth.v2.access",
        "https://slack.com/api", ("chat:write", "chat:write.public", "channels:read", "users:read", "users:read.email"),
        scope_separator=",", rotates=True,
    ),
    "google": Provider(
        "google", "https://accounts.google.com/o/oauth2/v2/auth", "https://oauth2.googleapis.com/token",
        "https://www.googleapis.com", ("openid", "email", "https://www.googleapis.com/auth/calendar.events"),
        authorize_params={"access_type": "offline", "prompt": "consent", "include_granted_scopes": "true"},
    ),
    "microsoft": Provider(
        "microsoft", "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/authorize",
        "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token", "https://graph.microsoft.com/v1.0",
        ("offline_access", "openid", "email", "User.Read", "Calendars.ReadWrite"), rotates=True,
    ),
    "atlassian": Provider(
        "atlassian", "https://auth.atlassian.com/authorize", "https://auth.atlassian.com/oauth/token",
        "https://api.atlassian.com", ("read:jira-work", "write:jira-work", "read:jira-user", "read:me", "offline_access"),
        authorize_params={"audience": "api.atlassian.com", "prompt": "consent"}, token_body="json", rotates=True,
    ),
}


def provider(name: str, client: OAuthClient | None = None) -> Provider:
    """The provider ``name`` as this deployment reaches it: endpoints and scopes from ``client``
    where it gives them, Microsoft's tenant filled in. KeyError for an unknown name."""
    base = PROVIDERS[name]
    tenant = client.tenant if client is not None else "organizations"
    out = replace(base, authorize_url=base.authorize_url.format(tenant=tenant),
                  token_url=base.token_url.format(tenant=tenant))
    if client is None:
        return out
    return replace(
        out,
        authorize_url=client.authorize_url or out.authorize_url,
        token_url=client.token_url or out.token_url,
        api_url=client.api_url or out.api_url,
        scopes=tuple(client.scopes) if client.scopes is not None else out.scopes,
    )
