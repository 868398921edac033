"""Prometheus Alertmanager webhooks in (``kind: alertmanager``): tidings as an Alertmanager receiver.

Alertmanager POSTs its webhook payload (version 4) to ``/hooks/{name}``. It doesn't sign its
requests, so tidings checks the ``Authorization`` header the ``webhook_config`` sends through its
``http_config``: ``authorization`` (``Bearer <bearer>``) or ``basic_auth`` (``username`` +
``password``), compared in constant time; anything else is 401. Versions other than ``"4"`` are
refused with 400.

Each alert in a notification becomes one message: priority from the ``severity`` label, title
from ``annotations.summary`` (else ``alertname``; ``[RESOLVED]`` first when resolved), body from
``annotations.description``, the alert's labels as fields and as message labels (so routes and
``group_by`` can use them), links to the generator, the runbook and a pre-filled silence,
``thread_key: alertmanager:<fingerprint>`` and ``resolves`` for resolved alerts: a channel that
threads (Slack) updates the firing message in place and replies in its thread.

Alertmanager retries a notification it couldn't deliver with the same content: the delivery key
is a digest of the group key, the status and each alert's (fingerprint, status, start), so a
retry is answered 200 as a duplicate and processed once, while any change in the group (an alert
resolving, a new one firing, one firing again) is a new delivery. Alertmanager also repeats an
unchanged notification every ``repeat_interval``: one that arrives ``repeat_after`` (15 min) or
more after the first is such a reminder and is processed again (its messages reply in the
alert's thread).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as dt
import hashlib
import re
from typing import TYPE_CHECKING, Any, ClassVar, Literal
from urllib.parse import quote, urlsplit

import orjson
from pydantic import ConfigDict, Field, SecretStr, field_validator, model_validator

from ...message import BODY_MAX, FIELD_VALUE_MAX, FIELDS_MAX, LABEL_VALUE_MAX, LABELS_MAX, TITLE_MAX, Message, Priority
from ...units import Duration
from ..base import IntegrationSettings
from ..receiver import Inbound, InboundEvent, InboundRequest, Receiver, Rejected, same

if TYPE_CHECKING:
    from ...hub import Hub

__all__ = ["DEFAULT_SEVERITY_MAP", "AlertmanagerReceiver", "AlertmanagerSettings", "delivery_key", "fingerprint"]

DEFAULT_SEVERITY_MAP: dict[str, Priority] = {
    "critical": Priority.CRITICAL,
    "error": Priority.HIGH,
    "warning": Priority.HIGH,
    "info": Priority.INFO,
    "none": Priority.INFO,  # kube-prometheus's always-firing Watchdog
    **{p.value: p for p in Priority if p is not Priority.CRITICAL},  # severity: high / medium / low
}
RESOLVED_PREFIX = "[RESOLVED] "
OWN_LABELS = ("source", "event_type")
_LABEL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]{0,99}$")
_ZERO_TIME = "0001-01-01T00:00:00Z"
_URL_MAX = 2_000
_SHOWN_ANNOTATIONS = ("summary", "description", "message", "runbook_url", "runbook")


class AlertmanagerSettings(IntegrationSettings):
    model_config = ConfigDict(
        json_schema_extra={"anyOf": [{"required": ["bearer"]}, {"required": ["username", "password"]}]}
    )
    kind: Literal["alertmanager"]
    bearer: SecretStr | None = Field(
        None, description="the token Alertmanager sends (http_config.authorization.credentials)"
    )
    username: str | None = Field(None, description="http_config.basic_auth.username")
    password: SecretStr | None = Field(None, description="http_config.basic_auth.password")
    severity_map: dict[str, Priority] = Field(
        default_factory=dict, description="severity label value -> priority, over the defaults (case-insensitive)"
    )
    default_priority: Priority = Field(Priority.MEDIUM, description="for alerts without a severity, or one not mapped")
    severity_label: str = Field("severity", min_length=1, description="the alert label that holds the severity")
    repeat_after: Duration = Field(
        900.0,
        gt=0,
        description="an unchanged notification received this long after the first is Alertmanager's "
        "repeat_interval reminder and is processed again; sooner, it is a retry (answered as a duplicate). "
        "Keep it above group_interval and below repeat_interval",
    )

    @model_validator(mode="after")
    def _authenticated(self) -> AlertmanagerSettings:
        if (self.username is None) != (self.password is None):
            raise ValueError("basic authentication needs both username and password")
        if self.bearer is None and self.password is None:
            raise ValueError(
                "set bearer (Alertmanager's http_config.authorization) or username and password "
                "(http_config.basic_auth): Alertmanager doesn't sign its requests, unauthenticated ones are refused"
            )
        return self

    @field_validator("bearer", "password")
    @classmethod
    def _not_empty(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and not v.get_secret_value():
            raise ValueError("must not be empty")
        return v

    @field_validator("username")
    @classmethod
    def _username(cls, v: str | None) -> str | None:
        if v is not None and (not v or ":" in v):
            raise ValueError("must be non-empty and without ':' (HTTP Basic authentication)")
        return v

    @field_validator("severity_map")
    @classmethod
    def _lower(cls, v: dict[str, Priority]) -> dict[str, Priority]:
        return {k.strip().lower(): p for k, p in v.items()}


def fingerprint(alert: dict[str, Any]) -> str:
    """The alert's fingerprint; one made from its labels for senders that leave it out."""
    given = alert.get("fingerprint")
    if isinstance(given, str) and given.strip():
        return given.strip()
    labels = alert.get("labels") if isinstance(alert.get("labels"), dict) else {}
    return "l" + hashlib.sha256(orjson.dumps(labels, option=orjson.OPT_SORT_KEYS)).hexdigest()[:15]


