"""What the HTTP API answers, as pydantic models: the OpenAPI document is built from them, and
FastAPI checks every answer against its route's model.

Answer models allow keys they don't name (``extra="allow"``): a key added to an answer later
reaches clients even before it is described here. Error answers all share :class:`ErrorBody`;
:func:`errors` lists them for a route's ``responses``."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..delivery.queries import STATUSES
from ..inbound import EVENT_STATUSES
from ..message import Format, Priority


class Out(BaseModel):
    model_config = ConfigDict(extra="allow")


class ErrorBody(BaseModel):
    """Every error answer (4xx, 5xx), from the API and from `/hooks`."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"error": "invalid request", "detail": ["title: Field required"]}]}
    )

    error: str = Field(description="what went wrong, in a few words: `not found`, `invalid request`, `unauthorized`...")
    detail: str | list[str] | None = Field(
        description="why, for a person: a sentence, or one line per problem (`path: reason`) for invalid input"
    )


_WHY = {
    400: "Malformed request: invalid JSON, a NUL character in the URL, an invalid Content-Length.",
    401: "No valid API token: send `Authorization: Bearer <token>` (`tidings token create`).",
    403: "The token may not do this.",
    404: "Nothing has this id or name.",
    409: "The request conflicts with the current state of the resource.",
    412: "`If-Match` names a revision that is no longer current: read again (the answer's `ETag`) and re-apply.",
    413: "The body is larger than the server's limit (`server.body_limit`).",
    415: "The body is not declared as JSON (`Content-Type: application/json`).",
    422: "Invalid input: `detail` has one line per problem, each with its path (`labels.team: ...`).",
    428: "The write needs `If-Match`: the `ETag` of the configuration you read, or `*`.",
    429: "Too many requests: wait as long as `Retry-After` says.",
    503: "Not ready yet, or the database is unreachable.",
}
_HEADERS: dict[int, dict[str, Any]] = {
    401: {"WWW-Authenticate": {"description": "`Bearer`", "schema": {"type": "string"}}},
}


def errors(*statuses: int, **why: str) -> dict[int | str, dict[str, Any]]:
    """``responses=`` entries for error statuses, each with :class:`ErrorBody` and a description
    (the default one, or ``why["s404"]`` to say it for this route)."""
    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        entry: dict[str, Any] = {"model": ErrorBody, "description": why.get(f"s{status}", _WHY[status])}
        if status in _HEADERS:
            entry["headers"] = _HEADERS[status]
        out[status] = entry
    return out


def api_errors(
    *statuses: int, body: bool = False, params: bool = True, **why: str
) -> dict[int | str, dict[str, Any]]:
    """The errors an ``/api`` route can answer: 400 and 401 always, 422 when it takes
    parameters (``params``), 413 and 415 when it takes a JSON ``body``, and ``statuses``."""
    common = (400, 401, *((413, 415) if body else ()), *((422,) if params or body else ()))
    return errors(*sorted({*common, *statuses}), **why)


# -- messages and deliveries -----------------------------------------------------------------------
class DeliveryRef(Out):
    id: str
    integration: str
    status: Literal[STATUSES]  # type: ignore[valid-type]


class Accepted(Out):
    id: str = Field(description="the message id")
    deliveries: list[DeliveryRef] = Field(description="one per target, `pending` (or `suppressed`); none while scheduled")
    status: Literal["scheduled", "routed", "cancelled", "failed"] | None = Field(
        None, description="given for a scheduled message (`send_at`/`delay`): `scheduled` until it is routed")
    send_at: float | None = Field(None, description="when a scheduled message is routed (Unix time)")


class Cancelled(Out):
    id: str
    status: Literal["cancelled"]
    send_at: float = Field(description="when it would have been routed (Unix time)")
    cancelled_by: str = Field(description="who cancelled it")


class Delivery(Out):
    id: str
    message_id: str
    integration: str
    route: str | None = Field(description="the route that chose this target; null when sent with `to`")
    status: Literal[STATUSES]  # type: ignore[valid-type]
    attempts: int
    created_at: float = Field(description="Unix time, seconds")
    updated_at: float
    next_attempt_at: float | None = Field(description="when it is tried next, while pending or retrying")
    delivered_at: float | None
    latency_ms: float | None
    remote_id: str | None = Field(description="the peer's id for what it received (a Slack ts...)")
    last_error: str | None
    reason: str | None = Field(None, description="why it exists or waits: an escalation step, quiet hours...")


