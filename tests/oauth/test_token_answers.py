"""oauth/tokens.parse: each provider's token-endpoint answers, as their documentation shows them,
classified into tokens, a refused grant (a person must connect again), a failure to retry, or a
misconfiguration. No answer's token reaches an error message."""

from __future__ import annotations

import orjson
import pytest

from tidings.oauth.errors import GrantRefused, OAuthError, TokenEndpointFailed
from tidings.oauth.providers import provider
from tidings.oauth.settings import OAuthClient
from tidings.oauth.tokens import parse

NOW = 1_800_000_000.0


def answer(prov: str, status: int, body: object, retry_after: float | None = None):  # type: ignore[no-untyped-def]
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return parse(provider(prov), status, raw, retry_after, NOW)


def test_github_app_user_token_with_expiring_refresh() -> None:
    tokens = answer("github", 200, {
        "access_token": "ghu_16C7e42F292c6912E7710c838347Ae178B4a", "expires_in": 28800,
        "refresh_token": "ghr_1B4a2e77838347a7E420ce178F2E7c6912E169246c34E1ccbF66C46812d16D5B1A9Dc86A1498",
        "refresh_token_expires_in": 15811200, "scope": "", "token_type": "bearer"})
    assert tokens.access_token.startswith("ghu_") and tokens.refresh_token and tokens.refresh_token.startswith("ghr_")
    assert tokens.expires_at == NOW + 28800 and tokens.refresh_expires_at == NOW + 15811200
    assert tokens.scopes == []


def test_github_oauth_app_token_does_not_expire() -> None:
    tokens = answer("github", 200, {"access_token": "gho_16C7e42F292c6912E7710c838347Ae178B4a",
                                    "scope": "repo,gist", "token_type": "bearer"})
    assert tokens.expires_at is None and tokens.refresh_token is None and tokens.scopes == ["repo", "gist"]


@pytest.mark.parametrize("error", ["bad_verification_code", "bad_refresh_token"])
def test_github_refusals_come_as_http_200(error: str) -> None:
    with pytest.raises(GrantRefused, match=error):
        answer("github", 200, {"error": error, "error_description": "The code passed is incorrect or expired.",
                               "error_uri": "https://docs.github.com/apps/troubleshooting"})


def test_github_wrong_client_secret_is_a_misconfiguration_not_a_reauth() -> None:
    with pytest.raises(OAuthError) as caught:
        answer("github", 200, {"error": "incorrect_client_credentials",
                               "error_description": "The client_id and/or client_secret passed are incorrect."})
    assert not isinstance(caught.value, GrantRefused | TokenEndpointFailed)
    assert "incorrect_client_credentials" in str(caught.value)


def test_slack_rotating_bot_token() -> None:
    tokens = answer("slack", 200, {
        "ok": True, "app_id": "A0KRD7HC3", "authed_user": {"id": "U1234"}, "scope": "chat:write,channels:read",
        "token_type": "bot", "access_token": "xoxe.xoxb-1-MS0yLTEyMzQ1Njc4OTAxMi0xMjM0NTY3ODkwMTIz",
        "bot_user_id": "U0KRQLJ9H", "refresh_token": "xoxe-1-My0xLTEyMzQ1Njc4OTAxMi0xMjM0NTY3ODkwMTIz",
        "expires_in": 43200, "team": {"name": "Slack Softball Team", "id": "T9TK3CUKW"}, "enterprise": None})
    assert tokens.expires_at == NOW + 43200 and tokens.scopes == ["chat:write", "channels:read"]
    assert tokens.raw["team"]["id"] == "T9TK3CUKW"


@pytest.mark.parametrize("error", ["invalid_code", "invalid_refresh_token"])
def test_slack_refusals_are_ok_false(error: str) -> None:
    with pytest.raises(GrantRefused, match=error):
        answer("slack", 200, {"ok": False, "error": error})


def test_slack_ratelimited_is_retried() -> None:
    with pytest.raises(TokenEndpointFailed):
        answer("slack", 200, {"ok": False, "error": "ratelimited"})


def test_google_refresh_keeps_no_new_refresh_token() -> None:
    tokens = answer("google", 200, {"access_token": "ya29.a0AfH6SMB", "expires_in": 3599,
                                    "scope": "https://www.googleapis.com/auth/calendar.events openid",
                                    "token_type": "Bearer"})
    assert tokens.refresh_token is None
    assert tokens.scopes == ["https://www.googleapis.com/auth/calendar.events", "openid"]


def test_google_invalid_grant() -> None:
    with pytest.raises(GrantRefused, match="invalid_grant"):
        answer("google", 400, {"error": "invalid_grant", "error_description": "Token has been expired or revoked."})


def test_microsoft_invalid_grant_with_aadsts() -> None:
    with pytest.raises(GrantRefused, match="AADSTS70008"):
        answer("microsoft", 400, {
            "error": "invalid_grant", "error_codes": [70008],
            "error_description": "AADSTS70008: The provided authorization code or refresh token has expired due to"
                                 " inactivity."})


def test_atlassian_stale_rotated_refresh_token_is_403_invalid_grant() -> None:
    with pytest.raises(GrantRefused):
        answer("atlassian", 403, {"error": "invalid_grant", "error_description": "Unknown or invalid refresh token."})


@pytest.mark.parametrize("status", [429, 500, 502, 503])
def test_busy_or_broken_endpoints_are_retried_with_their_retry_after(status: int) -> None:
    with pytest.raises(TokenEndpointFailed) as caught:
        answer("atlassian", status, b"<html>busy</html>", retry_after=30.0)
    assert caught.value.retry_after == 30.0


def test_an_answer_without_json_or_token_is_an_error_that_shows_no_secret() -> None:
    with pytest.raises(OAuthError, match="without JSON"):
        answer("google", 200, b"<html>login</html>")
    with pytest.raises(OAuthError, match="no access_token"):
        answer("google", 200, {"token_type": "Bearer"})


def test_a_refusal_echoing_the_token_shows_it_masked() -> None:
    secret = "ghr_" + "x" * 40
    from tidings.security.redact import register

    register([secret])
    with pytest.raises(OAuthError) as caught:
        answer("github", 401, {"error": "unauthorized_client", "error_description": f"bad {secret}"})
    assert secret not in str(caught.value)


def test_endpoints_and_scopes_follow_the_registration() -> None:
    ms = provider("microsoft", OAuthClient(client_id="c", client_secret="s", tenant="contoso.onmicrosoft.com"))  # type: ignore[arg-type]
    assert ms.token_url == "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"
    local = provider("github", OAuthClient(client_id="c", client_secret="s", token_url="http://127.0.0.1:9/t",  # type: ignore[arg-type]
                                           scopes=["repo", "read:org"]))
    assert local.token_url == "http://127.0.0.1:9/t" and local.scopes == ("repo", "read:org")
    assert local.authorize_url == "https://github.com/login/oauth/authorize"
