"""``AlertDispatcher``: security alerts to Microsoft Teams and email, the API our users already
call, sending through tidings' Teams and email channels.

    dispatcher = AlertDispatcher()          # configured from SECURITY_ALERT_* variables
    dispatcher.dispatch({"event_type": "rate_limit", "count": 100, "path": "/login",
                         "method": "POST", "client": "203.0.113.7"})

``dispatch`` returns at once: each channel's send runs in a background thread of its own, so a
slow or failing channel never delays the caller nor stops the other channel, and nothing it does
raises. Failures are logged as the structlog events ``alerting.teams_failed`` and
``alerting.email_failed`` (with secrets masked). ``flush(timeout)`` waits for the sends under way
(tests, and a clean shutdown). At interpreter exit the sends under way are waited for, as a
thread pool's workers would be, for at most ``exit_timeout`` seconds (15): a script that
dispatches on its last line still sends its alert, and a peer that hangs can't hold the exit
longer than that. Email goes over the standard library's ``smtplib`` in the worker thread.

Environment (read for whatever the constructor wasn't given):

- ``SECURITY_ALERT_TEAMS_WEBHOOK``: the Teams webhook URL (a credential; never logged);
- ``SECURITY_ALERT_EMAIL_HOST`` and ``SECURITY_ALERT_EMAIL_RECIPIENTS`` (comma-separated): both
  needed for email; ``SECURITY_ALERT_EMAIL_PORT`` (587), ``SECURITY_ALERT_EMAIL_USERNAME``,
  ``SECURITY_ALERT_EMAIL_PASSWORD``, ``SECURITY_ALERT_EMAIL_FROM`` (default: the username, else
  ``alerts@example.com``), ``SECURITY_ALERT_EMAIL_USE_TLS`` (STARTTLS, default true),
  ``SECURITY_ALERT_EMAIL_USE_SSL`` (implicit TLS, default false).

Sends are bounded: 5 s for Teams, 10 s for email (retryable answers are retried within that
time). These are direct sends, not queued: for alerts that must survive a restart, give the
middleware a :class:`tidings.Hub` instead (``AlertingMiddleware(app, hub=hub)``).
"""

from __future__ import annotations

import atexit
import concurrent.futures.thread  # noqa: F401 - imported first, so our exit hook runs before its own
import os
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from typing import Any

import structlog

from ..ids import new_id
from ..integrations.base import Attempt, OutcomeStatus, RetryPolicy
from ..message import Message as TidingsMessage
from ..message import Priority
from ._channels import Scrubber, as_bool, deliver, email_notifier, run_sync, teams_notifier, url_secrets
from ._smtp import SmtpFailure, send_within

log = structlog.get_logger("tidings.compat.alerting")

TEAMS_TIMEOUT = 5.0
EMAIL_TIMEOUT = 10.0
EXIT_TIMEOUT = 15.0
_SEND_RETRIES = RetryPolicy(base=0.25, factor=2.0, cap=2.0, max_attempts=3)

TeamsSender = Callable[[str, str], Any]
EmailSender = Callable[[dict[str, Any], str, str], Any]


class AlertDispatcherError(Exception):
    """Base class of the errors the default senders raise (``dispatch`` catches and logs them)."""


class TeamsWebhookError(AlertDispatcherError):
    """The alert could not be posted to Teams."""


class EmailDeliveryError(AlertDispatcherError):
    """The alert could not be mailed."""


class AlertText(str):
    """The alert as text (what a ``teams_sender`` receives), carrying the title and fields the
    default senders use to build a proper card or email from it."""

    title: str
    fields: list[tuple[str, str]]

    def __new__(cls, text: str, title: str = "", fields: list[tuple[str, str]] | None = None) -> AlertText:
        self = super().__new__(cls, text)
        self.title = title
        self.fields = fields or []
        return self


