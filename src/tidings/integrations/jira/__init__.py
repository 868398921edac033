"""Jira Cloud webhooks in (``kind: jira``): issues and comments become messages.

Jira posts to ``/hooks/{name}``. With ``secret`` set, each request must carry
``X-Hub-Signature: sha256=<hex HMAC-SHA256 of the raw body>`` (what Jira sends for a webhook
registered with a secret); with ``token`` set, the URL must carry ``?token=<token>`` (admin
webhooks that have no secret). Both are compared in constant time; set at least one (unless the
integration only syncs: with ``sync:`` and neither, it takes no webhooks).

Deliveries are deduplicated on ``X-Atlassian-Webhook-Identifier`` (the same on Jira's retries),
or on a digest of the body when it is missing; a duplicate is answered 200, never 409, which Jira
would retry.

Events: ``jira:issue_created``, ``jira:issue_updated``, ``jira:issue_deleted``,
``comment_created`` and ``comment_updated`` become messages, threaded per issue
(``thread_key: jira:PROJ-123``); a transition into a status of the Done category resolves the
thread. Worklogs, sprints, boards, projects, versions, users, issue links, attachments, filters,
options, issue types, issue properties and deleted comments are ignored on purpose; anything else
is recorded as unsupported.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit

import structlog

from ...errors import MessageError
from ...message import BODY_MAX, FIELD_VALUE_MAX, FIELDS_MAX, LABEL_VALUE_MAX, TITLE_MAX, Message, Priority
from ..base import IntegrationSettings
from ..receiver import Inbound, InboundEvent, InboundRequest, Receiver, Rejected, body_digest, hmac_sha256, same
from .adf import jira_text
from .settings import JiraSettings, JiraSync
from .tickets import JiraTicketing
from .tracker import JiraTracker

if TYPE_CHECKING:
    from ...hub import Hub

__all__ = ["DEFAULT_PRIORITY_MAP", "JiraReceiver", "JiraSettings", "JiraSync", "event_type_of", "jira_text"]

DEFAULT_PRIORITY_MAP: dict[str, Priority] = {
    # Jira's default scheme (Highest..Lowest) and the older one (Blocker..Trivial). Tickets never
    # page anyone by default: nothing maps to critical unless priority_map says so.
    "highest": Priority.HIGH,
    "blocker": Priority.HIGH,
    "critical": Priority.HIGH,
    "high": Priority.HIGH,
    "major": Priority.MEDIUM,
    "medium": Priority.MEDIUM,
    "low": Priority.LOW,
    "minor": Priority.LOW,
    "lowest": Priority.LOW,
    "trivial": Priority.LOW,
}

IGNORED_FAMILIES = (
    "worklog_", "sprint_", "board_", "project_", "version_", "user_", "issuelink_", "attachment_",
    "filter_", "option_", "issuetype_", "issue_property_",
)
"""Event families received on purpose and dropped (``jira.sprint_started``, ``jira.version_released``...)."""

QUIET_FIELDS = frozenset({"rank", "timespent", "timeestimate", "timeoriginalestimate", "worklogid", "workratio"})
"""Changes that alone make no message: backlog reordering and the time tracking a worklog updates."""

log = structlog.get_logger("tidings.jira")
_EVENT_CHARS = re.compile(r"[^a-z0-9_]+")
_COMMENT_EVENTS = {"issue_commented": "created", "issue_comment_edited": "updated"}
_NONE = "(none)"
_CHANGE_MAX = 300


def event_type_of(webhook_event: str) -> str:
    """``jira:issue_updated`` -> ``jira.issue_updated``; ``comment_created`` -> ``jira.comment_created``."""
    name = webhook_event.strip().lower().removeprefix("jira:")
    return "jira." + (_EVENT_CHARS.sub("_", name).strip("_") or "unknown")


class JiraReceiver(JiraTicketing, Receiver, JiraTracker):
    """Jira's webhooks in; with ``sync:``, also the project's issues as a sync tracker (:mod:`.tracker`);
    with ``tickets:``, one issue per alert routed here (:mod:`.tickets`)."""

    kind = "jira"
    Settings = JiraSettings
    settings: JiraSettings

    kept_headers = ("x-atlassian-webhook-identifier", "x-atlassian-webhook-retry", "user-agent")
    handlers: ClassVar[dict[str, str]] = {
        "jira.issue_created": "_issue_created",
        "jira.issue_updated": "_issue_updated",
        "jira.issue_deleted": "_issue_deleted",
        "jira.comment_created": "_comment",
        "jira.comment_updated": "_comment",
    }
    ignored: ClassVar[frozenset[str]] = frozenset({"jira.comment_deleted", "jira.jira_expression_evaluation_failed"})

    @classmethod
    def can_receive(cls, settings: IntegrationSettings) -> bool:
        """Without ``secret`` or ``token`` (allowed for a sync-only integration) nothing is received."""
        return getattr(settings, "secret", None) is not None or getattr(settings, "token", None) is not None

    # -- the request ---------------------------------------------------------------------------
    def verify(self, request: InboundRequest) -> None:
        if self.settings.secret is None and self.settings.token is None:
            raise Rejected(401, "this integration takes no webhooks: set its secret or token")
        if self.settings.secret is not None:
            header = request.headers.get("x-hub-signature", "")
            if not header:
                raise Rejected(401, "missing X-Hub-Signature (the webhook must be registered with the secret)")
            algorithm, _, signature = header.strip().partition("=")
            if algorithm.lower() != "sha256" or not signature:
                raise Rejected(401, "X-Hub-Signature must be sha256=<hex>")
            expected = hmac_sha256(self.settings.secret.get_secret_value().encode(), request.body).hex()
            if not same(expected, signature.strip().lower()):
                raise Rejected(401, "signature check failed: X-Hub-Signature does not match the body")
        if self.settings.token is not None:
            given = request.query.get("token", "")
            if not given:
                raise Rejected(401, "missing token: add ?token=... to the webhook URL")
            if not same(self.settings.token.get_secret_value(), given):
                raise Rejected(401, "wrong token")

    def identify(self, request: InboundRequest) -> Inbound:
        payload = request.json()
        event = payload.get("webhookEvent") if isinstance(payload, dict) else None
        if not isinstance(event, str) or not event.strip():
            raise Rejected(400, "not a Jira webhook: no webhookEvent")
        key = request.headers.get("x-atlassian-webhook-identifier", "").strip()
        return Inbound(event_type_of(event), key or body_digest(request.body))

    def status_for(self, event_type: str) -> str:
        if event_type in self.handlers:
            return "received"
        if event_type in self.ignored or event_type.removeprefix("jira.").startswith(IGNORED_FAMILIES):
            return "ignored"
        return "unsupported"

    # -- handlers ----------------------------------------------------------------------------
    def _hint(self, issue: _Issue, hub: Hub) -> None:
        """An issue of the synced project changed: ask sync to re-fetch it (webhooks are hints)."""
        sync = self.settings.sync
        issue_id = issue.payload["issue"].get("id")
        hint = getattr(getattr(hub, "sync", None), "hint", None)
        if sync is None or hint is None or not issue_id or issue.project_key != sync.project:
            return
        try:
            hint(self.name, str(issue_id))
        except Exception:  # a hint lost is repaired by the next sweep; the message still goes out
            log.warning("jira.sync_hint_failed", integration=self.name, issue=issue.key, exc_info=True)

    async def _issue_created(self, event: InboundEvent, hub: Hub) -> dict[str, Any]:
        issue = _Issue(event.json(), self.settings)
        self._hint(issue, hub)
        message = issue.message(
            f"{issue.key} created",
            body=issue.description,
            event_type="jira.issue_created",
            dedup_key=f"jira:{issue.key}:created",
        )
        return {"message": await self.emit(hub, event, message)}

    async def _issue_deleted(self, event: InboundEvent, hub: Hub) -> dict[str, Any]:
        issue = _Issue(event.json(), self.settings)
        self._hint(issue, hub)
        message = issue.message(
            f"{issue.key} deleted",
            event_type="jira.issue_deleted",
            dedup_key=f"jira:{issue.key}:deleted",
            resolves=True,  # nothing more will happen in this issue's thread
            link=False,
        )
        return {"message": await self.emit(hub, event, message)}

    async def _issue_updated(self, event: InboundEvent, hub: Hub) -> dict[str, Any]:
        payload = event.json()
        issue = _Issue(payload, self.settings)
        self._hint(issue, hub)
        changes = [c for c in issue.changes if c.field.lower() not in QUIET_FIELDS]
        comment = payload.get("comment")
        issue_event = str(payload.get("issue_event_type_name") or "")
        if not changes:
            if isinstance(comment, dict) and issue_event in _COMMENT_EVENTS:
                # Jira also sends comment_created/comment_updated for this comment: the same
                # message (same dedup_key) is suppressed inside the route's cooldown.
                message = issue.comment_message(comment, _COMMENT_EVENTS[issue_event])
                return {"message": await self.emit(hub, event, message)}
            quiet = sorted({c.field for c in issue.changes})
            reason = f"only {', '.join(quiet)} changed" if quiet else "no field changed"
            return {"skipped": reason, "issue": issue.key}
        status = next((c for c in changes if c.field.lower() == "status"), None)
        assignee = next((c for c in changes if c.field.lower() == "assignee"), None)
        if status is not None:
            what = f"{issue.key} {status.before} → {status.after}"
        elif assignee is not None and len(changes) == 1:
            what = f"{issue.key} unassigned" if assignee.after == _NONE else f"{issue.key} assigned to {assignee.after}"
        else:
            what = f"{issue.key} updated"
        body = jira_text(comment.get("body")) if isinstance(comment, dict) and not comment.get("visibility") else ""
        changelog_id = (payload.get("changelog") or {}).get("id") if isinstance(payload.get("changelog"), dict) else None
        message = issue.message(
            what,
            body=body,
            event_type="jira.issue_updated",
            changes=changes,
            resolves=status is not None and issue.done,
            dedup_key=f"jira:{issue.key}:changelog:{changelog_id}" if changelog_id else None,
        )
        return {"message": await self.emit(hub, event, message)}

    async def _comment(self, event: InboundEvent, hub: Hub) -> dict[str, Any]:
        payload = event.json()
        comment = payload.get("comment")
        if not isinstance(comment, dict):
            raise MessageError("a comment event without a comment")
        issue = _Issue(payload, self.settings)
        how = "updated" if event.event_type == "jira.comment_updated" else "created"
        return {"message": await self.emit(hub, event, issue.comment_message(comment, how))}


class _Change:
    __slots__ = ("after", "before", "field")

    def __init__(self, item: dict[str, Any]) -> None:
        self.field = str(item.get("field") or item.get("fieldId") or "field")
        self.before = _clip(_change_value(item, "from"), _CHANGE_MAX)
        self.after = _clip(_change_value(item, "to"), _CHANGE_MAX)


def _change_value(item: dict[str, Any], side: str) -> str:
    text = item.get(f"{side}String")
    if text in (None, ""):
        text = item.get(side)
    return " ".join(str(text).split()) if text not in (None, "") else _NONE


class _Issue:
    """What a message needs from an issue in a payload (issue events and comment events alike;
    the latter carry only some of the issue's fields)."""

    def __init__(self, payload: Any, settings: JiraSettings) -> None:
        if not isinstance(payload, dict) or not isinstance(payload.get("issue"), dict):
            raise MessageError("no issue in the payload")
        self.payload = payload
        self.settings = settings
        issue = payload["issue"]
        self.fields: dict[str, Any] = issue.get("fields") if isinstance(issue.get("fields"), dict) else {}
        self.key = str(issue.get("key") or issue.get("id") or "").strip()
        if not self.key:
            raise MessageError("the issue has no key")
        self.self_url = issue.get("self") if isinstance(issue.get("self"), str) else ""
        self.summary = " ".join(str(self.fields.get("summary") or "").split())
        project = self.fields.get("project")
        self.project_key = (
            str(project.get("key") or "") if isinstance(project, dict) else ""
        ) or self.key.rpartition("-")[0]
        self.project_name = str(project.get("name") or "") if isinstance(project, dict) else ""
        self.issue_type = _named(self.fields.get("issuetype"))
        self.status = _named(self.fields.get("status"))
        status = self.fields.get("status")
        category = status.get("statusCategory") if isinstance(status, dict) else None
        self.status_category = str(category.get("key") or "") if isinstance(category, dict) else ""
        self.priority_name = _named(self.fields.get("priority"))
        self.actor = _person(payload.get("user"))

    @property
    def done(self) -> bool:
        """In a status of the Done category (or, when the payload doesn't say, resolved)."""
        if self.status_category:
            return self.status_category.lower() == "done"
        return bool(self.fields.get("resolution"))

    @property
    def description(self) -> str:
        return jira_text(self.fields.get("description"))

    @property
    def changes(self) -> list[_Change]:
        changelog = self.payload.get("changelog")
        items = changelog.get("items") if isinstance(changelog, dict) else None
        return [_Change(i) for i in items or [] if isinstance(i, dict)]

    @property
    def priority(self) -> Priority:
        name = self.priority_name.strip().lower()
        mapped = self.settings.priority_map.get(name) or DEFAULT_PRIORITY_MAP.get(name)
        return mapped or self.settings.default_priority

    @property
    def base_url(self) -> str | None:
        if self.settings.base_url:
            return self.settings.base_url.rstrip("/")
        parts = urlsplit(self.self_url)
        if parts.scheme not in ("http", "https") or not parts.netloc or any(c.isspace() for c in self.self_url):
            return None
        # Jira Server/Data Center may live under a context path: https://host/jira/rest/api/2/issue/1
        prefix = parts.path.split("/rest/", 1)[0] if "/rest/" in parts.path else ""
        return f"{parts.scheme}://{parts.netloc}{prefix.rstrip('/')}"

    @property
    def browse_url(self) -> str | None:
        base = self.base_url
        return f"{base}/browse/{self.key}" if base else None

    def base_fields(self) -> list[tuple[str, str]]:
        f: list[tuple[str, str]] = []
        project = f"{self.project_name} ({self.project_key})" if self.project_name else self.project_key
        if project:
            f.append(("Project", project))
        for name, value in (("Type", self.issue_type), ("Status", self.status), ("Priority", self.priority_name)):
            if value:
                f.append((name, value))
        if "assignee" in self.fields:
            f.append(("Assignee", _person(self.fields.get("assignee")) or "Unassigned"))
        if self.fields.get("reporter"):
            f.append(("Reporter", _person(self.fields.get("reporter"))))
        return f

    def labels(self, event_type: str) -> dict[str, str]:
        out = {"source": "jira", "event_type": event_type, "project": self.project_key, "issue": self.key}
        optional = {"issue_type": self.issue_type, "status": self.status, "status_category": self.status_category,
                    "priority": self.priority_name, "issue_event": str(self.payload.get("issue_event_type_name") or "")}
        out.update({k: v for k, v in optional.items() if v})
        return {k: v for k, v in out.items() if v}

    def message(
        self,
        what: str,
        *,
        event_type: str,
        body: str = "",
        changes: list[_Change] | None = None,
        resolves: bool = False,
        dedup_key: str | None = None,
        link: bool = True,
    ) -> Message:
        fields = self.base_fields()
        if self.actor:
            fields.append(("By", self.actor))
        for change in changes or []:
            fields.append((f"{change.field[:1].upper()}{change.field[1:]} changed", f"{change.before} → {change.after}"))
        labels = self.labels(event_type)
        if changes:
            labels["changed"] = ",".join(sorted({c.field.lower() for c in changes}))
        url = self.browse_url if link else None
        return _message(
            title=f"{what}: {self.summary}" if self.summary else what,
            body=body,
            fields=fields,
            links=[(self.key, url)] if url else [],
            labels=labels,
            priority=self.priority,
            thread_key=f"jira:{self.key}",
            dedup_key=dedup_key,
            resolves=resolves,
        )

    def comment_message(self, comment: dict[str, Any], how: str) -> Message:
        """The same message for ``comment_created`` and for the ``jira:issue_updated`` Jira sends
        with it, so that a route's cooldown lets one of them through."""
        comment_id = str(comment.get("id") or "")
        author = _person(comment.get("author")) or self.actor
        editor = _person(comment.get("updateAuthor")) or author
        visibility = comment.get("visibility")
        if isinstance(visibility, dict) and visibility:
            # A comment restricted to a role or group is not broadcast to a channel.
            body = f"(restricted comment, visible to {visibility.get('value') or visibility.get('type') or 'some users'})"
        else:
            body = jira_text(comment.get("body"))
        fields = self.base_fields()
        fields.append(("Comment by", editor if how == "updated" else author))
        labels = self.labels(f"jira.comment_{how}")
        if isinstance(visibility, dict) and visibility:
            labels["restricted"] = "true"
        links: list[tuple[str, str]] = []
        if (url := self.browse_url) is not None:
            links.append((self.key, url))
            if comment_id:
                links.append(("Comment", f"{url}?focusedCommentId={comment_id}"))
        stamp = str(comment.get("updated" if how == "updated" else "created") or "")
        what = f"Comment on {self.key}" if how == "created" else f"Comment edited on {self.key}"
        return _message(
            title=f"{what}: {self.summary}" if self.summary else what,
            body=body,
            fields=fields,
            links=links,
            labels=labels,
            priority=self.priority,
            thread_key=f"jira:{self.key}",
            dedup_key=f"jira:comment:{comment_id}:{how}:{stamp}" if comment_id else None,
        )


def _message(
    *, title: str, body: str, fields: list[tuple[str, str]], links: list[tuple[str, str]], labels: dict[str, str],
    **rest: Any,
) -> Message:
    return Message(
        title=_clip(_clean(title), TITLE_MAX),
        body=_clip(_clean(body), BODY_MAX),
        fields=[(_clip(_clean(n), 200), _clip(_clean(v), FIELD_VALUE_MAX)) for n, v in fields[:FIELDS_MAX]],
        links=[{"label": _clip(label, 200), "url": url} for label, url in links if len(url) <= 2000],
        labels={k: _clip(_clean(v), LABEL_VALUE_MAX) for k, v in labels.items()},
        **rest,
    )


def _named(value: Any) -> str:
    """A status, priority, issue type...: an object with a name in real payloads, a bare string
    in Atlassian's documented example."""
    if isinstance(value, dict):
        return " ".join(str(value.get("name") or value.get("value") or "").split())
    if value is None or isinstance(value, (list, bool)):
        return ""
    return " ".join(str(value).split())


def _person(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("displayName") or value.get("name") or value.get("emailAddress") or value.get("accountId") or "")
    return value if isinstance(value, str) else ""


def _clean(text: str) -> str:
    return text.replace("\x00", "")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
