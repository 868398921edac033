"""What the facades share: building a tidings channel (Slack, Teams, email notifier) from the
settings users wrote for the old APIs, sending through its ``render`` + ``send`` with a few
in-call retries, and running that from synchronous code.

Nothing here speaks a protocol: every byte on the wire comes from the channel's own notifier.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlsplit

import structlog
from pydantic import ValidationError

from ..delivery.retry import next_delay
from ..ids import new_id
from ..integrations.base import Attempt, Context, Notifier, Outcome, OutcomeStatus, RetryPolicy
from ..integrations.email import EmailNotifier
from ..integrations.teams import TeamsNotifier, detect_mode
from ..message import Message, describe
from ..security.outbound import Destinations
from ..security.redact import mask, register

log = structlog.get_logger("tidings.compat")
T = TypeVar("T")

_TRUE = frozenset({"1", "true", "yes", "on", "y", "t"})
_FALSE = frozenset({"0", "false", "no", "off", "n", "f", ""})


def as_bool(value: Any, default: bool) -> bool:
    """``True``/``False`` from a bool, a number or the strings people put in environment variables."""
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return bool(value)
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    return default


def split_addresses(value: Any) -> list[str]:
    """A list of addresses from a list, or from ``"a@x.org, b@x.org"``; blanks dropped."""
    if value is None:
        return []
    if isinstance(value, str):
        parts: Iterable[Any] = value.split(",")
    else:
        parts = value
    return [str(p).strip() for p in parts if p is not None and str(p).strip()]


def build(cls: type[Notifier], name: str, data: Mapping[str, Any]) -> Notifier:
    """A notifier of ``cls`` from settings shaped like tidings.yaml; ValueError (one line per
    problem, never a secret's value) if they are invalid. Its secrets are registered for masking."""
    try:
        settings = cls.Settings.model_validate(dict(data))
    except ValidationError as exc:
        raise ValueError(f"{cls.kind}: {describe(exc)}") from None
    register(settings.secret_values())
    # The facades send without a hub: no store, and no thread table (threads are mapped by the
    # facade itself onto the channel's payload), so the channel never needs them. Their URLs and
    # SMTP hosts come from the embedding application's own code, as with the APIs they replace
    # (internal relays included): the outbound guard refuses only cloud metadata services there.
    context = Context(store=None, threads=None, destinations=Destinations.anywhere())  # type: ignore[arg-type]
    notifier = cls(name, settings, context)
    return notifier


# -- Teams ---------------------------------------------------------------------------------------
def teams_settings(webhook_url: str, *, mode: str | None = None, timeout: float | None = None,
                   **extra: Any) -> dict[str, Any]:
    """TeamsSettings data for a webhook URL. A URL whose kind can't be read from it (a proxy, a
    test server) is taken as a Power Automate workflow: both take the same envelope."""
    data: dict[str, Any] = {"kind": "teams", "webhook_url": webhook_url, **extra}
    if mode:
        data["mode"] = mode
    elif isinstance(webhook_url, str) and detect_mode(webhook_url) is None:
        data["mode"] = "workflows"
    if timeout is not None:
        data["timeout"] = timeout
    return data


def teams_notifier(webhook_url: str, **kwargs: Any) -> TeamsNotifier:
    notifier = build(TeamsNotifier, "teams", teams_settings(webhook_url, **kwargs))
    assert isinstance(notifier, TeamsNotifier)
    return notifier


# -- email ---------------------------------------------------------------------------------------
_EMAIL_PASSTHROUGH = ("cc", "bcc", "ca_file", "verify_tls", "domain", "subject_prefix", "allowed_domains", "timeout")


def email_settings(config: Mapping[str, Any], *, default_to: Iterable[str] = (), timeout: float | None = None) -> dict[str, Any]:
    """EmailSettings data from either spelling users have: the communication facade's
    (``smtp_host``, ``smtp_port``, ``to_addresses``) or the alert dispatcher's (``host``,
    ``port``, ``recipients``).

    ``use_ssl`` means implicit TLS (SMTPS, usually port 465), ``use_tls`` (the default) STARTTLS;
    with both false the mail goes in clear text, as the old code did when told so."""
    host = config.get("smtp_host") or config.get("host")
    port = config.get("smtp_port", config.get("port"))
    data: dict[str, Any] = {"kind": "email", "host": host}
    if port not in (None, ""):
        data["port"] = port
    if config.get("security"):
        data["security"] = config["security"]
        if config["security"] == "none":
            data["allow_insecure"] = True
    elif as_bool(config.get("use_ssl"), False):
        data["security"] = "tls"
    elif as_bool(config.get("use_tls"), True):
        data["security"] = "starttls"
    else:
        data["security"] = "none"
        data["allow_insecure"] = True  # the user turned TLS off explicitly, as the old API allowed
    username, password = config.get("username"), config.get("password")
    if username and password:  # the old code logged in only with both
        data["username"] = username
        data["password"] = password
    sender = config.get("from_address") or config.get("from")
    if sender:
        data["from_address"] = sender
    if config.get("from_name"):
        data["from_name"] = config["from_name"]
    to = split_addresses(config.get("to_addresses", config.get("recipients", config.get("to"))))
    data["to"] = to or list(default_to)
    for key in _EMAIL_PASSTHROUGH:
        if config.get(key) is not None:
            data[key] = config[key]
    if timeout is not None:
        data["timeout"] = timeout
    return data


def email_notifier(config: Mapping[str, Any], **kwargs: Any) -> EmailNotifier:
    notifier = build(EmailNotifier, "email", email_settings(config, **kwargs))
    assert isinstance(notifier, EmailNotifier)
    return notifier


# -- sending -------------------------------------------------------------------------------------
async def deliver(
    notifier: Notifier,
    payload: Any,
    message: Message,
    *,
    policy: RetryPolicy,
    max_delay: float,
    deadline: float | None = None,
    on_retry: Callable[[int, Outcome, float], None] | None = None,
) -> tuple[Outcome, int]:
    """Send ``payload`` through ``notifier.send``, retrying retryable outcomes with backoff (and a
    peer's Retry-After) up to ``policy.max_attempts``; the last Outcome and the attempts made.
    A notifier that raises (it shouldn't) gives a permanent outcome: nothing raises from here."""
    delivery_id = new_id()
    created = time.time()
    attempts = 0
    while True:
        attempts += 1
        attempt = Attempt(delivery_id=delivery_id, message_id=delivery_id, number=attempts, created_at=created,
                          message=message)
        try:
            async with asyncio.timeout(notifier.effective_timeout + 5.0):
                outcome = await notifier.send(payload, attempt)
        except TimeoutError:
            outcome = Outcome.retry(f"no answer within {notifier.effective_timeout + 5.0:g} s")
        except Exception as exc:  # a bug in a channel must not reach the caller
            log.warning("compat.send_raised", integration=notifier.name, error_type=type(exc).__name__)
            outcome = Outcome.permanent(f"{type(exc).__name__}: {exc}")
        if outcome.status is not OutcomeStatus.RETRY or attempts >= policy.max_attempts:
            return outcome, attempts
        delay = min(next_delay(policy, attempts, outcome.retry_after), max_delay)
        if deadline is not None and time.monotonic() + delay >= deadline:
            return outcome, attempts
        if on_retry is not None:
            on_retry(attempts, outcome, delay)
        await asyncio.sleep(delay)


def run_sync(factory: Callable[[], Awaitable[T]], timeout: float) -> T:
    """Run ``factory()`` to completion from synchronous code, in this thread's own event loop
    (or in a helper thread when this thread already runs one), within ``timeout`` seconds.
    Raises TimeoutError when it takes longer."""

    async def bounded() -> T:
        async with asyncio.timeout(timeout):
            return await factory()

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(bounded())
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(bounded())
        except BaseException as exc:
            box["error"] = exc

    helper = threading.Thread(target=target, name="tidings-compat-sync", daemon=True)
    helper.start()
    helper.join(timeout + 1.0)
    if helper.is_alive():
        raise TimeoutError(f"no result within {timeout:g} s")
    if "error" in box:
        raise box["error"]
    return box["value"]  # type: ignore[no-any-return]


# -- secrets -------------------------------------------------------------------------------------
def url_secrets(url: str | None) -> list[str]:
    """A webhook URL is a credential: the URL, its query and its long path segments."""
    if not url:
        return []
    found = [url]
    try:
        parts = urlsplit(url)
    except ValueError:
        return found
    found += [p for p in (parts.query, parts.path) if len(p) >= 16]
    found += [value for _, value in parse_qsl(parts.query) if len(value) >= 8]
    found += [seg for seg in parts.path.split("/") if len(seg) >= 16]
    return found


class Scrubber:
    """Masks a fixed set of secrets in text (error messages from injected senders...), whether or
    not structlog was configured with tidings' masking processor."""

    def __init__(self, secrets: Iterable[str | None]) -> None:
        known = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)
        register(known)
        self._pattern = re.compile("|".join(re.escape(s) for s in known)) if known else None

    def __call__(self, text: str) -> str:
        if self._pattern is None or not text:
            return text
        return self._pattern.sub(lambda m: mask(m.group(0)), text)


__all__ = [
    "Scrubber",
    "as_bool",
    "build",
    "deliver",
    "email_notifier",
    "email_settings",
    "run_sync",
    "split_addresses",
    "teams_notifier",
    "teams_settings",
    "url_secrets",
]