class AlertDispatcher:
    """Send security alerts to Teams and email without blocking the caller.

    ``teams_webhook_url`` and ``email_config`` (keys ``host``, ``port``, ``username``,
    ``password``, ``from_address``, ``recipients``, ``use_tls``, ``use_ssl``; also ``ca_file``,
    ``verify_tls``, ``from_name``) override the environment; left out (or empty), the
    ``SECURITY_ALERT_*`` variables are read. ``teams_sender(url, message)`` and
    ``email_sender(config, subject, body)`` replace the default senders (tests). ``env`` replaces
    ``os.environ``.
    """

    def __init__(
        self,
        *,
        teams_webhook_url: str | None = None,
        email_config: Mapping[str, Any] | None = None,
        teams_sender: TeamsSender | None = None,
        email_sender: EmailSender | None = None,
        teams_timeout: float = TEAMS_TIMEOUT,
        email_timeout: float = EMAIL_TIMEOUT,
        exit_timeout: float = EXIT_TIMEOUT,
        env: Mapping[str, str] | None = None,
    ) -> None:
        environ = os.environ if env is None else env
        self.teams_webhook_url: str | None = teams_webhook_url or environ.get("SECURITY_ALERT_TEAMS_WEBHOOK") or None
        self.email_config: dict[str, Any] = dict(email_config) if email_config else _load_email_config(environ)
        self.teams_timeout = teams_timeout
        self.email_timeout = email_timeout
        self.exit_timeout = exit_timeout
        self._teams_sender: TeamsSender = teams_sender or self._post_to_teams_webhook
        self._email_sender: EmailSender = email_sender or self._send_email_notification
        self._rich = {"teams": teams_sender is None, "email": email_sender is None}
        self._scrub = Scrubber([*url_secrets(self.teams_webhook_url), self.email_config.get("password")])
        self._pending: set[threading.Thread] = set()
        self._lock = threading.Lock()
        self.sent = {"teams": 0, "email": 0}
        self.failed = {"teams": 0, "email": 0}

    @property
    def channels(self) -> list[str]:
        """The channels alerts go to: ``teams`` and/or ``email``."""
        return [name for name, on in (("teams", self.teams_webhook_url), ("email", self.email_config)) if on]

    # -- dispatching -----------------------------------------------------------------------
    def dispatch(self, payload: Mapping[str, Any]) -> None:
        """Send ``payload`` (``event_type``, ``count``, ``path``, ``method``, ``client``; the
        middleware adds ``top_clients``, ``top_paths``, ``threshold``, ``window_seconds``) to every
        configured channel, each in a background thread. Returns at once; never raises."""
        try:
            event_type = str(payload.get("event_type") or "security_event")
            if self.teams_webhook_url:
                message = self._build_alert_message(payload, for_email=False)
                if self._rich["teams"]:
                    message = AlertText(message, self._build_subject(event_type), _fields(payload))
                self._run_background_task("teams", event_type, self._teams_sender, self.teams_webhook_url, message)
            if self.email_config:
                subject = self._build_subject(event_type)
                body = self._build_alert_message(payload, for_email=True)
                if self._rich["email"]:
                    body = AlertText(body, subject, _fields(payload))
                self._run_background_task("email", event_type, self._email_sender, dict(self.email_config), subject, body)
        except Exception as exc:  # dispatch never raises (a malformed payload, no threads left...)
            log.error("alerting.dispatch_failed", error=self._scrub(f"{type(exc).__name__}: {exc}"))

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until the sends under way are done (at most ``timeout`` seconds); True if they are."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._lock:
                pending = list(self._pending)
            if not pending:
                return True
            for thread in pending:
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                thread.join(left)
                if thread.is_alive():
                    return False

    join = flush

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._pending)

    def _run_background_task(self, channel: str, event_type: str, func: Callable[..., Any], *args: Any) -> None:
        thread = threading.Thread(
            target=self._run, args=(channel, event_type, func, args), name=f"tidings-alert-{channel}", daemon=True
        )
        with self._lock:
            self._pending.add(thread)
        _watch(self)
        try:
            thread.start()
        except BaseException:
            with self._lock:
                self._pending.discard(thread)
            raise

    def _run(self, channel: str, event_type: str, func: Callable[..., Any], args: tuple[Any, ...]) -> None:
        started = time.monotonic()
        try:
            func(*args)
        except BaseException as exc:  # every failure is logged here, never raised into a thread
            with self._lock:
                self.failed[channel] += 1
            log.error(
                f"alerting.{channel}_failed",
                event_type=event_type,
                error=self._scrub(str(exc)) or type(exc).__name__,
                error_type=type(exc).__name__,
                seconds=round(time.monotonic() - started, 3),
            )
        else:
            with self._lock:
                self.sent[channel] += 1
            log.info(f"alerting.{channel}_sent", event_type=event_type, seconds=round(time.monotonic() - started, 3))
        finally:
            with self._lock:
                self._pending.discard(threading.current_thread())

    # -- the alert -------------------------------------------------------------------------
    def _build_subject(self, event_type: str) -> str:
        return f"[Security Alert] {str(event_type).replace('_', ' ').title()}"

    def _build_alert_message(self, payload: Mapping[str, Any], for_email: bool) -> str:
        lines = [
            "Security alert triggered.",
            f"Event: {payload.get('event_type')}",
            f"Count: {payload.get('count')}",
            f"Method: {payload.get('method')}",
            f"Path: {payload.get('path')}",
        ]
        if payload.get("client"):
            lines.append(f"Client: {payload['client']}")
        if payload.get("threshold") and payload.get("window_seconds"):
            lines.append(f"Threshold: {payload['threshold']} in {_seconds(payload['window_seconds'])}")
        if top := _top_line(payload.get("top_clients"), "client"):
            lines.append(f"Top clients: {top}")
        if top := _top_line(payload.get("top_paths"), "path"):
            lines.append(f"Top paths: {top}")
        if for_email:
            lines.extend(["", "Please investigate this event."])
        return "\n".join(lines)

    # -- the default senders (run in the background thread) --------------------------------
    def _post_to_teams_webhook(self, webhook_url: str, message: str) -> None:
        """Post ``message`` to Teams through tidings' Teams channel (an Adaptive Card), within
        ``teams_timeout`` seconds. Raises TeamsWebhookError."""
        title = getattr(message, "title", "") or "Security alert"
        fields = getattr(message, "fields", [])
        alert = _alert_message(title, str(message), fields)
        scrub = Scrubber(url_secrets(webhook_url))
        try:
            notifier = teams_notifier(webhook_url, timeout=self.teams_timeout)
        except ValueError as exc:
            raise TeamsWebhookError(f"the Teams webhook is not usable: {scrub(str(exc))}") from None

        async def send() -> Any:
            try:
                deadline = time.monotonic() + self.teams_timeout
                return await deliver(notifier, notifier.render(alert), alert, policy=_SEND_RETRIES, max_delay=2.0,
                                     deadline=deadline)
            finally:
                await notifier.close()

        try:
            outcome, _ = run_sync(send, self.teams_timeout)
        except TimeoutError:
            raise TeamsWebhookError(f"Teams did not answer within {self.teams_timeout:g} s") from None
        except Exception as exc:
            raise TeamsWebhookError(f"could not post to Teams: {scrub(f'{type(exc).__name__}: {exc}')}") from None
        if outcome.status is not OutcomeStatus.DELIVERED:
            raise TeamsWebhookError(f"Teams did not take the alert: {scrub(outcome.error or outcome.status.value)}")

    def _send_email_notification(self, config: dict[str, Any], subject: str, body: str) -> None:
        """Mail ``body`` (text and HTML, built by tidings' email channel) with ``smtplib``, within
        ``email_timeout`` seconds. Raises EmailDeliveryError."""
        fields = getattr(body, "fields", [])
        alert = _alert_message(subject, str(body), fields)
        scrub = Scrubber([config.get("password")])
        try:
            notifier = email_notifier(config, timeout=self.email_timeout)
            payload = notifier.render(alert)
            if payload.problem:
                raise ValueError(payload.problem)
            delivery_id = new_id()
            attempt = Attempt(delivery_id=delivery_id, message_id=delivery_id, number=1, created_at=time.time(),
                              message=alert)
            msg = notifier.build(payload, attempt)
        except ValueError as exc:
            raise EmailDeliveryError(f"the email settings are not usable: {scrub(str(exc))}") from None
        try:
            refused = send_within(notifier, msg, list(payload.recipients), seconds=self.email_timeout,
                                  attempts=_SEND_RETRIES.max_attempts, first_delay=_SEND_RETRIES.base)
        except SmtpFailure as exc:
            raise EmailDeliveryError(f"the email was not sent: {scrub(str(exc))}") from None
        if refused:  # delivered, but some recipients were refused
            listed = "; ".join(f"{rcpt}: {answer}" for rcpt, answer in refused.items())
            log.warning("alerting.email_partial", warning=scrub(f"refused {len(refused)}: {listed}"))


