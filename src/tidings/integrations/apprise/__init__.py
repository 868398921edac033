"""Apprise: any of the ~180 services Apprise speaks (Discord, Telegram, PagerDuty, Opsgenie,
Pushover, ntfy, Matrix, Mattermost, SMS gateways, desktop notifications over D-Bus...) through
the outbox, one Apprise URL each.

Apprise is an optional extra (``pip install 'tidings[apprise]'``). Every URL is a credential
(Apprise URLs embed tokens and passwords): it is a ``SecretStr``, may be ``${vault:NAME}``, is
validated at config load by Apprise itself and never appears in an error.

How answers read: Apprise only says True or False. True: delivered, with no remote id. False:
retryable, since Apprise can't tell a bad token from an outage; the error says so and carries
what Apprise logged for that send, masked. With several URLs, each is sent on its own and the
fingerprints of those that got the message are kept in the delivery's ``remote_id``
(``{"apprise_done": [...]}``), so that a retry goes only to the URLs that failed.

Apprise makes its own connections (``requests``): tidings' outbound guard can't see them. Before
each send the host of every self-hosted URL (json://, ntfy://host/..., mattermost://...) is
resolved and refused when private, loopback or link-local unless allow-listed; the connection
Apprise then makes is not checked again (see docs/apprise.md).
"""

from __future__ import annotations

import asyncio
import hashlib
import html
import ipaddress
import logging
import socket
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import parse_qsl, urlsplit

import orjson
from pydantic import Field, SecretStr, field_validator, model_validator
from sqlalchemy import select, update

from ...message import Format, Message, Priority
from ...security.redact import redact
from ..base import NO_OPTIONS, Attempt, IntegrationSettings, Notifier, Outcome, RenderOptions, is_vault_ref

if TYPE_CHECKING:
    from ...security.outbound import Destinations

EXTRA = "pip install 'tidings[apprise]'"
MAX_URLS = 50
LOG_MAX = 600
"""Characters of what Apprise logged kept in an error (after masking)."""
DONE_KEY = "apprise_done"
_SECRET_PART = 12
AppriseFormat = Literal["text", "markdown", "html"]
DEFAULT_FORMATS: dict[Format, AppriseFormat] = {Format.PLAIN: "text", Format.MARKDOWN: "markdown", Format.HTML: "html"}
NOTIFY_TYPES: dict[Priority, str] = {
    Priority.CRITICAL: "failure",
    Priority.HIGH: "warning",
    Priority.MEDIUM: "info",
    Priority.LOW: "info",
    Priority.INFO: "info",
}
URGENCY: dict[Priority, int] = {
    Priority.CRITICAL: 2,
    Priority.HIGH: 2,
    Priority.MEDIUM: 1,
    Priority.LOW: 0,
    Priority.INFO: 0,
}
"""The D-Bus urgency (0 low, 1 normal, 2 critical) of a desktop notification, unless its URL sets one."""


def _apprise() -> Any:
    try:
        import apprise
    except ImportError:
        raise ValueError(f"the apprise kind needs the apprise package, which is not installed: {EXTRA}") from None
    return apprise


def asset() -> Any:
    """What Apprise calls us (a desktop notification's application name)."""
    return _apprise().AppriseAsset(app_id="tidings", app_desc="tidings")


def instantiate(url: str, with_asset: Any = None, *, quiet: bool = True) -> Any:
    """Apprise's plugin for ``url``, or None when Apprise doesn't understand it. ``quiet`` (at
    config load, before tidings knows the URL is a secret to mask): Apprise's logger is off
    meanwhile, since what it logs about a bad URL is the URL itself."""
    apprise = _apprise()
    logger = logging.getLogger("apprise")
    was = logger.disabled
    if quiet:
        logger.disabled = True
    try:
        return apprise.Apprise.instantiate(url, asset=with_asset or apprise.AppriseAsset(), suppress_exceptions=True)
    finally:
        logger.disabled = was


def fingerprint(url: str) -> str:
    """What the delivery keeps of a URL that got the message: 12 hex characters of its SHA-256,
    from which the URL can't be recovered."""
    return hashlib.sha256(url.encode()).hexdigest()[:12]


def url_secrets(url: str) -> list[str]:
    """``url`` and the parts of it a service or a log line may show alone: the password, and the
    user, an id in the host's place (``discord://ID/TOKEN``), path segments and query values of at
    least :data:`_SECRET_PART` characters (tokens, keys). Shorter parts (``/alerts``, a chat id)
    are left alone: masked everywhere, they would hide ordinary words in every log line."""
    found = [url]
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if parts.password:
            found.append(parts.password)
        found += [p for p in (parts.username, host) if p and "." not in p and len(p) >= _SECRET_PART]
        found += [seg for seg in parts.path.split("/") if len(seg) >= _SECRET_PART]
        found += [value for _, value in parse_qsl(parts.query) if len(value) >= _SECRET_PART]
    except ValueError:
        pass
    return [s for s in found if s]