class DeliveryAttempt(Out):
    attempt: int = Field(description="the delivery's attempt number (a retry by hand starts again at 1)")
    at: float = Field(description="when it ended, Unix time")
    outcome: Literal["retry", "dead", "delivered"] = Field(
        description="`retry` (failed, tried again later), `dead` (failed, given up), `delivered`")
    status_code: int | None = Field(description="the peer's HTTP status; null when it answered none (a reset, a "
                                    "timeout) or the integration does not speak HTTP, and for the delivered attempt")
    latency_ms: float | None
    error: str | None = Field(description="what went wrong (the peer's answer, masked and cut); for the delivered "
                              "attempt its warning, if any")
    remote_id: str | None = Field(None, description="the delivered attempt: the peer's id for what it received")


class DeliveryDetail(Delivery):
    attempts_log: list[DeliveryAttempt] = Field(
        default_factory=list, description="its attempts, oldest first: each failed one, then the delivered one "
        "(from the delivery itself). Attempts handed back unsent (circuit open, rate limit) are not attempts.")


class Retried(Out):
    retried: list[str] = Field(description="the ids of the deliveries sent again")


class DeliveryListed(DeliveryDetail):
    title: str = Field(description="the message's title")


class DeliveryPage(Out):
    items: list[DeliveryListed]
    next: str | None = Field(description="pass as `before` for the next page; null on the last one")


class MessageListed(Out):
    id: str
    created_at: float
    title: str
    priority: Priority
    labels: dict[str, str]
    thread_key: str | None
    status: Literal["routed", "scheduled", "cancelled", "failed"] = Field(
        description="`routed`, or a scheduled message's `scheduled`, `cancelled` or `failed`")
    send_at: float | None = Field(description="a scheduled message: when it is (or was) routed")
    deliveries: dict[str, int] = Field(description="its deliveries counted by status")
    integrations: list[str] = Field(description="the integrations its deliveries go to")


class MessagePage(Out):
    items: list[MessageListed]
    next: str | None = Field(description="pass as `before` for the next page; null on the last one")


class MinuteCounts(Out):
    at: float = Field(description="the minute's start, Unix time")
    counts: dict[str, int] = Field(description="deliveries made in that minute, by their status now")


class DeliverySummary(Out):
    since: float = Field(description="the start of the first minute")
    minutes: list[MinuteCounts] = Field(description="oldest first, one per minute, empty ones too")
    waiting: int = Field(description="deliveries not finished: pending, sending, retrying or held, however old")
    oldest_waiting_at: float | None = Field(description="when the oldest of them was made")
    dead: int = Field(description="dead deliveries, however old (retry them to bring them back)")


class Link(BaseModel):
    label: str
    url: str


class Ack(Out):
    by: str
    via: str
    integration: str | None
    at: float
    thread_key: str | None


class EscalationState(Out):
    route: str = Field(description="the route whose `escalation:` policy applies")
    step: int = Field(description="how many of its steps have fired")
    status: Literal["waiting", "stopped", "done"] = Field(
        description="`waiting` for the next step, `stopped` by an acknowledgement, `done` after the last step")
    due_at: float | None = Field(description="when the next step fires, while waiting")
    reason: str | None = Field(description="the last step taken, or why it stopped or ended")


class MessageOut(Out):
    id: str
    created_at: float
    project: str = Field(description="the project the message belongs to")
    title: str
    body: str
    priority: Priority
    format: Format
    fields: list[tuple[str, str]] = Field(description="[name, value] pairs, in order")
    links: list[Link]
    labels: dict[str, str]
    thread_key: str | None
    dedup_key: str | None
    resolves: bool
    idempotency_key: str | None
    deliveries: list[DeliveryDetail]
    acks: list[Ack]
    escalation: EscalationState | None = Field(None, description="its escalation, when a route escalates it")
    escalations: list[EscalationState] = Field(
        default_factory=list, description="every escalation (several routes with `continue` may escalate one message)")
    status: Literal["routed", "scheduled", "cancelled", "failed"] = Field(
        description="`routed` (it has its deliveries); a scheduled message is `scheduled` until `send_at`, or "
        "`cancelled`, or `failed` (not routable when due: `reason`)")
    send_at: float | None = Field(None, description="a scheduled message: when it is (or was) routed")
    cancelled_by: str | None = Field(None, description="who cancelled it")
    reason: str | None = Field(None, description="why a scheduled message failed")


class Preview(Out):
    integration: str
    kind: str
    route: str | None
    payload: Any = Field(description="what would be sent, as the integration's peer would receive it")


class Previews(Out):
    targets: list[Preview]


# -- integrations ----------------------------------------------------------------------------------
class Limits(Out):
    rate_limit: str | None = Field(description="`N/second`, `N/minute`...; null when unlimited")
    burst: int
    concurrency: int
    timeout_s: float


