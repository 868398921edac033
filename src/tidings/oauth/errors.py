"""What can go wrong with a connection: each says what a person should do, never a token."""

from __future__ import annotations

from ..errors import TidingsError


class OAuthError(TidingsError):
    """A flow or refresh failed."""


class NotConnectable(OAuthError, ValueError):
    """The integration can't connect: unknown, a kind without OAuth, ``oauth: true`` missing, or no
    ``oauth.<provider>`` app registration."""


class CallbackRefused(OAuthError):
    """A callback that must not be honoured (unknown, used or expired state; the provider's
    error; a code the token endpoint refused). Nothing was stored; the refusal is audited."""

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        """A short word for the audit entry and metrics: state_unknown, state_used, state_expired,
        provider_error, exchange_failed..."""
        super().__init__(detail or reason)


class GrantRefused(OAuthError):
    """The token endpoint refused the refresh token for good (``invalid_grant``, Slack's
    ``invalid_refresh_token``...): the connection needs a person to connect again."""


class TokenEndpointFailed(OAuthError):
    """The token endpoint failed for now (timeout, 5xx, 429): try again later, as the answer says."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        self.retry_after = retry_after
        super().__init__(message)