class AppriseSettings(IntegrationSettings):
    kind: Literal["apprise"]
    urls: list[SecretStr] = Field(
        min_length=1, max_length=MAX_URLS,
        description="Apprise URLs (discord://, tgram://, ntfy://, json://, dbus://...); each a credential,"
        " masked everywhere; each may be ${vault:NAME}",
    )
    title_max: int | None = Field(None, ge=10, le=100_000, description="longest title sent (characters)")
    body_max: int | None = Field(None, ge=20, le=1_000_000, description="longest body sent (characters)")
    format: dict[Format, AppriseFormat] = Field(
        default_factory=lambda: dict(DEFAULT_FORMATS),
        description="the Apprise body format (text, markdown, html) each message format is handed over as;"
        " Apprise converts it to what each service shows",
    )

    @model_validator(mode="before")
    @classmethod
    def _vault_items(cls, data: Any) -> Any:
        """``urls.N`` keys (what :meth:`vault_refs` names) put their value into ``urls[N]``: how a
        resolved or rotated ``${vault:NAME}`` in the list reaches it."""
        if not isinstance(data, dict) or not any(isinstance(k, str) and k.startswith("urls.") for k in data):
            return data
        data = dict(data)
        urls = list(data.get("urls") or [])
        for key in [k for k in data if isinstance(k, str) and k.startswith("urls.")]:
            value = data.pop(key)
            index = key.removeprefix("urls.")
            if not index.isdigit() or int(index) >= len(urls):
                raise ValueError(f"{key}: no such URL")
            urls[int(index)] = value
        data["urls"] = urls
        return data

    @field_validator("urls")
    @classmethod
    def _urls(cls, v: list[SecretStr]) -> list[SecretStr]:
        for i, secret in enumerate(v):
            raw = secret.get_secret_value().strip()
            if is_vault_ref(raw):
                continue
            scheme = raw.partition("://")[0] if "://" in raw else ""
            if not scheme or not scheme.replace("+", "").replace("-", "").isalnum():
                raise ValueError(f"urls[{i}] is not an Apprise URL (write scheme://...)")
            if instantiate(raw) is None:  # never echo the URL: it is the credential
                raise ValueError(
                    f"urls[{i}]: Apprise can't use this {scheme}:// URL (unknown service, a missing or malformed"
                    " part, or the service's own package is not installed)"
                )
        return v

    def resolved_format(self, fmt: Format) -> AppriseFormat:
        return self.format.get(fmt, DEFAULT_FORMATS[fmt])

    def secret_values(self) -> list[str]:
        found = super().secret_values()
        for secret in self.urls:
            raw = secret.get_secret_value()
            if raw and not is_vault_ref(raw):
                found += url_secrets(raw)
        return found

    def vault_refs(self) -> dict[str, str]:
        refs = super().vault_refs()
        for i, secret in enumerate(self.urls):
            if m := _vault_name(secret.get_secret_value()):
                refs[f"urls.{i}"] = m
        return refs


def _vault_name(value: str) -> str | None:
    from ..base import VAULT_REF

    m = VAULT_REF.match(value.strip())
    return m.group(1) if m else None


