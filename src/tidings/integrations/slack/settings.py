"""``kind: slack`` settings: bot mode (a bot token, pasted or from an OAuth connection), an
incoming webhook, or only receiving (``signing_secret``)."""

from __future__ import annotations

import re
from typing import ClassVar, Literal
from urllib.parse import parse_qsl, urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator

from ...accounts.users import AccountError, normalize_email
from ..base import ConnectableSettings, is_vault_ref
from ..http import HttpUrl, check_http_url

DEFAULT_API_URL = "https://slack.com/api"
_TOKEN = re.compile(r"^(xoxe\.)?xoxb-[A-Za-z0-9-]+$")
_EMOJI_NAME = re.compile(r"^:[a-z0-9_+'\-]+:$")
_CHANNEL = re.compile(r"^#?[^\s,<>&|]{1,80}$")
_COMMAND = re.compile(r"^/[a-z0-9_\-]{1,31}$")
_SLACK_USER = re.compile(r"^[UW][A-Z0-9]{2,30}$")


class SlackSettings(ConnectableSettings):
    outbound: ClassVar[tuple[str, ...]] = ("webhook_url", "api_url")
    oauth_provider: ClassVar[str] = "slack"
    token_field: ClassVar[str] = "token"
    kind: Literal["slack"]
    token: SecretStr | None = Field(
        None, description="bot token xoxb-... (or ${vault:NAME}); or oauth: true (the token of the app installed"
        " through Connect); or use webhook_url",
    )
    webhook_url: SecretStr | None = Field(None, description="incoming webhook URL (a secret); or use token")
    channel: str | None = Field(
        None, description="bot mode: the default channel (#name or ID); a message's `channel` label overrides it"
    )
    api_url: HttpUrl = Field(DEFAULT_API_URL, description="Slack Web API base URL")
    username: str | None = Field(None, min_length=1, max_length=80, description="needs chat:write.customize")
    icon_emoji: str | None = Field(None, description="e.g. ':rotating_light:'; needs chat:write.customize")
    icon_url: HttpUrl | None = Field(None, description="needs chat:write.customize")
    unfurl: bool = Field(False, description="let Slack unfurl links in the message")
    signing_secret: SecretStr | None = Field(
        None,
        description="receive at POST /hooks/{name}: the app's Signing Secret (Basic Information), or ${vault:NAME}",
    )
    slash_command: str = Field("/tidings", description="the slash command this app answers")
    users: dict[str, str] = Field(
        default_factory=dict,
        description="Slack user id -> tidings user email (U0123ABC: alice@example.com): who a Slack user acts as "
        "for task commands and task buttons, with that user's role in the integration's project",
    )
    task_url: str | None = Field(
        None,
        description="the Open button on task messages: a URL with {project}, {key} and {id} filled in, e.g. "
        "https://tidings.example.com/projects/{project}/tasks/{key}; without it there is no Open button",
    )

    @field_validator("signing_secret")
    @classmethod
    def _signing_secret(cls, v: SecretStr | None) -> SecretStr | None:
        if v is None:
            return v
        raw = v.get_secret_value()
        if not is_vault_ref(raw) and (len(raw) < 16 or any(c.isspace() for c in raw)):
            raise ValueError("the app's Signing Secret (Basic Information → App Credentials), 32 characters")
        return v

    @field_validator("slash_command")
    @classmethod
    def _slash_command(cls, v: str) -> str:
        v = v.strip().lower()
        if not v.startswith("/"):
            v = "/" + v
        if not _COMMAND.match(v):
            raise ValueError("a slash command like '/tidings' (letters, digits, - and _; at most 32 characters)")
        return v

    @field_validator("users")
    @classmethod
    def _users(cls, v: dict[str, str]) -> dict[str, str]:
        out = {}
        for slack_user, email in v.items():
            if not _SLACK_USER.match(slack_user):
                raise ValueError(f"{slack_user[:40]!r} is not a Slack user id (U0123ABC or W0123ABC: the member ID in "
                                 "the user's Slack profile)")
            try:
                out[slack_user] = normalize_email(email)
            except AccountError as exc:
                raise ValueError(f"{slack_user}: {exc}") from None
        return out

    @field_validator("task_url")
    @classmethod
    def _task_url(cls, v: str | None) -> str | None:
        if v is None:
            return v
        check_http_url(v.replace("{project}", "p").replace("{key}", "T-1").replace("{id}", "i"))
        return v

    @field_validator("token")
    @classmethod
    def _token(cls, v: SecretStr | None) -> SecretStr | None:
        if v is None:
            return v
        raw = v.get_secret_value()
        if not is_vault_ref(raw) and not _TOKEN.match(raw):
            raise ValueError("a bot token starts with 'xoxb-' (or 'xoxe.xoxb-' with token rotation; Slack app → OAuth &"
                             " Permissions → Bot User OAuth Token)")
        return v

    @field_validator("webhook_url")
    @classmethod
    def _webhook_url(cls, v: SecretStr | None) -> SecretStr | None:
        if v is None:
            return v
        raw = v.get_secret_value()
        if not is_vault_ref(raw):
            check_http_url(raw)  # its errors never repeat the URL
        return v

    @field_validator("channel")
    @classmethod
    def _channel(cls, v: str | None) -> str | None:
        if v is not None and not _CHANNEL.match(v.strip()):
            raise ValueError("a channel is '#name', 'name' or an ID like 'C0123456789'")
        return v.strip() if v is not None else v

    @field_validator("icon_emoji")
    @classmethod
    def _icon_emoji(cls, v: str | None) -> str | None:
        if v is not None and not _EMOJI_NAME.match(v):
            raise ValueError("an emoji name between colons, e.g. ':rotating_light:'")
        return v

    @field_validator("api_url")
    @classmethod
    def _api_url(cls, v: str) -> str:
        return v.rstrip("/")

    @model_validator(mode="after")
    def _mode(self) -> SlackSettings:
        bot = self.token is not None or self.oauth
        if bot and self.webhook_url is not None:
            raise ValueError("set exactly one of token (bot mode, chat.postMessage), oauth: true (bot mode, the token"
                             " from the connection) or webhook_url (incoming webhook)")
        if not bot and self.webhook_url is None and self.signing_secret is None:
            raise ValueError(
                "set exactly one of token (bot mode, chat.postMessage), oauth: true (bot mode through a connection) "
                "or webhook_url (incoming webhook); or only signing_secret to only receive"
            )
        if bot and not self.channel:
            raise ValueError("channel: required in bot mode (the default channel; a message's `channel` label"
                             " overrides it)")
        if self.webhook_url is not None and self.channel:
            raise ValueError("channel: an incoming webhook posts to the channel it was created for; leave channel out")
        if self.icon_emoji and self.icon_url:
            raise ValueError("set icon_emoji or icon_url, not both")
        return self

    @property
    def bot(self) -> bool:
        """Bot mode (the Web API): a pasted token, or one from the connection (maybe not made yet)."""
        return self.token is not None or self.oauth

    @property
    def connected(self) -> bool:
        """A bot token is at hand (``oauth: true`` before the connection is made: not yet)."""
        return self.token is not None

    def secret_values(self) -> list[str]:
        found = super().secret_values()
        if self.webhook_url is not None and not is_vault_ref(url := self.webhook_url.get_secret_value()):
            # A peer or a library may repeat the URL's path or query alone: mask those too.
            parts = urlsplit(url)
            last = parts.path.rstrip("/").rsplit("/", 1)[-1]
            if len(last) >= 16:
                found += [parts.path, last]
            found += [value for _, value in parse_qsl(parts.query) if len(value) >= 16]
        return found