# -- at interpreter exit -------------------------------------------------------------------------
_live: weakref.WeakSet[AlertDispatcher] = weakref.WeakSet()
_hooked = False
_hook_lock = threading.Lock()


def _watch(dispatcher: AlertDispatcher) -> None:
    """Remember ``dispatcher`` for the exit hook, installed once. ``threading._register_atexit``
    runs it before threads (and the thread pools asyncio resolves names with) shut down, as
    concurrent.futures does for its workers; plain ``atexit`` is the fallback."""
    global _hooked
    with _hook_lock:
        _live.add(dispatcher)
        if _hooked:
            return
        _hooked = True
    register = getattr(threading, "_register_atexit", None)
    try:
        if register is None:
            raise RuntimeError("no threading._register_atexit")
        register(_flush_all)
    except RuntimeError:  # already shutting down, or another Python
        atexit.register(_flush_all)


def _flush_all() -> None:
    """Wait for every dispatcher's sends under way, all within the longest ``exit_timeout``."""
    dispatchers = [d for d in list(_live) if d.pending]
    if not dispatchers:
        return
    bound = max(d.exit_timeout for d in dispatchers)
    deadline = time.monotonic() + bound
    for dispatcher in dispatchers:
        try:
            if not dispatcher.flush(max(0.0, deadline - time.monotonic())):
                log.warning("alerting.exit_timeout", pending=dispatcher.pending, seconds=bound)
        except Exception:  # noqa: S110 - an exit hook must not raise
            pass