def delivery_key(payload: dict[str, Any]) -> str:
    """The same notification sent again (Alertmanager's retry) has the same key; a group whose
    alerts changed (one resolved, one new, one firing again with a new start) has another."""
    alerts = [a for a in payload.get("alerts") or [] if isinstance(a, dict)]
    members = sorted([fingerprint(a), str(a.get("status") or ""), str(a.get("startsAt") or "")] for a in alerts)
    material = [str(payload.get("groupKey") or ""), str(payload.get("status") or ""), members]
    return "am:" + hashlib.sha256(orjson.dumps(material)).hexdigest()


class AlertmanagerReceiver(Receiver):
    kind = "alertmanager"
    Settings = AlertmanagerSettings
    settings: AlertmanagerSettings

    kept_headers = ("user-agent",)
    handlers: ClassVar[dict[str, str]] = {"alert.firing": "_alerts", "alert.resolved": "_alerts"}

    @property
    def repeat_after(self) -> float | None:
        return self.settings.repeat_after

    # -- the request ---------------------------------------------------------------------------
    def verify(self, request: InboundRequest) -> None:
        header = request.headers.get("authorization", "").strip()
        if not header:
            raise Rejected(401, "missing Authorization header (set http_config in Alertmanager's webhook_config)")
        scheme, _, credentials = header.partition(" ")
        scheme, credentials = scheme.lower(), credentials.strip()
        s = self.settings
        if scheme == "bearer" and s.bearer is not None:
            if not same(s.bearer.get_secret_value(), credentials):
                raise Rejected(401, "wrong bearer token")
            return
        if scheme == "basic" and s.username is not None and s.password is not None:
            try:
                decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
            except (binascii.Error, ValueError):
                raise Rejected(401, "malformed Basic credentials") from None
            user, sep, password = decoded.partition(":")
            # Both compared, whatever the first gives: the time taken tells nothing.
            ok = same(s.username, user) & same(s.password.get_secret_value(), password)
            if not sep or not ok:
                raise Rejected(401, "wrong username or password")
            return
        accepted = " or ".join(n for n, on in (("Bearer", s.bearer is not None), ("Basic", s.password is not None)) if on)
        raise Rejected(401, f"expected Authorization: {accepted}")

    def identify(self, request: InboundRequest) -> Inbound:
        payload = request.json()
        if not isinstance(payload, dict):
            raise Rejected(400, "not an Alertmanager notification: expected a JSON object")
        version = payload.get("version")
        if version != "4":
            raise Rejected(
                400, f"unsupported webhook payload version {version!r}: tidings reads Alertmanager's version \"4\""
            )
        if not isinstance(payload.get("alerts"), list):
            raise Rejected(400, "alerts must be a list")
        status = payload.get("status")
        if status not in ("firing", "resolved"):
            raise Rejected(400, f"status must be 'firing' or 'resolved', not {status!r}")
        return Inbound(f"alert.{status}", delivery_key(payload))

    # -- processing -------------------------------------------------------------------------
    async def _alerts(self, event: InboundEvent, hub: Hub) -> dict[str, Any]:
        payload = event.json()
        built = [self.alert_message(payload, a) for a in payload["alerts"] if isinstance(a, dict)]
        messages = [m for m, _ in built]
        dropped = sorted({name for _, d in built for name in d["dropped"]})
        clipped = sorted({name for _, d in built for name in d["clipped"]})
        truncated = payload.get("truncatedAlerts")
        if isinstance(truncated, bool) or not isinstance(truncated, int):
            truncated = 0
        if truncated > 0:
            messages.append(self._truncated_message(payload, truncated, messages))
        ids = await asyncio.gather(*(self.emit(hub, event, m, index=i) for i, m in enumerate(messages)))
        result: dict[str, Any] = {"messages": list(ids)}
        if dropped:
            result["dropped_labels"] = dropped
        if clipped:
            result["clipped_labels"] = clipped
        if truncated > 0:
            result["truncated_alerts"] = truncated
        return result

    def priority_of(self, labels: dict[str, str]) -> Priority:
        severity = labels.get(self.settings.severity_label, "").strip().lower()
        return self.settings.severity_map.get(severity) or DEFAULT_SEVERITY_MAP.get(severity) or self.settings.default_priority

    def alert_message(self, payload: dict[str, Any], alert: dict[str, Any]) -> tuple[Message, dict[str, list[str]]]:
        """One alert as a message, with the label names it couldn't carry (``dropped``: a name
        tidings labels can't have, one of tidings' own, or past the 50th) or had to shorten."""
        labels = _texts(alert.get("labels"))
        annotations = _texts(alert.get("annotations"))
        status = alert.get("status") if alert.get("status") in ("firing", "resolved") else payload.get("status")
        resolved = status == "resolved"
        fp = fingerprint(alert)
        alertname = labels.get("alertname", "").strip() or "alert"
        title = annotations.get("summary", "").strip() or alertname
        if resolved:
            title = RESOLVED_PREFIX + title
        ordered = sorted(labels, key=lambda k: (k != "alertname", k))
        fields = [(name, labels[name]) for name in ordered]
        fields += [(name, value) for name, value in sorted(annotations.items()) if name not in _SHOWN_ANNOTATIONS]
        started = str(alert.get("startsAt") or "")
        ended = str(alert.get("endsAt") or "")
        if started and started != _ZERO_TIME:
            fields.append(("Started", _when(started)))
        if resolved and ended and ended != _ZERO_TIME:
            fields.append(("Ended", _when(ended)))
        links = []
        if _linkable(source := str(alert.get("generatorURL") or "")):
            links.append(("Source", source))
        runbook = annotations.get("runbook_url") or annotations.get("runbook") or ""
        if _linkable(runbook):
            links.append(("Runbook", runbook))
        silence = _silence_url(str(payload.get("externalURL") or ""), labels)
        if not resolved and silence:
            links.append(("Silence", silence))
        own, report = _message_labels(labels, {"source": "alertmanager", "event_type": f"alert.{status}"})
        message = Message(
            title=_clip(title, TITLE_MAX),
            body=_clip(annotations.get("description") or annotations.get("message") or "", BODY_MAX),
            priority=self.priority_of(labels),
            fields=[(_clip(n, 200), _clip(v, FIELD_VALUE_MAX)) for n, v in fields if n.strip()][:FIELDS_MAX],
            links=[{"label": label, "url": url} for label, url in links],
            labels=own,
            thread_key=_clip(f"alertmanager:{fp}", 500),
            dedup_key=_clip(f"alertmanager:{fp}:{status}:{started}", 500),
            resolves=resolved,
        )
        return message, report

    def _truncated_message(self, payload: dict[str, Any], count: int, shown: list[Message]) -> Message:
        group = _texts(payload.get("groupLabels"))
        scope = ", ".join(f"{k}={v}" for k, v in sorted(group.items())) or str(payload.get("receiver") or "")
        priority = min((m.priority for m in shown), key=lambda p: p.rank, default=self.settings.default_priority)
        own, _ = _message_labels(group, {"source": "alertmanager", "event_type": "alert.truncated"})
        external = str(payload.get("externalURL") or "")
        alerts = "alert" if count == 1 else "alerts"
        return Message(
            title=_clip(f"{count:,} more {alerts} not shown" + (f" ({scope})" if scope else ""), TITLE_MAX),
            body=f"Alertmanager left {count:,} {alerts} of this group out of the notification (max_alerts in its "
                 "webhook_config). See them in Alertmanager.",
            priority=priority,
            labels=own,
            links=[{"label": "Alertmanager", "url": external}] if _linkable(external) else [],
        )