class SendStats(Out):
    """Sending over the last 24 hours."""

    sent: int
    failed: int
    retrying: int
    pending: int
    suppressed: int
    success_rate: float | None
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    last_error: str | None
    last_error_at: float | None


class Integration(Out):
    name: str
    kind: str
    project: str = Field(description="the project it belongs to")
    description: str | None
    sends: bool
    receives: bool
    health: str = Field(description="`ok`, `degraded`, `failing`, `circuit-open` or `disabled`")
    circuit: str | None = Field(None, description="the circuit breaker's state (senders only)")
    disabled_reason: str | None = Field(None, description="senders only")
    limits: Limits | None = Field(None, description="senders only")
    stats: SendStats | None = Field(None, description="senders only")
    inbound: dict[str, int] | None = Field(
        None, description="receivers only: events of the last 24 hours by status, and `rejected` requests"
    )
    settings: dict[str, Any] | None = Field(
        None, description="its settings as configured in the current revision (as `GET .../integrations/{name}` "
        "shows them: secrets masked)"
    )
    webhook_url: str | None = Field(
        None, description="receivers only, when `server.public_url` is set: the URL to give the provider "
        "(`{public_url}/hooks/{name}`)"
    )
    connection: str | None = Field(
        None, description="integrations with `oauth: true` only: their OAuth connection's health (`healthy`, "
        "`expiring`, `needs_reauth`, `not_connected`; details in `GET .../connections/{name}`)"
    )


class TestResult(Out):
    integration: str
    ok: bool
    status: Literal["delivered", "retry", "permanent"] = Field(description="how a real send would have ended")
    remote_id: str | None
    error: str | None
    retry_after: float | None


class Enabled(Out):
    integration: str
    enabled: bool


# -- inbound events and the inbox ------------------------------------------------------------------
class Event(Out):
    id: str
    integration: str
    kind: str
    event_type: str
    delivery_key: str = Field(description="the sender's delivery id (dedup key)")
    received_at: float
    status: Literal[EVENT_STATUSES]  # type: ignore[valid-type]
    attempts: int
    last_error: str | None
    result: dict[str, Any] | None = Field(description="what processing did (messages sent...)")
    processed_at: float | None
    project: str = Field(description="the project of the integration that received it")


class EventDetail(Event):
    headers: dict[str, str] = Field(
        description="the request headers kept for verification and replay; empty when `redacted`")
    content_type: str | None
    size: int = Field(description="body size in bytes")
    body: str | None = Field(description="the body as received; null when not UTF-8, over 64 KiB, or `redacted`")
    redacted: bool = Field(
        False, description="true when the caller may not read payloads (`logs:read`: viewers may not): "
        "`headers` and `body` are left out")


class EventPage(Out):
    items: list[Event]
    next: str | None = Field(description="pass as `before` for the next page; null on the last one")


class InboxItem(Out):
    id: int
    integration: str
    message_id: str
    delivery_id: str
    received_at: float
    message: dict[str, Any] = Field(description="the message as the inbox integration received it")


class InboxPage(Out):
    items: list[InboxItem]
    next: int | None = Field(description="pass as `before` for the next page; null on the last one")


# -- silences --------------------------------------------------------------------------------------
class Silence(Out):
    id: str
    matchers: dict[str, str]
    until: float = Field(description="when it ends, Unix time")
    created_at: float
    created_by: str
    reason: str | None
    project: str = Field(description="the project whose messages it silences")


class Silences(Out):
    items: list[Silence]


# -- operations and webhooks -----------------------------------------------------------------------
class Health(Out):
    status: Literal["ok"]


class Ready(Out):
    status: Literal["ready"]


class HookAccepted(Out):
    id: str = Field(description="the stored event's id")
    status: str = Field(description="`received` (to be processed), `ignored`, `unsupported` or `duplicate`")


# -- the message a client sends --------------------------------------------------------------------
# Patterns for JSON Schema (ECMA-262) that mean what the server's Python checks mean: `_SPACE` is
# what str.strip() and Python's \s treat as whitespace (ECMA's \s differs: no \x1c-\x1f, \x85).
_SPACE = r"\t\n\x0b\x0c\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
NO_NUL = r"^[^\x00]*$"
DURATION = r"^(?:[0-9]+(?:\.[0-9]+)?(?:[Mm][Ss]|[SsMmHhDdWw]))+$"
"""How a duration is written: 30s, 5m, 1h30m, 2d, 500ms."""
NOT_BLANK = rf"^[^\x00]*[^{_SPACE}\x00][^\x00]*$"
LABEL_NAME = r"^[A-Za-z_][A-Za-z0-9_.\-]{0,99}$"
_URL = rf"^(?:[Hh][Tt][Tt][Pp][Ss]?://[^{_SPACE}/?#\x00]+[^{_SPACE}\x00]*|[Mm][Aa][Ii][Ll][Tt][Oo]:[^{_SPACE}\x00]+)$"