def _load_email_config(environ: Mapping[str, str]) -> dict[str, Any]:
    """Email settings from the SECURITY_ALERT_EMAIL_* variables; empty unless both the host and
    at least one recipient are set."""
    host = (environ.get("SECURITY_ALERT_EMAIL_HOST") or "").strip()
    recipients = _split_recipients(environ.get("SECURITY_ALERT_EMAIL_RECIPIENTS", ""))
    if not host or not recipients:
        return {}
    raw_port = (environ.get("SECURITY_ALERT_EMAIL_PORT") or "587").strip()
    try:
        port = int(raw_port)
    except ValueError:
        log.error("alerting.config_invalid", variable="SECURITY_ALERT_EMAIL_PORT", problem="not a number; using 587")
        port = 587
    username = environ.get("SECURITY_ALERT_EMAIL_USERNAME") or None
    return {
        "host": host,
        "port": port,
        "username": username,
        "password": environ.get("SECURITY_ALERT_EMAIL_PASSWORD") or None,
        "from_address": environ.get("SECURITY_ALERT_EMAIL_FROM") or username or "alerts@example.com",
        "recipients": recipients,
        "use_ssl": as_bool(environ.get("SECURITY_ALERT_EMAIL_USE_SSL"), False),
        "use_tls": as_bool(environ.get("SECURITY_ALERT_EMAIL_USE_TLS"), True),
    }


def _split_recipients(value: str) -> list[str]:
    """``"a@x.org, ,b@x.org"`` -> ``["a@x.org", "b@x.org"]``."""
    return [addr.strip() for addr in (value or "").split(",") if addr.strip()]


def _seconds(value: Any) -> str:
    try:
        return f"{float(value):g} s"
    except (TypeError, ValueError):
        return str(value)


def _top_line(entries: Any, key: str) -> str:
    if not entries:
        return ""
    parts = []
    for entry in entries:
        if isinstance(entry, Mapping):
            parts.append(f"{entry.get(key)} ({entry.get('count')})")
        elif isinstance(entry, (list, tuple)) and len(entry) == 2:
            parts.append(f"{entry[0]} ({entry[1]})")
    return ", ".join(parts)


def _fields(payload: Mapping[str, Any]) -> list[tuple[str, str]]:
    out = [
        ("Event", str(payload.get("event_type"))),
        ("Count", str(payload.get("count"))),
        ("Method", str(payload.get("method"))),
        ("Path", str(payload.get("path"))),
    ]
    if payload.get("client"):
        out.append(("Client", str(payload["client"])))
    if top := _top_line(payload.get("top_clients"), "client"):
        out.append(("Top clients", top))
    if top := _top_line(payload.get("top_paths"), "path"):
        out.append(("Top paths", top))
    return [(name, value[:4000]) for name, value in out]


def _alert_message(title: str, text: str, fields: list[tuple[str, str]]) -> TidingsMessage:
    """The tidings message a default sender sends: with fields, the text's first line is the body
    (the details are in the fields); without, the whole text."""
    body = text.splitlines()[0] if fields and text else text
    if fields and "Please investigate this event." in text:
        body += "\n\nPlease investigate this event."
    return TidingsMessage(
        title=(" ".join(title.split()) or "Security alert")[:500],
        body=body[:100_000],
        priority=Priority.HIGH,
        fields=fields,
        labels={"source": "security-alerts"},
    )


__all__ = [
    "AlertDispatcher",
    "AlertDispatcherError",
    "AlertText",
    "EmailDeliveryError",
    "TeamsWebhookError",
]