class AppriseNotifier(Notifier):
    kind = "apprise"
    Settings = AppriseSettings
    concurrency = 4
    timeout = 15.0
    settings: AppriseSettings

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.title_max = self.settings.title_max  # type: ignore[misc]
        self.body_max = self.settings.body_max  # type: ignore[misc]
        self.urls = [s.get_secret_value().strip() for s in self.settings.urls]

    # -- rendering ---------------------------------------------------------------------------
    def render(self, message: Message, options: RenderOptions = NO_OPTIONS) -> dict[str, Any]:
        fmt = self.settings.resolved_format(message.format)
        return {
            "title": self.truncate_title(" ".join(message.title.split())),
            "body": self.truncate_body(_body(message, fmt)),
            "body_format": fmt,
            "notify_type": "success" if message.resolves else NOTIFY_TYPES[message.priority],
            "urgency": URGENCY[message.priority],
        }

    # -- sending -----------------------------------------------------------------------------
    async def send(self, payload: dict[str, Any], attempt: Attempt) -> Outcome:
        done = await self._done(attempt.delivery_id)
        todo = [(i, url) for i, url in enumerate(self.urls) if fingerprint(url) not in done]
        answers = await asyncio.gather(*(self._one(url, payload) for _, url in todo), return_exceptions=True)
        # A plugin raising (Apprise catches most) fails its URL alone: the others' progress is kept.
        results = [_raised(a, url) if isinstance(a, BaseException) else a for a, (_, url) in zip(answers, todo, strict=True)]
        failed = [f"urls[{i}]: {why}" for (i, _), why in zip(todo, results, strict=True) if why is not None]
        done |= {fingerprint(url) for (_, url), why in zip(todo, results, strict=True) if why is None}
        progress = orjson.dumps({DONE_KEY: sorted(done)}).decode()
        if not failed:
            return Outcome.delivered(progress if len(self.urls) > 1 else None)
        if any(why is None for why in results):
            await self._keep(attempt.delivery_id, progress)
        sent = len(self.urls) - len(failed)
        prefix = f"{sent} of {len(self.urls)} URLs got it; " if sent else ""
        if all(why.startswith(_REFUSED) for why in results if why is not None):
            return Outcome.permanent(redact(prefix + "; ".join(failed)))
        return Outcome.retry(redact(prefix + "; ".join(failed)))

    async def _one(self, url: str, payload: dict[str, Any]) -> str | None:
        """Send to one URL: None when Apprise said it was sent, else why not (masked)."""
        identity = asset()
        plugin = instantiate(url, identity, quiet=False)
        if plugin is None:
            return "Apprise can't use this URL any more"
        if reason := await _guard(plugin, self.destinations):
            return reason
        self._tune(plugin, url, payload)
        apprise = _apprise()
        obj = apprise.Apprise(asset=identity)
        obj.add(plugin)
        kwargs = {"title": payload["title"], "body": payload["body"] or " ",
                  "body_format": payload["body_format"], "notify_type": payload["notify_type"]}
        ok, logged = await _notify(apprise, obj, kwargs, float(self.effective_timeout))
        if ok:
            return None
        text = " ".join(logged.split())
        for secret in sorted(url_secrets(url), key=len, reverse=True):
            text = text.replace(secret, "…")
        text = redact(text)
        if len(text) > LOG_MAX:
            text = text[:LOG_MAX] + "…"
        return (
            "Apprise reported a failure without saying why (it only answers True/False), so it is retried"
            + (f"; it logged: {text}" if text else "; it logged nothing")
        )

    def _tune(self, plugin: Any, url: str, payload: dict[str, Any]) -> None:
        """tidings retries and rate-limits: Apprise's own retries and throttle off; the integration's
        timeout for its connections; a desktop notification's urgency from the priority."""
        timeout = float(self.effective_timeout)
        for attr, value in (("service_retry", 0), ("request_rate_per_sec", 0), ("socket_read_timeout", timeout),
                            ("socket_connect_timeout", min(timeout, 10.0))):
            if hasattr(plugin, attr):
                setattr(plugin, attr, value)
        query = {k.lower() for k, _ in parse_qsl(urlsplit(url).query)}
        if hasattr(plugin, "urgency") and not query & {"urgency", "priority"}:
            plugin.urgency = int(payload.get("urgency", 1))

    # -- per-URL progress --------------------------------------------------------------------
    async def _done(self, delivery_id: str) -> set[str]:
        store = self.context.store
        if store is None:
            return set()
        from ...store.tables import deliveries

        async with store.read() as conn:
            raw = (await conn.execute(select(deliveries.c.remote_id).where(deliveries.c.id == delivery_id))).scalar()
        return progress_of(raw)

    async def _keep(self, delivery_id: str, progress: str) -> None:
        store = self.context.store
        if store is None:
            return
        from ...store.tables import deliveries

        async with store.write() as conn:
            await conn.execute(update(deliveries).where(deliveries.c.id == delivery_id).values(remote_id=progress))

    async def test(self) -> Outcome:
        """Apprise has no "check" call for most services: ``integrations test`` sends a test
        notification to every URL (it is what the user asked for), never marking progress."""
        return await super().test()


_REFUSED = "refused: "


def _raised(exc: BaseException, url: str) -> str:
    if isinstance(exc, asyncio.CancelledError):
        raise exc
    text = f"{type(exc).__name__}: {exc}"
    for secret in sorted(url_secrets(url), key=len, reverse=True):
        text = text.replace(secret, "…")
    return f"Apprise raised {redact(text)[:LOG_MAX]}"


