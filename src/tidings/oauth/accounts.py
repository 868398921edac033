"""Who connected: the account a fresh access token belongs to, asked of the provider's API right
after the code exchange, and the facts an integration needs later (stored in the connection's
``extra``; never a token):

- GitHub: ``GET /user`` → the login;
- Slack: the token answer's ``team`` / ``bot_user_id`` / ``app_id`` / ``authed_user`` (``auth.test``
  when the answer lacks the team);
- Google: ``GET /oauth2/v3/userinfo`` → the email;
- Microsoft: ``GET /me`` (Graph) → the user principal name;
- Atlassian: ``GET /oauth/token/accessible-resources`` → the sites (cloud ids) the grant reaches,
  and ``GET /me`` → the email. The Jira API is then
  ``https://api.atlassian.com/ex/jira/{cloud_id}/rest/api/3/...``; with several sites, the one whose
  URL is the integration's ``base_url`` (else the first) is chosen, and all are recorded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

from ..security.redact import clip, redact
from .connections import TokenSet
from .errors import OAuthError
from .providers import Provider


@dataclass
class Account:
    """Who connected, as the provider names them, and the facts the integration needs."""

    account: str | None
    account_id: str | None
    extra: dict[str, Any] = field(default_factory=dict)


class AccountLookupFailed(OAuthError):
    """The provider's API would not say who the new token belongs to."""


async def _get(session: aiohttp.ClientSession, prov: Provider, path: str, token: str) -> Any:
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    if prov.name == "github":
        headers.update({"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"})
    try:
        async with session.get(f"{prov.api_url}{path}", headers=headers) as resp:
            raw, status = await resp.read(), resp.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise AccountLookupFailed(f"{prov.name} API unreachable asking who connected: {type(exc).__name__}") from None
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        data = None
    if status != 200 or data is None or (isinstance(data, dict) and data.get("ok") is False):
        why = data.get("error") if isinstance(data, dict) and isinstance(data.get("error"), str) else f"HTTP {status}"
        raise AccountLookupFailed(f"{prov.name} API refused to say who connected ({path}): {clip(redact(why), 100)}")
    return data


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


def choose_site(sites: list[dict[str, Any]], base_url: str | None) -> dict[str, Any]:
    """The Atlassian site of ``base_url`` (its URL, without a trailing slash, case-insensitive)
    when the grant reaches it, else the first."""
    if base_url:
        wanted = base_url.rstrip("/").lower()
        for site in sites:
            if str(site.get("url", "")).rstrip("/").lower() == wanted:
                return site
    return sites[0]


async def who(session: aiohttp.ClientSession, prov: Provider, tokens: TokenSet, *,
              base_url: str | None = None) -> Account:
    """The account ``tokens`` belong to; :class:`AccountLookupFailed` when the API won't say."""
    token = tokens.access_token
    if prov.name == "github":
        user = await _get(session, prov, "/user", token)
        return Account(_str(user.get("login")), _str(user.get("id")))
    if prov.name == "slack":
        raw = tokens.raw
        team = raw.get("team") if isinstance(raw.get("team"), dict) else None
        if team is None:
            found = await _get(session, prov, "/auth.test", token)
            team = {"id": found.get("team_id"), "name": found.get("team")}
        authed = raw.get("authed_user") if isinstance(raw.get("authed_user"), dict) else {}
        extra = {"team_id": _str(team.get("id")), "team": _str(team.get("name")),
                 "bot_user_id": _str(raw.get("bot_user_id")), "app_id": _str(raw.get("app_id")),
                 "authed_user": _str(authed.get("id"))}
        return Account(extra["team"], extra["team_id"], extra)
    if prov.name == "google":
        info = await _get(session, prov, "/oauth2/v3/userinfo", token)
        return Account(_str(info.get("email")), _str(info.get("sub")))
    if prov.name == "microsoft":
        me = await _get(session, prov, "/me", token)
        return Account(_str(me.get("userPrincipalName") or me.get("mail")), _str(me.get("id")))
    if prov.name == "atlassian":
        sites = await _get(session, prov, "/oauth/token/accessible-resources", token)
        if not isinstance(sites, list) or not sites:
            raise AccountLookupFailed("the Atlassian grant reaches no site: connect with an account of the Jira site")
        me = await _get(session, prov, "/me", token)
        site = choose_site(sites, base_url)
        extra = {"cloud_id": _str(site.get("id")), "site_url": _str(site.get("url")), "site_name": _str(site.get("name")),
                 "sites": [{"id": _str(s.get("id")), "url": _str(s.get("url")), "name": _str(s.get("name"))}
                           for s in sites]}
        return Account(_str(me.get("email") or me.get("name")), _str(me.get("account_id")), extra)
    raise AccountLookupFailed(f"no account lookup for provider {prov.name!r}")


__all__ = ["Account", "AccountLookupFailed", "choose_site", "who"]