def _text(max_length: int, pattern: str = NO_NUL, **extra: Any) -> dict[str, Any]:
    return {"type": "string", "maxLength": max_length, "pattern": pattern, **extra}


def _scalar(max_length: int) -> dict[str, Any]:
    return {"anyOf": [_text(max_length), {"type": "number"}, {"type": "boolean"}],
            "description": "text, a number or a boolean (shown as text); not null"}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}], "default": None}


MESSAGE_EXAMPLE = {
    "title": "Disk almost full on db-1",
    "body": "Only **3%** left on `/var/lib/postgresql`.",
    "priority": "high",
    "format": "markdown",
    "fields": {"host": "db-1", "free": "3%"},
    "links": [{"label": "Dashboard", "url": "https://grafana.example.com/d/disk"}],
    "labels": {"source": "prometheus", "service": "db", "severity": "warning"},
    "thread_key": "disk-db-1",
}


def message_in_schema(schema: dict[str, Any]) -> None:
    """The message schema as the server checks it (the model's own types say less: texts
    without NUL, titles and keys not blank, label names, what ``fields`` and ``links`` accept)."""
    from ..message import (
        BODY_MAX,
        FIELD_NAME_MAX,
        FIELD_VALUE_MAX,
        FIELDS_MAX,
        KEY_MAX,
        LABEL_VALUE_MAX,
        LABELS_MAX,
        LINKS_MAX,
        TITLE_MAX,
    )

    props = schema["properties"]
    field_name = _text(FIELD_NAME_MAX, minLength=1)
    props["title"] = _text(TITLE_MAX, NOT_BLANK, description="one line; not blank")
    props["body"] = _text(BODY_MAX, default="", description="in `format`")
    props["priority"].update(description="how urgent: critical is delivered first")
    props["format"].update(description="how `body` is written; each channel converts it")
    props["fields"] = {
        "description": "a table shown beneath the body, in order: an object, or [name, value] pairs",
        "anyOf": [
            {"type": "object", "maxProperties": FIELDS_MAX, "propertyNames": field_name,
             "additionalProperties": _scalar(FIELD_VALUE_MAX)},
            {"type": "array", "maxItems": FIELDS_MAX,
             "items": {"type": "array", "minItems": 2, "maxItems": 2, "prefixItems": [field_name, _scalar(FIELD_VALUE_MAX)]}},
        ],
        "default": [],
    }
    label = _text(200, minLength=1)
    url = _text(2000, _URL, description="http(s) or mailto")
    props["links"] = {
        "description": "buttons or links under the message",
        "type": "array",
        "maxItems": LINKS_MAX,
        "items": {"anyOf": [
            {"type": "object", "properties": {"label": label, "url": url}, "required": ["label", "url"],
             "additionalProperties": False},
            {"type": "array", "minItems": 2, "maxItems": 2, "prefixItems": [label, url]},
        ]},
        "default": [],
    }
    props["labels"] = {
        "description": "drive routing and silences (`source`, `event_type`, `service`...)",
        "type": "object",
        "maxProperties": LABELS_MAX,
        "propertyNames": {"type": "string", "pattern": LABEL_NAME},
        "additionalProperties": _scalar(LABEL_VALUE_MAX),
    }
    props["thread_key"] = _nullable(_text(KEY_MAX, NOT_BLANK, description="messages sharing it form a thread"))
    props["dedup_key"] = _nullable(
        _text(KEY_MAX, NOT_BLANK, description="messages sharing it are suppressed within a route's cooldown")
    )
    props["resolves"].update(description="true when this message closes its thread (a resolved alert)")
    props["to"] = _nullable({"type": "array", "minItems": 1, "maxItems": 50, "items": {"type": "string"},
                             "description": "integration names: send to these, skipping the routes"})
    props["send_at"] = _nullable({"type": "string", "format": "date-time", "maxLength": 64,
                                  "description": "schedule it: routed at this time (with an offset: Z, +01:00); "
                                  "at most 366 days ahead; a time past is now. Not with `delay`."})
    props["delay"] = _nullable({"anyOf": [{"type": "string", "pattern": DURATION}, {"type": "number", "minimum": 0}],
                                "description": "schedule it this long from now: seconds, or 30s, 10m, 2h, 1d. "
                                "Not with `send_at`."})
    schema.pop("$defs", None)
    schema["description"] = "A message, and optionally the integrations to send it to (skipping the routes)."
    schema["examples"] = [MESSAGE_EXAMPLE]