def progress_of(remote_id: str | None) -> set[str]:
    """The fingerprints of the URLs a delivery already reached, from its ``remote_id``."""
    if not remote_id:
        return set()
    try:
        data = orjson.loads(remote_id)
    except orjson.JSONDecodeError:
        return set()
    done = data.get(DONE_KEY) if isinstance(data, dict) else None
    return {str(x) for x in done} if isinstance(done, list) else set()


def network_host(plugin: Any) -> str | None:
    """The host Apprise will connect to for ``plugin`` when the user chose it (a self-hosted
    service); None for a vendor's fixed endpoint (discord://, tgram://: their "host" is an id),
    a cloud mode (ntfy://topic) or a local one (dbus://)."""
    fixed = getattr(type(plugin), "notify_url", None)
    if isinstance(fixed, str) and fixed.startswith("http"):
        return None
    if str(getattr(plugin, "mode", "")).lower() == "cloud":
        return None
    host = getattr(plugin, "host", None)
    return host.strip("[]") if isinstance(host, str) and host else None


async def _guard(plugin: Any, destinations: Destinations) -> str | None:
    """Why Apprise may not connect to ``plugin``'s host (private, loopback, link-local, metadata,
    not allow-listed), or None. A host that doesn't resolve is left to Apprise to fail on."""
    host = network_host(plugin)
    if host is None:
        return None
    if reason := destinations.host_refusal(host):
        return _REFUSED + reason
    try:
        ipaddress.ip_address(host)
        addresses = [host]
    except ValueError:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
        except OSError:
            return None
        addresses = [str(info[4][0]) for info in infos]
    kept, first = destinations.filter(host, addresses)
    if first is not None:  # one refused address is enough: requests may pick it
        return _REFUSED + first
    return None


async def _notify(apprise: Any, obj: Any, kwargs: dict[str, Any], timeout: float) -> tuple[bool, str]:
    """``async_notify`` (plugins run in threads: the loop never blocks) and what Apprise logged at
    warning level or above for this call: the call's own log (Apprise 2) or a capture of its
    logger (Apprise 1, which may also hold lines of a send running at the same time). Apprise 2
    also bounds the whole call by ``timeout``."""
    if _per_call_logs(apprise):
        result = await obj.async_notify(**kwargs, timeout=timeout)
        logs = getattr(result, "logs", None)
        lines = [f"{e.level}: {e.message}" for e in logs() if str(e.level).upper() in _LOUD] if callable(logs) else []
        if getattr(result, "timeout_count", 0):
            lines.append(f"timed out after {timeout:g}s")
        return bool(result), " | ".join(lines)
    with apprise.LogCapture(level=logging.WARNING, fmt="%(levelname)s: %(message)s") as buf:
        ok = await obj.async_notify(**kwargs)
    return bool(ok), buf.getvalue()


_LOUD = {"WARNING", "ERROR", "CRITICAL", "WARN"}


def _per_call_logs(apprise: Any) -> bool:
    version = str(getattr(apprise, "__version__", "1"))
    return version.split(".")[0].isdigit() and int(version.split(".")[0]) >= 2


def _body(message: Message, fmt: AppriseFormat) -> str:
    """The body with the fields and links under it, written in ``fmt``."""
    body = message.body.strip()
    if message.format is Format.HTML and fmt != "html":
        body = html.unescape(_strip_tags(body))
    lines: list[str] = []
    if fmt == "html":
        if message.format is not Format.HTML and body:
            body = html.escape(body).replace("\n", "<br>")
        lines += [f"<b>{html.escape(k)}</b>: {html.escape(v)}" for k, v in message.fields]
        lines += [f'<a href="{html.escape(link.url, quote=True)}">{html.escape(link.label)}</a>' for link in message.links]
        return "<br>".join(x for x in [body, *lines] if x)
    if fmt == "markdown":
        lines += [f"**{_md(k)}**: {_md(v)}" for k, v in message.fields]
        lines += [f"[{_md(link.label)}]({link.url.replace(')', '%29')})" for link in message.links]
    else:
        lines += [f"{k}: {v}" for k, v in message.fields]
        lines += [f"{link.label}: {link.url}" for link in message.links]
    return "\n\n".join(x for x in [body, "\n".join(lines)] if x)


def _md(text: str) -> str:
    return "".join("\\" + c if c in "\\*_[]`" else c for c in text)


def _strip_tags(text: str) -> str:
    import re

    return re.sub(r"<br\s*/?>|</p>", "\n", re.sub(r"<(?!br|/p)[^>]*>", "", text)).strip()


__all__ = ["AppriseNotifier", "AppriseSettings", "fingerprint", "network_host", "progress_of"]