def _texts(value: Any) -> dict[str, str]:
    """A label or annotation map as text (Alertmanager's are strings; be lenient with others)."""
    if not isinstance(value, dict):
        return {}
    out = {}
    for k, v in value.items():
        if v is None or isinstance(v, (dict, list)):
            continue
        text = ("true" if v else "false") if isinstance(v, bool) else str(v)
        out[str(k).replace("\x00", "")] = text.replace("\x00", "")
    return out


def _message_labels(labels: dict[str, str], own: dict[str, str]) -> tuple[dict[str, str], dict[str, list[str]]]:
    """tidings' own labels, then the alert's (``alertname`` first) that fit: names matching
    ``^[A-Za-z_][A-Za-z0-9_.-]{0,99}$``, values of at most 500 characters (longer ones shortened),
    at most 50 in all. The others stay visible as fields."""
    out = dict(own)
    dropped: list[str] = []
    clipped: list[str] = []
    for name in sorted(labels, key=lambda k: (k != "alertname", k != "severity", k)):
        if name in OWN_LABELS or not _LABEL_NAME.match(name) or len(out) >= LABELS_MAX:
            dropped.append(name)
            continue
        value = labels[name]
        if len(value) > LABEL_VALUE_MAX:
            clipped.append(name)
            value = _clip(value, LABEL_VALUE_MAX)
        out[name] = value
    return out, {"dropped": dropped, "clipped": clipped}


def _silence_url(external: str, labels: dict[str, str]) -> str | None:
    """Alertmanager's UI, a new silence pre-filled with this alert's labels."""
    if not labels or not _linkable(external):
        return None
    matchers = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items()))
    url = f"{external.rstrip('/')}/#/silences/new?filter={quote('{' + matchers + '}', safe='')}"
    return url if len(url) <= _URL_MAX else None


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _linkable(url: str) -> bool:
    if not url or len(url) > _URL_MAX or any(c.isspace() or ord(c) < 32 for c in url):
        return False
    try:
        parts = urlsplit(url)
    except ValueError:  # "http://[::1": an unclosed IPv6 address
        return False
    return parts.scheme in ("http", "https") and bool(parts.netloc)


_FRACTION = re.compile(r"(\.\d+)")


def _when(stamp: str) -> str:
    """RFC 3339 (with Go's nanoseconds) as ``2024-11-05 14:02:26 UTC``; as given if unreadable."""
    try:
        parsed = dt.datetime.fromisoformat(_FRACTION.sub(lambda m: m.group(1)[:7], stamp, count=1).replace("Z", "+00:00"))
    except ValueError:
        return stamp
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
