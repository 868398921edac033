"""One exception hierarchy for the whole package."""

from __future__ import annotations


class TidingsError(Exception):
    """Base class of every error tidings raises on purpose."""


class ConfigError(TidingsError):
    """The configuration is invalid. ``problems`` holds one line per problem, with its path."""

    def __init__(self, problems: list[str], source: str | None = None) -> None:
        self.problems = problems
        self.source = source
        where = f"{source}: " if source else ""
        super().__init__(where + "; ".join(problems))


class MessageError(TidingsError, ValueError):
    """A message failed validation. ``problems`` holds one line per problem, with its path."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems if problems is not None else [message]


class UnknownIntegration(TidingsError, KeyError):
    """A name that no configured integration has."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else "unknown integration"


class NotFound(TidingsError, LookupError):
    """A message, delivery or event id that does not exist."""


class IdempotencyConflict(TidingsError):
    """An Idempotency-Key reused with a different request body."""


class VaultError(TidingsError):
    """A secret could not be stored, found or decrypted."""
