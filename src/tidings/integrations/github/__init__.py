"""GitHub webhooks in (``kind: github``): ``POST /hooks/{name}`` from a repository's or an
organization's webhook.

- verified with ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, raw body)>`` in constant
  time before anything is parsed; a missing or wrong signature is a 401;
- ``application/json`` or ``application/x-www-form-urlencoded`` (the JSON in the ``payload`` field);
- the event type is ``X-GitHub-Event`` refined by the payload's ``action`` (``issues.opened``,
  ``pull_request.merged`` for a closed PR that was merged), the delivery key ``X-GitHub-Delivery``
  (the same on a redelivery, so the framework deduplicates it);
- ``ping`` is answered with GitHub's zen and recorded as ignored;
- a Zulip-style table: ``handlers`` (event type -> method), ``ignored`` (dropped on purpose),
  anything else unsupported. Handlers read payloads leniently (real payloads omit fields that
  the schemas call required) and build at most one :class:`~tidings.Message` per event.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import orjson
from pydantic import Field, SecretStr, field_validator

from ...message import Link, Message
from ..base import IntegrationSettings
from ..receiver import (
    Inbound,
    InboundEvent,
    InboundRequest,
    Receiver,
    Rejected,
    Reply,
    body_digest,
    hmac_sha256,
    same,
)

if TYPE_CHECKING:
    from ...hub import Hub

FORM = "application/x-www-form-urlencoded"
_REPOSITORY = re.compile(r"^[A-Za-z0-9_.\-]+/(\*|[A-Za-z0-9_.\-]+)$")
_EVENT_NAME = re.compile(r"^[A-Za-z0-9_\-]{1,100}$")
_URL = re.compile(r"^https?://[^\s/?#]+\S*$", re.IGNORECASE)
_ACTION_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-]+")
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>])")

BODY_MAX = 3000
"""Characters of an issue, PR, comment or release text quoted in a message."""
COMMITS_MAX = 10
"""Commits listed for a push; the rest are counted."""

_RUN_NEWS = {
    # conclusion -> (what happened, priority)
    "failure": ("failed", "high"),
    "timed_out": ("timed out", "high"),
    "startup_failure": ("failed to start", "high"),
    "cancelled": ("was cancelled", "low"),
    "action_required": ("needs action", "low"),
}


class GitHubSettings(IntegrationSettings):
    kind: Literal["github"]
    secret: SecretStr = Field(
        description="the webhook's secret: the same value as in GitHub's webhook settings (or ${vault:NAME})"
    )
    repositories: list[str] | None = Field(
        None,
        description="accept events of these repositories only (owner/name or owner/*); others are recorded as ignored",
    )

    @field_validator("secret")
    @classmethod
    def _secret(cls, v: SecretStr) -> SecretStr:
        if not v.get_secret_value().strip():
            raise ValueError("must not be empty: set the same secret here and on the GitHub webhook")
        return v

    @field_validator("repositories")
    @classmethod
    def _repositories(cls, v: list[str] | None) -> list[str] | None:
        if v is None:
            return v
        if not v:
            raise ValueError("an empty list would ignore every event; leave repositories out to accept all")
        for name in v:
            if not _REPOSITORY.match(name):
                raise ValueError(f"{name!r} is not owner/name (or owner/*)")
        return v


@dataclass(frozen=True, slots=True)
class Skip:
    """A handled event that is not news this time (a successful run, a push without commits):
    recorded as ignored, with the reason."""

    reason: str


@dataclass(frozen=True, slots=True)
class _Event:
    """What every handler needs from a delivery."""

    event_type: str
    name: str
    action: str
    payload: dict[str, Any]
    repository: str
    sender: str

    def labels(self, **extra: str) -> dict[str, str]:
        out = {
            "source": "github",
            "event_type": self.event_type,
            "event": self.name,
            "action": self.action,
            "repository": self.repository,
            "sender": self.sender,
            **extra,
        }
        return {k: _cut(v, 500) for k, v in out.items() if v}

    def thread(self, number: str) -> str | None:
        return f"github:{self.repository}#{number}" if self.repository and number else None


class GitHubReceiver(Receiver):
    kind = "github"
    Settings = GitHubSettings
    settings: GitHubSettings

    content_types = ("application/json", FORM)
    kept_headers = (
        "content-type",
        "user-agent",
        "x-github-event",
        "x-github-delivery",
        "x-github-hook-id",
        "x-github-hook-installation-target-type",
        "x-github-hook-installation-target-id",
    )

    handlers = {
        **{f"issues.{a}": "_issue" for a in (
            "opened", "edited", "closed", "reopened", "labeled", "unlabeled", "assigned", "unassigned", "deleted")},
        **{f"issue_comment.{a}": "_comment" for a in ("created", "edited", "deleted")},
        **{f"pull_request.{a}": "_pull_request" for a in ("opened", "closed", "merged", "reopened", "ready_for_review")},
        "pull_request_review.submitted": "_review",
        "push": "_push",
        "release.published": "_release",
        "workflow_run.completed": "_workflow_run",
    }
    ignored = frozenset({
        # Whole events: common, but not worth a message.
        "ping", "star", "watch", "fork", "public", "create", "delete", "gollum", "page_build", "meta",
        "check_run", "check_suite", "status", "workflow_job", "workflow_dispatch", "merge_group",
        "deployment", "deployment_status", "deployment_review", "deployment_protection_rule",
        "member", "membership", "team_add", "label", "milestone", "commit_comment",
        "branch_protection_rule", "branch_protection_configuration", "repository_ruleset",
        "project", "project_card", "project_column", "projects_v2", "projects_v2_item", "projects_v2_status_update",
        "discussion", "discussion_comment", "pull_request_review_comment", "pull_request_review_thread",
        "sub_issues", "issue_dependencies",
        # Actions of handled events that are dropped on purpose.
        *(f"issues.{a}" for a in (
            "pinned", "unpinned", "locked", "unlocked", "milestoned", "demilestoned", "transferred", "typed", "untyped")),
        *(f"pull_request.{a}" for a in (
            "assigned", "unassigned", "labeled", "unlabeled", "edited", "synchronize", "converted_to_draft",
            "review_requested", "review_request_removed", "locked", "unlocked", "auto_merge_enabled",
            "auto_merge_disabled", "enqueued", "dequeued", "milestoned", "demilestoned")),
        "pull_request_review.edited", "pull_request_review.dismissed",
        *(f"release.{a}" for a in ("created", "edited", "deleted", "prereleased", "released", "unpublished")),
        "workflow_run.requested", "workflow_run.in_progress",
    })

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._secret = self.settings.secret.get_secret_value().encode("utf-8")
        allowed = [r.lower() for r in self.settings.repositories or []]
        self._repos = {r for r in allowed if not r.endswith("/*")}
        self._owners = {r[:-2] for r in allowed if r.endswith("/*")}

    # -- the request ---------------------------------------------------------------------------------
    def verify(self, request: InboundRequest) -> None:
        header = request.headers.get("x-hub-signature-256", "").strip()
        if not header:
            raise Rejected(401, "no X-Hub-Signature-256 header: set a secret on the GitHub webhook")
        scheme, _, given = header.partition("=")
        if scheme.strip().lower() != "sha256" or not given:
            raise Rejected(401, "malformed X-Hub-Signature-256: expected sha256=<hex>")
        expected = hmac_sha256(self._secret, request.body).hex()
        if not same(expected, given.strip().lower()):
            raise Rejected(401, "X-Hub-Signature-256 does not match the body: check that both sides have the same secret")

    def identify(self, request: InboundRequest) -> Inbound:
        name = request.headers.get("x-github-event", "").strip()
        if not name:
            raise Rejected(400, "no X-GitHub-Event header")
        if not _EVENT_NAME.match(name):
            raise Rejected(400, "malformed X-GitHub-Event header")
        payload = _decode(request.content_type, request.body)
        delivery = request.headers.get("x-github-delivery", "").strip() or body_digest(request.body)
        reply = None
        if name == "ping":
            zen = payload.get("zen")
            reply = Reply(200, orjson.dumps({"ok": True, "zen": zen if isinstance(zen, str) else None,
                                             "hook_id": payload.get("hook_id")}))
        return Inbound(event_type(name, payload), delivery, reply=reply)

    # -- processing ------------------------------------------------------------------------------------
    def allows(self, repository: str) -> bool:
        """Whether ``repositories`` lets events of ``repository`` (owner/name) through."""
        if not self._repos and not self._owners:
            return True
        repository = repository.lower()
        return repository in self._repos or repository.split("/", 1)[0] in self._owners

    async def process(self, event: InboundEvent, hub: Hub) -> dict[str, Any]:
        name = self.handlers.get(event.event_type)
        if name is None:  # recorded under an older table, then replayed
            return {"status": "unsupported"}
        payload = _decode(_content_type(event), event.body)
        family, _, action = event.event_type.partition(".")
        if family == "pull_request" and action == "merged":
            action = _text(payload, "action") or "closed"  # GitHub's own action
        ev = _Event(
            event_type=event.event_type,
            name=family,
            action=action,
            payload=payload,
            repository=_repository(payload),
            sender=_text(payload, "sender", "login"),
        )
        if not self.allows(ev.repository):
            return {"status": "ignored", "reason": f"repository {ev.repository or '(none)'} is not in repositories"}
        outcome: Message | Skip = getattr(self, name)(ev)
        if isinstance(outcome, Skip):
            return {"status": "ignored", "reason": outcome.reason}
        return {"message": await self.emit(hub, event, outcome)}

    # -- handlers: each returns a Message, or Skip when the event is not news --------------------------------
    def _issue(self, ev: _Event) -> Message:
        issue = _obj(ev.payload, "issue")
        number = _number(issue.get("number"))
        title = _text(issue, "title")
        author = _text(issue, "user", "login")
        labels = _names(issue.get("labels"), "name")
        assignees = _names(issue.get("assignees"), "login") or [a for a in [_text(issue, "assignee", "login")] if a]
        what = {
            "closed": {"not_planned": "closed as not planned", "duplicate": "closed as a duplicate"}.get(
                _text(issue, "state_reason"), "closed"),
            "labeled": f"labeled {_text(ev.payload, 'label', 'name')}".rstrip(),
            "unlabeled": f"unlabeled {_text(ev.payload, 'label', 'name')}".rstrip(),
            "assigned": f"assigned to {_text(ev.payload, 'assignee', 'login')}".rstrip(),
            "unassigned": f"unassigned from {_text(ev.payload, 'assignee', 'login')}".rstrip(),
        }.get(ev.action, ev.action)
        body = ""
        if ev.action in ("opened", "edited"):
            old_title = _text(ev.payload, "changes", "title", "from")
            body = (f"Title was: {_md(old_title)}\n\n" if ev.action == "edited" and old_title else "")
            body += _quote_text(_text(issue, "body"))
        extra = {"labels": ",".join(labels)}
        if ev.action in ("labeled", "unlabeled"):
            extra["label"] = _text(ev.payload, "label", "name")
        if ev.action in ("assigned", "unassigned"):
            extra["assignee"] = _text(ev.payload, "assignee", "login")
        return _message(
            title=f"Issue #{number} {what} in {ev.repository}: {title}",
            body=body,
            priority="low" if ev.action in ("opened", "closed", "reopened", "deleted") else "info",
            fields={"Author": author, "Labels": ", ".join(labels), "Assignees": ", ".join(assignees),
                    "Milestone": _text(issue, "milestone", "title"),
                    "By": ev.sender if ev.action != "opened" and ev.sender != author else ""},
            links=[(f"Issue #{number}", _text(issue, "html_url"))],
            labels=ev.labels(**extra),
            thread_key=ev.thread(number),
            resolves=ev.action in ("closed", "deleted"),
        )

    def _comment(self, ev: _Event) -> Message:
        issue = _obj(ev.payload, "issue")
        comment = _obj(ev.payload, "comment")
        number = _number(issue.get("number"))
        is_pr = bool(issue.get("pull_request"))
        kind = "PR" if is_pr else "issue"
        who = _text(comment, "user", "login") or ev.sender or "someone"
        did = {"created": "commented on", "edited": "edited a comment on", "deleted": "deleted a comment on"}[ev.action]
        if ev.action != "created":
            who = ev.sender or who
        labels = _names(issue.get("labels"), "name")
        return _message(
            title=f"{who} {did} {kind} #{number} in {ev.repository}: {_text(issue, 'title')}",
            body=_quote_text(_text(comment, "body")),
            priority="info",
            fields={"Author": _text(comment, "user", "login"), "Labels": ", ".join(labels)},
            links=[("Comment", _text(comment, "html_url")), (f"{kind.capitalize()} #{number}", _text(issue, "html_url"))],
            labels=ev.labels(labels=",".join(labels), subject="pull_request" if is_pr else "issue"),
            thread_key=ev.thread(number),
        )

    def _pull_request(self, ev: _Event) -> Message:
        pr = _obj(ev.payload, "pull_request")
        number = _number(pr.get("number") or ev.payload.get("number"))
        head, base = _text(pr, "head", "ref"), _text(pr, "base", "ref")
        labels = _names(pr.get("labels"), "name")
        draft = pr.get("draft") is True
        merged = ev.event_type == "pull_request.merged"
        what = {"closed": "closed", "merged": "merged", "reopened": "reopened", "opened": "opened",
                "ready_for_review": "ready for review"}[ev.event_type.partition(".")[2]]
        if ev.event_type == "pull_request.opened" and draft:
            noun = "Draft PR"
        else:
            noun = "PR"
        if merged:
            body = f"Merged {_code(head)} into {_code(base)}." if head and base else ""
        elif ev.event_type == "pull_request.closed":
            body = "Closed without merging."
        elif ev.event_type in ("pull_request.opened", "pull_request.ready_for_review"):
            body = _quote_text(_text(pr, "body"))
        else:
            body = ""
        changes = ""
        if all(isinstance(pr.get(k), int) for k in ("additions", "deletions", "changed_files")):
            changes = f"+{pr['additions']} −{pr['deletions']} in {pr['changed_files']} files"
        author = _text(pr, "user", "login")
        return _message(
            title=f"{noun} #{number} {what} in {ev.repository}: {_text(pr, 'title')}",
            body=body,
            priority="low",
            fields={"Author": author, "Branch": f"{head} → {base}" if head and base else head or base,
                    "Labels": ", ".join(labels), "Changes": changes,
                    "Merged by": _text(pr, "merged_by", "login") or ev.sender if merged else "",
                    "By": ev.sender if not merged and ev.action != "opened" and ev.sender != author else ""},
            links=[(f"PR #{number}", _text(pr, "html_url"))],
            labels=ev.labels(branch=base, head_branch=head, labels=",".join(labels), draft="true" if draft else "false"),
            thread_key=ev.thread(number),
            resolves=ev.event_type in ("pull_request.merged", "pull_request.closed"),
        )

    def _review(self, ev: _Event) -> Message:
        pr = _obj(ev.payload, "pull_request")
        review = _obj(ev.payload, "review")
        number = _number(pr.get("number"))
        reviewer = _text(review, "user", "login") or ev.sender or "someone"
        state = _text(review, "state").lower()
        where = f"PR #{number} in {ev.repository}: {_text(pr, 'title')}"
        title = {
            "approved": f"{reviewer} approved {where}",
            "changes_requested": f"{reviewer} requested changes on {where}",
        }.get(state, f"{reviewer} reviewed {where}")
        return _message(
            title=title,
            body=_quote_text(_text(review, "body")),
            priority="low" if state in ("approved", "changes_requested") else "info",
            fields={"Reviewer": reviewer, "Author": _text(pr, "user", "login"), "Review": state.replace("_", " ")},
            links=[("Review", _text(review, "html_url")), (f"PR #{number}", _text(pr, "html_url"))],
            labels=ev.labels(review=state, branch=_text(pr, "base", "ref")),
            thread_key=ev.thread(number),
        )

    def _push(self, ev: _Event) -> Message | Skip:
        p = ev.payload
        ref = _text(p, "ref")
        branch = ref.removeprefix("refs/heads/") if ref.startswith("refs/heads/") else ""
        tag = ref.removeprefix("refs/tags/") if ref.startswith("refs/tags/") else ""
        target = branch or tag or ref or "a ref"
        listed = p.get("commits")
        commits = [c for c in listed if isinstance(c, dict)] if isinstance(listed, list) else []
        forced = p.get("forced") is True
        if p.get("deleted") is True:
            return Skip(f"{'tag' if tag else 'branch'} {target} deleted")
        if not commits and not forced:
            return Skip(f"no new commits on {target}")
        who = ev.sender or _text(p, "pusher", "name") or "someone"
        n = len(commits)
        verb = "force-pushed" if forced else "pushed"
        title = f"{who} {verb} {n} commit{'s' if n != 1 else ''} to {target} in {ev.repository}" if commits \
            else f"{who} force-pushed {target} in {ev.repository}"
        lines = []
        for c in commits[:COMMITS_MAX]:
            sha = _text(c, "id")[:7]
            first = _text(c, "message").strip().splitlines()[0] if _text(c, "message").strip() else ""
            author = _text(c, "author", "username") or _text(c, "author", "name")
            url = _text(c, "url")
            ref_md = f"[{_code(sha)}]({url})" if sha and _URL.match(url) else _code(sha) if sha else "•"
            lines.append(f"- {ref_md} {_md(_cut(first, 200))}" + (f" — {_md(author)}" if author else ""))
        compare = _text(p, "compare")
        if n > COMMITS_MAX:
            more = n - COMMITS_MAX
            more_text = f"{more} more commit{'s' if more != 1 else ''}"
            lines.append(f"- …and [{more_text}]({compare})" if _URL.match(compare) else f"- …and {more_text}")
        return _message(
            title=title,
            body="\n".join(lines),
            priority="low" if forced else "info",
            fields={"Branch" if branch else "Tag" if tag else "Ref": target, "Commits": str(n) if commits else "",
                    "Head": _text(p, "after")[:7]},
            links=[("Changes", compare)],
            labels=ev.labels(branch=branch, tag=tag, ref=ref, forced="true" if forced else "false"),
        )

    def _release(self, ev: _Event) -> Message:
        release = _obj(ev.payload, "release")
        tag = _text(release, "tag_name")
        name = _text(release, "name").strip()
        pre = release.get("prerelease") is True
        shown = tag or name or "(untitled)"
        title = f"{'Pre-release' if pre else 'Release'} {shown} published in {ev.repository}"
        if name and name != shown:
            title += f": {name}"
        return _message(
            title=title,
            body=_quote_text(_text(release, "body")),
            priority="low",
            fields={"Tag": tag, "Author": _text(release, "author", "login"), "Target": _text(release, "target_commitish"),
                    "Pre-release": "yes" if pre else ""},
            links=[("Release", _text(release, "html_url"))],
            labels=ev.labels(tag=tag, prerelease="true" if pre else "false"),
        )

    def _workflow_run(self, ev: _Event) -> Message | Skip:
        run = _obj(ev.payload, "workflow_run")
        conclusion = _text(run, "conclusion")
        if conclusion not in _RUN_NEWS:
            return Skip(f"conclusion {conclusion or 'none'}: not news")
        happened, priority = _RUN_NEWS[conclusion]
        workflow = _text(run, "name") or _text(ev.payload, "workflow", "name") or _text(run, "path") or "workflow"
        branch = _text(run, "head_branch")
        sha = _text(run, "head_sha")[:7]
        run_number = _number(run.get("run_number"))
        attempt = run.get("run_attempt")
        trigger = _text(run, "event")
        actor = _text(run, "triggering_actor", "login") or _text(run, "actor", "login") or ev.sender
        url = _text(run, "html_url")
        subject = _text(run, "display_title") or _text(run, "head_commit", "message").strip().split("\n")[0]
        run_ref = f"Run #{run_number}" if run_number else "The run"
        if run_number and _URL.match(url):
            run_ref = f"Run [#{run_number}]({url})"
        body = f"{run_ref} {happened}" + (f" on {_code(sha)}" if sha else "") + "."
        if subject:
            body += f"\n\n{_md(_cut(subject, 300))}"
        on = f" on {branch}" if branch else ""
        return _message(
            title=f"Workflow {workflow} {happened}{on} in {ev.repository}",
            body=body,
            priority=priority,
            fields={"Workflow": workflow, "Branch": branch, "Conclusion": conclusion.replace("_", " "), "Commit": sha,
                    "Trigger": trigger, "Actor": actor,
                    "Attempt": str(attempt) if isinstance(attempt, int) and attempt > 1 else ""},
            links=[("Workflow run", url)],
            labels=ev.labels(workflow=workflow, branch=branch, conclusion=conclusion),
            thread_key=f"github:{ev.repository}:run:{run['id']}" if ev.repository and isinstance(run.get("id"), int) else None,
        )


# -- reading payloads leniently ------------------------------------------------------------------------------
def event_type(name: str, payload: dict[str, Any]) -> str:
    """``X-GitHub-Event`` refined by the payload's action; a merged PR's ``closed`` is ``merged``."""
    action = payload.get("action")
    if not isinstance(action, str) or not action.strip():
        return name
    action = _ACTION_UNSAFE.sub("_", action.strip()[:100])
    if name == "pull_request" and action == "closed" and _obj(payload, "pull_request").get("merged") is True:
        action = "merged"
    return f"{name}.{action}"


def _decode(content_type: str, body: bytes) -> dict[str, Any]:
    """The payload of a delivery sent as JSON or as the form field ``payload``; 400 if it isn't one."""
    raw: bytes | str = body
    if content_type == FORM:
        form = InboundRequest("", {}, body).form()
        if "payload" not in form:
            raise Rejected(400, "a form-encoded delivery carries the JSON in the field 'payload'")
        raw = form["payload"]
    try:
        payload = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise Rejected(400, f"malformed JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise Rejected(400, "the payload must be a JSON object")
    return payload


def _content_type(event: InboundEvent) -> str:
    stored = event.headers.get("content-type", "").split(";")[0].strip().lower()
    if stored:
        return stored
    return FORM if event.body.startswith(b"payload=") else "application/json"


def _dig(obj: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def _obj(obj: Any, *keys: str) -> dict[str, Any]:
    found = _dig(obj, *keys)
    return found if isinstance(found, dict) else {}


def _text(obj: Any, *keys: str) -> str:
    """A string found at ``keys`` (numbers as text), else ""; never a NUL."""
    found = _dig(obj, *keys)
    if isinstance(found, bool) or found is None:
        return ""
    if isinstance(found, (str, int, float)):
        return str(found).replace("\x00", "")
    return ""


def _number(v: Any) -> str:
    return str(v) if isinstance(v, int) and not isinstance(v, bool) else "?"


def _names(items: Any, key: str) -> list[str]:
    return [n for n in (_text(i, key) for i in items) if n] if isinstance(items, list) else []


def _repository(payload: dict[str, Any]) -> str:
    repo = _obj(payload, "repository")
    full = _text(repo, "full_name")
    if full:
        return full
    owner, name = _text(repo, "owner", "login"), _text(repo, "name")
    return f"{owner}/{name}" if owner and name else name


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _md(text: str) -> str:
    """User text placed inside markdown we write (a commit line): its markup can't break ours."""
    return _MD_SPECIAL.sub(r"\\\1", text.replace("\r", " ").replace("\n", " "))


def _code(text: str) -> str:
    return f"`{text.replace('`', '')}`" if text else ""


def _quote_text(text: str) -> str:
    """An issue, PR, comment or release text: GitHub markdown already, passed on, cut to BODY_MAX."""
    return _cut(text.replace("\r\n", "\n").strip(), BODY_MAX)


def _message(
    *,
    title: str,
    body: str,
    priority: str,
    fields: dict[str, str],
    links: list[tuple[str, str]],
    labels: dict[str, str],
    thread_key: str | None = None,
    resolves: bool = False,
) -> Message:
    """A message that is valid whatever the payload held: lengths cut, empty values and links
    that aren't http(s) left out."""
    return Message(
        title=_cut(" ".join(title.split()), 500),
        body=body,
        priority=priority,
        format="markdown",
        fields={name: _cut(value, 1000) for name, value in fields.items() if value},
        links=[Link(label, url) for label, url in links if len(url) <= 2000 and _URL.match(url)],
        labels=labels,
        thread_key=thread_key[:500] if thread_key else None,
        resolves=resolves,
    )
