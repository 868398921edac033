"""The token endpoint's answers of tests/peers/oauth.py, in each provider's shape and error style
(GitHub: HTTP 200 with ``error``, a form unless JSON is asked for; Slack: ``ok: false``; Google: 400;
Microsoft: 400 with ``AADSTS`` descriptions; Atlassian: 403 ``invalid_grant``)."""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import orjson
from aiohttp import web

if TYPE_CHECKING:
    from .oauth import Person, Token


class Answer:
    """A token endpoint's answers in one provider's shape and error style."""

    def __init__(self, provider: str, accept: str, now: float) -> None:
        self.p, self.now = provider, now
        self.form = provider == "github" and "application/json" not in accept

    def _out(self, status: int, data: dict[str, Any]) -> web.Response:
        if self.form:
            return web.Response(status=status, text=urlencode({k: v for k, v in data.items() if v is not None}),
                                content_type="application/x-www-form-urlencoded")
        return json_reply(status, data)

    def error(self, code: str, description: str, status: int = 400, **extra: Any) -> web.Response:
        if self.p == "github":
            return self._out(200, {"error": code, "error_description": description,
                                   "error_uri": f"https://docs.github.com/apps/troubleshooting#{code.replace('_', '-')}"})
        if self.p == "slack":
            return json_reply(200, {"ok": False, "error": code})
        if self.p == "microsoft":
            number = int(description[6:description.index(":")]) if description.startswith("AADSTS") else 0
            return json_reply(status, {"error": code, "error_description": description, "error_codes": [number],
                                  "timestamp": time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime()),
                                  "trace_id": str(uuid.uuid4()), "correlation_id": str(uuid.uuid4()), **extra})
        return json_reply(status, {"error": code, "error_description": description})

    def bad_client(self) -> web.Response:
        return {
            "github": lambda: self.error("incorrect_client_credentials",
                                         "The client_id and/or client_secret passed are incorrect."),
            "slack": lambda: self.error("bad_client_secret", ""),
            "google": lambda: self.error("invalid_client", "Unauthorized", 401),
            "microsoft": lambda: self.error("invalid_client", "AADSTS7000215: Invalid client secret provided.", 401),
            "atlassian": lambda: self.error("access_denied", "Unauthorized", 401),
        }[self.p]()

    def bad_code(self, why: str) -> web.Response:
        if self.p == "github":
            return self.error("bad_verification_code", "The code passed is incorrect or expired.")
        if self.p == "slack":
            return self.error("invalid_code", "")
        if self.p == "microsoft":
            text = {"used": "AADSTS54005: OAuth2 Authorization code was already redeemed, please retry with a new valid"
                            " code or use an existing refresh token.",
                    "expired": "AADSTS70008: The provided authorization code or refresh token has expired due to"
                               " inactivity."}.get(why, "AADSTS9002313: Invalid request. Request is malformed or invalid.")
            return self.error("invalid_grant", text)
        if self.p == "atlassian":
            return self.error("invalid_grant", "Invalid authorization code", 403)
        return self.error("invalid_grant", "Bad Request")

    def bad_verifier(self, missing: bool) -> web.Response:
        if self.p in ("github", "slack"):
            return self.bad_code("verifier")
        if self.p == "microsoft":
            return self.error("invalid_grant", "AADSTS501481: The Code_Verifier does not match the code_challenge"
                                               " supplied in the authorization request.")
        if self.p == "atlassian":
            return self.error("invalid_grant", "Invalid code verifier", 403)
        return self.error("invalid_grant", "Missing code verifier." if missing else "Invalid code verifier.")

    def redirect_mismatch(self) -> web.Response:
        if self.p == "github":
            return self.error("redirect_uri_mismatch",
                              "The redirect_uri MUST match the registered callback URL for this application.")
        if self.p == "slack":
            return self.error("bad_redirect_uri", "")
        if self.p == "microsoft":
            return self.error("invalid_grant", "AADSTS500112: The reply address does not match the reply address"
                                               " provided when requesting authorization code.")
        return self.error("redirect_uri_mismatch" if self.p == "google" else "invalid_grant", "Bad Request",
                          403 if self.p == "atlassian" else 400)

    def bad_refresh(self) -> web.Response:
        return {
            "github": lambda: self.error("bad_refresh_token", "The refresh token passed is incorrect or expired."),
            "slack": lambda: self.error("invalid_refresh_token", ""),
            "google": lambda: self.error("invalid_grant", "Token has been expired or revoked."),
            "microsoft": lambda: self.error("invalid_grant", "AADSTS70000: The provided value for the 'refresh_token'"
                                                             " is not valid."),
            "atlassian": lambda: self.error("invalid_grant", "Unknown or invalid refresh token.", 403),
        }[self.p]()

    def tokens(self, issued: dict[str, Token], who: Person, *, refreshed: bool = False) -> web.Response:
        access, refresh = issued["access"], issued.get("refresh")
        ttl = int(access.expires_at - self.now) if access.expires_at else None
        if self.p == "github":
            data: dict[str, Any] = {"access_token": access.value, "scope": ",".join(access.scopes),
                                    "token_type": "bearer"}
            if ttl:
                data["expires_in"] = ttl
            if refresh is not None:
                data["refresh_token"] = refresh.value
                if refresh.expires_at:
                    data["refresh_token_expires_in"] = int(refresh.expires_at - self.now)
            return self._out(200, data)
        if self.p == "slack":
            return json_reply(200, {"ok": True, "app_id": "A0TIDINGS", "authed_user": {"id": who.slack_user},
                               "scope": ",".join(access.scopes), "token_type": "bot", "access_token": access.value,
                               "bot_user_id": "U0TIDINGSBOT", "refresh_token": refresh.value if refresh else None,
                               "expires_in": ttl, "team": who.slack_team, "enterprise": None,
                               "is_enterprise_install": False})
        data = {"access_token": access.value, "expires_in": ttl, "token_type": "Bearer",
                "scope": " ".join(s for s in access.scopes if s != "offline_access" or self.p == "atlassian")}
        if self.p == "microsoft":
            data["ext_expires_in"] = ttl
        if refresh is not None:
            data["refresh_token"] = refresh.value
        return json_reply(200, data)


def json_reply(status: int, data: Any, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(data), content_type="application/json", headers=headers)


def html_page(status: int, text: str) -> web.Response:
    return web.Response(status=status, text=f"<!doctype html><title>Error</title><p>{text}</p>", content_type="text/html")
