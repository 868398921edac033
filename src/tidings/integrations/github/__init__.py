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
  anything else unsupported; the security events (code scanning, Dependabot, secret scanning,
  vulnerability alerts, advisories) are handled in :mod:`.security`. Handlers read payloads leniently (real payloads omit fields that
  the schemas call required) and build at most one :class:`~tidings.Message` per event.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import orjson

from ...message import Message
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
from . import security
from .common import (
    URL,
    Event,
    Skip,
    build_message,
    code_span,
    cut,
    md_escape,
    names_of,
    number_of,
    obj_at,
    quote_text,
    repository_of,
    text_at,
)
from .settings import GitHubSettings, GitHubSync  # noqa: F401  (re-exported)
from .tracker import GitHubTracker

if TYPE_CHECKING:
    from ...hub import Hub

FORM = "application/x-www-form-urlencoded"
_EVENT_NAME = re.compile(r"^[A-Za-z0-9_\-]{1,100}$")
_ACTION_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-]+")

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


class GitHubReceiver(GitHubTracker, Receiver):
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
        **security.HANDLERS,
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
        *security.IGNORED,
    })

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        secret = self.settings.secret
        self._secret = secret.get_secret_value().encode("utf-8") if secret is not None else b""
        allowed = [r.lower() for r in self.settings.repositories or []]
        self._repos = {r for r in allowed if not r.endswith("/*")}
        self._owners = {r[:-2] for r in allowed if r.endswith("/*")}

    @classmethod
    def can_receive(cls, settings: IntegrationSettings) -> bool:
        """Webhooks only with a secret: a sync-only integration (no secret) has no hook."""
        return getattr(settings, "secret", None) is not None

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
            action = text_at(payload, "action") or "closed"  # GitHub's own action
        ev = Event(
            event_type=event.event_type,
            name=family,
            action=action,
            payload=payload,
            repository=repository_of(payload),
            sender=text_at(payload, "sender", "login"),
        )
        if not self.allows(ev.repository):
            result = {"status": "ignored", "reason": f"repository {ev.repository or '(none)'} is not in repositories"}
        elif isinstance(outcome := getattr(self, name)(ev), Skip):
            result = {"status": "ignored", "reason": outcome.reason}
        else:
            result = {"message": await self.emit(hub, event, outcome)}
        self._hint(hub, ev)
        return result

    def _hint(self, hub: Hub, ev: Event) -> None:
        """An ``issues`` event of the synced repository: the sync re-fetches that issue soon."""
        sync = self.settings.sync
        number = obj_at(ev.payload, "issue").get("number")
        if ev.name != "issues" or sync is None or ev.repository.lower() != sync.repository.lower():
            return
        hint = getattr(hub, "sync", None)
        if hint is not None and isinstance(number, int) and not isinstance(number, bool):
            hint.hint(self.name, str(number))

    # -- handlers: each returns a Message, or Skip when the event is not news --------------------------------
    _code_scanning_alert = staticmethod(security.code_scanning_alert)
    _dependabot_alert = staticmethod(security.dependabot_alert)
    _secret_scanning_alert = staticmethod(security.secret_scanning_alert)
    _repository_vulnerability_alert = staticmethod(security.repository_vulnerability_alert)
    _security_advisory = staticmethod(security.security_advisory)

    def _issue(self, ev: Event) -> Message:
        issue = obj_at(ev.payload, "issue")
        number = number_of(issue.get("number"))
        title = text_at(issue, "title")
        author = text_at(issue, "user", "login")
        labels = names_of(issue.get("labels"), "name")
        assignees = names_of(issue.get("assignees"), "login") or [a for a in [text_at(issue, "assignee", "login")] if a]
        what = {
            "closed": {"not_planned": "closed as not planned", "duplicate": "closed as a duplicate"}.get(
                text_at(issue, "state_reason"), "closed"),
            "labeled": f"labeled {text_at(ev.payload, 'label', 'name')}".rstrip(),
            "unlabeled": f"unlabeled {text_at(ev.payload, 'label', 'name')}".rstrip(),
            "assigned": f"assigned to {text_at(ev.payload, 'assignee', 'login')}".rstrip(),
            "unassigned": f"unassigned from {text_at(ev.payload, 'assignee', 'login')}".rstrip(),
        }.get(ev.action, ev.action)
        body = ""
        if ev.action in ("opened", "edited"):
            old_title = text_at(ev.payload, "changes", "title", "from")
            body = (f"Title was: {md_escape(old_title)}\n\n" if ev.action == "edited" and old_title else "")
            body += quote_text(text_at(issue, "body"))
        extra = {"labels": ",".join(labels)}
        if ev.action in ("labeled", "unlabeled"):
            extra["label"] = text_at(ev.payload, "label", "name")
        if ev.action in ("assigned", "unassigned"):
            extra["assignee"] = text_at(ev.payload, "assignee", "login")
        return build_message(
            title=f"Issue #{number} {what} in {ev.repository}: {title}",
            body=body,
            priority="low" if ev.action in ("opened", "closed", "reopened", "deleted") else "info",
            fields={"Author": author, "Labels": ", ".join(labels), "Assignees": ", ".join(assignees),
                    "Milestone": text_at(issue, "milestone", "title"),
                    "By": ev.sender if ev.action != "opened" and ev.sender != author else ""},
            links=[(f"Issue #{number}", text_at(issue, "html_url"))],
            labels=ev.labels(**extra),
            thread_key=ev.thread(number),
            resolves=ev.action in ("closed", "deleted"),
        )

    def _comment(self, ev: Event) -> Message:
        issue = obj_at(ev.payload, "issue")
        comment = obj_at(ev.payload, "comment")
        number = number_of(issue.get("number"))
        is_pr = bool(issue.get("pull_request"))
        kind = "PR" if is_pr else "issue"
        who = text_at(comment, "user", "login") or ev.sender or "someone"
        did = {"created": "commented on", "edited": "edited a comment on", "deleted": "deleted a comment on"}[ev.action]
        if ev.action != "created":
            who = ev.sender or who
        labels = names_of(issue.get("labels"), "name")
        return build_message(
            title=f"{who} {did} {kind} #{number} in {ev.repository}: {text_at(issue, 'title')}",
            body=quote_text(text_at(comment, "body")),
            priority="info",
            fields={"Author": text_at(comment, "user", "login"), "Labels": ", ".join(labels)},
            links=[("Comment", text_at(comment, "html_url")), (f"{kind.capitalize()} #{number}", text_at(issue, "html_url"))],
            labels=ev.labels(labels=",".join(labels), subject="pull_request" if is_pr else "issue"),
            thread_key=ev.thread(number),
        )

    def _pull_request(self, ev: Event) -> Message:
        pr = obj_at(ev.payload, "pull_request")
        number = number_of(pr.get("number") or ev.payload.get("number"))
        head, base = text_at(pr, "head", "ref"), text_at(pr, "base", "ref")
        labels = names_of(pr.get("labels"), "name")
        draft = pr.get("draft") is True
        merged = ev.event_type == "pull_request.merged"
        what = {"closed": "closed", "merged": "merged", "reopened": "reopened", "opened": "opened",
                "ready_for_review": "ready for review"}[ev.event_type.partition(".")[2]]
        if ev.event_type == "pull_request.opened" and draft:
            noun = "Draft PR"
        else:
            noun = "PR"
        if merged:
            body = f"Merged {code_span(head)} into {code_span(base)}." if head and base else ""
        elif ev.event_type == "pull_request.closed":
            body = "Closed without merging."
        elif ev.event_type in ("pull_request.opened", "pull_request.ready_for_review"):
            body = quote_text(text_at(pr, "body"))
        else:
            body = ""
        changes = ""
        if all(isinstance(pr.get(k), int) for k in ("additions", "deletions", "changed_files")):
            changes = f"+{pr['additions']} −{pr['deletions']} in {pr['changed_files']} files"
        author = text_at(pr, "user", "login")
        return build_message(
            title=f"{noun} #{number} {what} in {ev.repository}: {text_at(pr, 'title')}",
            body=body,
            priority="low",
            fields={"Author": author, "Branch": f"{head} → {base}" if head and base else head or base,
                    "Labels": ", ".join(labels), "Changes": changes,
                    "Merged by": text_at(pr, "merged_by", "login") or ev.sender if merged else "",
                    "By": ev.sender if not merged and ev.action != "opened" and ev.sender != author else ""},
            links=[(f"PR #{number}", text_at(pr, "html_url"))],
            labels=ev.labels(branch=base, head_branch=head, labels=",".join(labels), draft="true" if draft else "false"),
            thread_key=ev.thread(number),
            resolves=ev.event_type in ("pull_request.merged", "pull_request.closed"),
        )

    def _review(self, ev: Event) -> Message:
        pr = obj_at(ev.payload, "pull_request")
        review = obj_at(ev.payload, "review")
        number = number_of(pr.get("number"))
        reviewer = text_at(review, "user", "login") or ev.sender or "someone"
        state = text_at(review, "state").lower()
        where = f"PR #{number} in {ev.repository}: {text_at(pr, 'title')}"
        title = {
            "approved": f"{reviewer} approved {where}",
            "changes_requested": f"{reviewer} requested changes on {where}",
        }.get(state, f"{reviewer} reviewed {where}")
        return build_message(
            title=title,
            body=quote_text(text_at(review, "body")),
            priority="low" if state in ("approved", "changes_requested") else "info",
            fields={"Reviewer": reviewer, "Author": text_at(pr, "user", "login"), "Review": state.replace("_", " ")},
            links=[("Review", text_at(review, "html_url")), (f"PR #{number}", text_at(pr, "html_url"))],
            labels=ev.labels(review=state, branch=text_at(pr, "base", "ref")),
            thread_key=ev.thread(number),
        )

    def _push(self, ev: Event) -> Message | Skip:
        p = ev.payload
        ref = text_at(p, "ref")
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
        who = ev.sender or text_at(p, "pusher", "name") or "someone"
        n = len(commits)
        verb = "force-pushed" if forced else "pushed"
        title = f"{who} {verb} {n} commit{'s' if n != 1 else ''} to {target} in {ev.repository}" if commits \
            else f"{who} force-pushed {target} in {ev.repository}"
        lines = []
        for c in commits[:COMMITS_MAX]:
            sha = text_at(c, "id")[:7]
            first = text_at(c, "message").strip().splitlines()[0] if text_at(c, "message").strip() else ""
            author = text_at(c, "author", "username") or text_at(c, "author", "name")
            url = text_at(c, "url")
            ref_md = f"[{code_span(sha)}]({url})" if sha and URL.match(url) else code_span(sha) if sha else "•"
            lines.append(f"- {ref_md} {md_escape(cut(first, 200))}" + (f" — {md_escape(author)}" if author else ""))
        compare = text_at(p, "compare")
        if n > COMMITS_MAX:
            more = n - COMMITS_MAX
            more_text = f"{more} more commit{'s' if more != 1 else ''}"
            lines.append(f"- …and [{more_text}]({compare})" if URL.match(compare) else f"- …and {more_text}")
        return build_message(
            title=title,
            body="\n".join(lines),
            priority="low" if forced else "info",
            fields={"Branch" if branch else "Tag" if tag else "Ref": target, "Commits": str(n) if commits else "",
                    "Head": text_at(p, "after")[:7]},
            links=[("Changes", compare)],
            labels=ev.labels(branch=branch, tag=tag, ref=ref, forced="true" if forced else "false"),
        )

    def _release(self, ev: Event) -> Message:
        release = obj_at(ev.payload, "release")
        tag = text_at(release, "tag_name")
        name = text_at(release, "name").strip()
        pre = release.get("prerelease") is True
        shown = tag or name or "(untitled)"
        title = f"{'Pre-release' if pre else 'Release'} {shown} published in {ev.repository}"
        if name and name != shown:
            title += f": {name}"
        return build_message(
            title=title,
            body=quote_text(text_at(release, "body")),
            priority="low",
            fields={"Tag": tag, "Author": text_at(release, "author", "login"), "Target": text_at(release, "target_commitish"),
                    "Pre-release": "yes" if pre else ""},
            links=[("Release", text_at(release, "html_url"))],
            labels=ev.labels(tag=tag, prerelease="true" if pre else "false"),
        )

    def _workflow_run(self, ev: Event) -> Message | Skip:
        run = obj_at(ev.payload, "workflow_run")
        conclusion = text_at(run, "conclusion")
        if conclusion not in _RUN_NEWS:
            return Skip(f"conclusion {conclusion or 'none'}: not news")
        happened, priority = _RUN_NEWS[conclusion]
        workflow = text_at(run, "name") or text_at(ev.payload, "workflow", "name") or text_at(run, "path") or "workflow"
        branch = text_at(run, "head_branch")
        sha = text_at(run, "head_sha")[:7]
        run_number = number_of(run.get("run_number"))
        attempt = run.get("run_attempt")
        trigger = text_at(run, "event")
        actor = text_at(run, "triggering_actor", "login") or text_at(run, "actor", "login") or ev.sender
        url = text_at(run, "html_url")
        subject = text_at(run, "display_title") or text_at(run, "head_commit", "message").strip().split("\n")[0]
        run_ref = f"Run #{run_number}" if run_number else "The run"
        if run_number and URL.match(url):
            run_ref = f"Run [#{run_number}]({url})"
        body = f"{run_ref} {happened}" + (f" on {code_span(sha)}" if sha else "") + "."
        if subject:
            body += f"\n\n{md_escape(cut(subject, 300))}"
        on = f" on {branch}" if branch else ""
        return build_message(
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
    if name == "pull_request" and action == "closed" and obj_at(payload, "pull_request").get("merged") is True:
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
