"""GitHub's security events as alerts: ``code_scanning_alert``, ``dependabot_alert``,
``secret_scanning_alert``, ``repository_vulnerability_alert`` and ``security_advisory``.

Every alert gets its priority from its severity, its identifiers (CVE, GHSA, CVSS, package,
manifest, rule, tool, location) as fields and labels, a link to the alert, and one thread per
alert (``github:<owner/repo>:<kind>:<number>``; ``github:advisory:<GHSA>`` for an advisory), so
that fixing, dismissing or resolving it (``resolves: true``) and reopening it (firing again) land
in the same thread. A secret scanning alert's ``secret`` (the leaked value, sent to some
webhooks) is never read.
"""

from __future__ import annotations

import re
from typing import Any

from ...message import Message
from .common import Event, build_message, cut, md_escape, number_of, obj_at, quote_text, text_at

SEVERITY = {"critical": "critical", "high": "high", "medium": "medium", "moderate": "medium", "low": "low"}
"""A severity word (advisories, Dependabot, code scanning's ``security_severity_level``) -> priority."""
RULE_SEVERITY = {"error": "high", "warning": "medium", "note": "low", "none": "info"}
"""A code scanning rule's own ``severity`` (non-security queries) -> priority."""
SECRET_PRIORITY = "high"
"""Secret scanning alerts have no severity: a leaked credential is urgent."""
UNKNOWN_PRIORITY = "medium"

# event -> action -> (what the title says happened, whether it ends the alert)
ACTIONS: dict[str, dict[str, tuple[str, bool]]] = {
    "code_scanning_alert": {
        "created": ("opened", False), "reopened": ("reopened", False), "reopened_by_user": ("reopened", False),
        "fixed": ("fixed", True), "closed_by_user": ("dismissed", True),
    },
    "dependabot_alert": {
        "created": ("opened", False), "reopened": ("reopened", False), "auto_reopened": ("reopened automatically", False),
        "reintroduced": ("reintroduced", False),
        "fixed": ("fixed", True), "dismissed": ("dismissed", True), "auto_dismissed": ("dismissed automatically", True),
    },
    "secret_scanning_alert": {
        "created": ("opened", False), "reopened": ("reopened", False), "publicly_leaked": ("leaked publicly", False),
        "resolved": ("resolved", True), "revoked": ("revoked", True),
    },
    "repository_vulnerability_alert": {
        "create": ("opened", False), "reopen": ("reopened", False),
        "dismiss": ("dismissed", True), "resolve": ("resolved", True),
    },
    "security_advisory": {
        "published": ("published", False), "updated": ("updated", False), "withdrawn": ("withdrawn", True),
    },
}
HANDLERS = {f"{event}.{action}": f"_{event}" for event, actions in ACTIONS.items() for action in actions}
IGNORED = frozenset({
    # The alert's state does not change: its thread already says what matters.
    "code_scanning_alert.appeared_in_branch", "code_scanning_alert.updated_assignment",
    "dependabot_alert.assignees_changed",
    "secret_scanning_alert.validated", "secret_scanning_alert.assigned", "secret_scanning_alert.unassigned",
    "secret_scanning_alert_location", "secret_scanning_scan",
    "security_advisory.performed",
})
_PAGES = frozenset({"dependabot", "code-scanning", "secret-scanning"})
"""Thread slugs that are also the path of the alert's page on GitHub (``<repo>/security/<slug>/<n>``)."""
_GHSA = re.compile(r"^GHSA(-[23456789cfghjmpqrvwx]{4}){3}$")


def dependabot_alert(ev: Event) -> Message:
    alert = obj_at(ev.payload, "alert")
    advisory = obj_at(alert, "security_advisory")
    vulnerability = obj_at(alert, "security_vulnerability")
    package = text_at(alert, "dependency", "package", "name") or text_at(vulnerability, "package", "name")
    ecosystem = text_at(alert, "dependency", "package", "ecosystem") or text_at(vulnerability, "package", "ecosystem")
    severity = text_at(vulnerability, "severity") or text_at(advisory, "severity")
    ghsa, cve = _identifier(advisory, "GHSA"), _identifier(advisory, "CVE")
    dismissed = ev.action in ("dismissed", "auto_dismissed")
    fields = {
        "Severity": severity, "Package": package, "Ecosystem": ecosystem,
        "Manifest": text_at(alert, "dependency", "manifest_path"), "Scope": text_at(alert, "dependency", "scope"),
        "Vulnerable versions": text_at(vulnerability, "vulnerable_version_range"),
        "Patched version": text_at(vulnerability, "first_patched_version", "identifier"),
        "CVE": cve, "GHSA": ghsa, "CVSS": _cvss(advisory),
        "Dismissed by": text_at(alert, "dismissed_by", "login") if dismissed else "",
        "Reason": text_at(alert, "dismissed_reason").replace("_", " ") if dismissed else "",
    }
    body = quote_text(text_at(alert, "dismissed_comment")) if dismissed else quote_text(text_at(advisory, "description"))
    return _alert(
        ev, alert, kind="Dependabot alert", slug="dependabot",
        subject=text_at(advisory, "summary") or f"vulnerable {package or 'dependency'}",
        priority=SEVERITY.get(severity.lower(), UNKNOWN_PRIORITY), fields=fields, body=body,
        links=[("Advisory", _advisory_url(ghsa))],
        labels={"severity": severity, "package": package, "ecosystem": ecosystem, "ghsa": ghsa, "cve": cve},
    )


def code_scanning_alert(ev: Event) -> Message:
    alert = obj_at(ev.payload, "alert")
    rule, tool = obj_at(alert, "rule"), obj_at(alert, "tool")
    instances = alert.get("instances")
    instance = obj_at(alert, "most_recent_instance") or (
        instances[0] if isinstance(instances, list) and instances and isinstance(instances[0], dict) else {})
    level, rule_severity = text_at(rule, "security_severity_level"), text_at(rule, "severity")
    priority = SEVERITY.get(level.lower()) or RULE_SEVERITY.get(rule_severity.lower(), UNKNOWN_PRIORITY)
    rule_id = text_at(rule, "id")
    tool_name = text_at(tool, "name")
    ref = text_at(ev.payload, "ref") or text_at(instance, "ref")
    dismissed = ev.action == "closed_by_user"
    fields = {
        "Severity": level or rule_severity, "Rule": rule_id,
        "Tool": f"{tool_name} {text_at(tool, 'version')}".strip(), "Location": _location(obj_at(instance, "location")),
        "Ref": ref.removeprefix("refs/heads/"), "Commit": (text_at(ev.payload, "commit_oid") or text_at(instance, "commit_sha"))[:7],
        "Dismissed by": text_at(alert, "dismissed_by", "login") if dismissed else "",
        "Reason": text_at(alert, "dismissed_reason") if dismissed else "",
    }
    if dismissed:
        body = quote_text(text_at(alert, "dismissed_comment"))
    else:
        body = md_escape(cut(text_at(instance, "message", "text") or text_at(rule, "full_description"), 1000))
    return _alert(
        ev, alert, kind="Code scanning alert", slug="code-scanning",
        subject=text_at(rule, "description") or text_at(rule, "name") or rule_id or "alert",
        priority=priority, fields=fields, body=body, links=[],
        labels={"severity": level or rule_severity, "rule": rule_id, "tool": tool_name},
    )


def secret_scanning_alert(ev: Event) -> Message:
    alert = obj_at(ev.payload, "alert")
    # Only these fields are read: never "secret", the leaked value itself.
    secret_type = text_at(alert, "secret_type")
    shown_type = text_at(alert, "secret_type_display_name") or secret_type or "secret"
    resolved = ev.action in ("resolved", "revoked")
    bypassed = alert.get("push_protection_bypassed") is True
    fields = {
        "Secret type": shown_type, "Validity": text_at(alert, "validity"),
        "Push protection": f"bypassed by {text_at(alert, 'push_protection_bypassed_by', 'login') or 'someone'}"
        if bypassed else "",
        "Publicly leaked": "yes" if ev.action == "publicly_leaked" or alert.get("publicly_leaked") is True else "",
        "Resolution": text_at(alert, "resolution").replace("_", " ") if resolved else "",
        "Resolved by": text_at(alert, "resolved_by", "login") if resolved else "",
    }
    body = quote_text(text_at(alert, "resolution_comment")) if resolved else \
        "The secret itself is not shown here: open the alert on GitHub to see where it was found."
    return _alert(
        ev, alert, kind="Secret scanning alert", slug="secret-scanning", subject=shown_type,
        priority=SECRET_PRIORITY, fields=fields, body=body, links=[],
        labels={"secret_type": secret_type},
    )


def repository_vulnerability_alert(ev: Event) -> Message:
    """The older form of a Dependabot alert (``create``/``dismiss``/``resolve``)."""
    alert = obj_at(ev.payload, "alert")
    package = text_at(alert, "affected_package_name")
    severity = text_at(alert, "severity")
    ghsa = text_at(alert, "ghsa_id")
    external = text_at(alert, "external_identifier")
    cve = external if external.upper().startswith("CVE-") else ""
    dismissed = ev.action == "dismiss"
    affected = text_at(alert, "affected_range")
    fields = {
        "Severity": severity, "Package": package, "Vulnerable versions": affected,
        "Patched version": text_at(alert, "fixed_in"), "CVE": cve, "GHSA": ghsa,
        "Dismissed by": text_at(alert, "dismisser", "login") if dismissed else "",
        "Reason": text_at(alert, "dismiss_reason") if dismissed else "",
    }
    repo_url = text_at(ev.payload, "repository", "html_url")
    return _alert(
        ev, alert, kind="Vulnerability alert", slug="vulnerability",
        subject=f"{package or 'a dependency'} {affected}".strip(),
        priority=SEVERITY.get(severity.lower(), UNKNOWN_PRIORITY), fields=fields, body="",
        links=[("Reference", text_at(alert, "external_reference")), ("Advisory", _advisory_url(ghsa)),
               ("Dependabot alerts", f"{repo_url}/security/dependabot" if repo_url else "")],
        labels={"severity": severity, "package": package, "ghsa": ghsa, "cve": cve},
        number=alert.get("number") if isinstance(alert.get("number"), int) else alert.get("id"),
    )


def security_advisory(ev: Event) -> Message:
    """An advisory published in GitHub's database (sent to GitHub Apps; no repository)."""
    advisory = obj_at(ev.payload, "security_advisory")
    ghsa, cve = _identifier(advisory, "GHSA"), _identifier(advisory, "CVE")
    severity = text_at(advisory, "severity")
    listed = advisory.get("vulnerabilities")
    vulns = [v for v in listed if isinstance(v, dict)] if isinstance(listed, list) else []
    verb, resolves = ACTIONS[ev.name][ev.action]

    def joined(*keys: str) -> str:
        return ", ".join(dict.fromkeys(t for t in (text_at(v, *keys) for v in vulns) if t))

    fields = {
        "Severity": severity, "Package": joined("package", "name"), "Ecosystem": joined("package", "ecosystem"),
        "Vulnerable versions": "; ".join(t for t in (text_at(v, "vulnerable_version_range") for v in vulns) if t),
        "Patched version": joined("first_patched_version", "identifier"),
        "CVE": cve, "GHSA": ghsa, "CVSS": _cvss(advisory),
    }
    return build_message(
        title=f"Security advisory {ghsa or ''} {verb}: {text_at(advisory, 'summary') or 'no summary'}",
        body="" if resolves else quote_text(text_at(advisory, "description")),
        priority=SEVERITY.get(severity.lower(), UNKNOWN_PRIORITY),
        fields=fields,
        links=[("Advisory", text_at(advisory, "html_url") or _advisory_url(ghsa))],
        labels=ev.labels(severity=severity, package=fields["Package"], ecosystem=fields["Ecosystem"], ghsa=ghsa, cve=cve),
        thread_key=f"github:advisory:{ghsa}" if ghsa else None,
        resolves=resolves,
    )


# -- shared ------------------------------------------------------------------------------------------
def _alert(
    ev: Event,
    alert: dict[str, Any],
    *,
    kind: str,
    slug: str,
    subject: str,
    priority: str,
    fields: dict[str, str],
    body: str,
    links: list[tuple[str, str]],
    labels: dict[str, str],
    number: Any = None,
) -> Message:
    """A repository's alert: ``<kind> #<n> <what happened> in <repo>: <subject>``, in the alert's thread."""
    verb, resolves = ACTIONS[ev.name][ev.action]
    n = number_of(alert.get("number") if number is None else number)
    by = ev.sender if ev.action in ("reopened", "reopened_by_user", "reopen") else ""
    url = text_at(alert, "html_url")
    repo_url = text_at(ev.payload, "repository", "html_url")
    if not url and repo_url and n != "?" and slug in _PAGES:  # older payloads: the page GitHub keeps it on
        url = f"{repo_url}/security/{slug}/{n}"
    return build_message(
        title=f"{kind} #{n} {verb} in {ev.repository or 'a repository'}: {subject}",
        body=body,
        priority=priority,
        fields={**fields, "By": by},
        links=[("Alert", url), *links],
        labels=ev.labels(alert=slug, **labels),
        thread_key=f"github:{ev.repository}:{slug}:{n}" if ev.repository and n != "?" else None,
        resolves=resolves,
    )


def _identifier(advisory: dict[str, Any], kind: str) -> str:
    """The advisory's GHSA or CVE id: its own field, else the first of that type in ``identifiers``."""
    own = text_at(advisory, f"{kind.lower()}_id")
    if own:
        return own
    listed = advisory.get("identifiers")
    for item in listed if isinstance(listed, list) else []:
        if text_at(item, "type").upper() == kind:
            return text_at(item, "value")
    return ""


def _cvss(advisory: dict[str, Any]) -> str:
    """``9.8 (CVSS:3.1/AV:N/...)``: the advisory's score, else the newest of ``cvss_severities``."""
    for where in (("cvss",), ("cvss_severities", "cvss_v4"), ("cvss_severities", "cvss_v3")):
        found = obj_at(advisory, *where)
        score = found.get("score")
        if isinstance(score, (int, float)) and not isinstance(score, bool) and score > 0:
            vector = text_at(found, "vector_string")
            return f"{score:g}" + (f" ({vector})" if vector else "")
    return ""


def _advisory_url(ghsa: str) -> str:
    return f"https://github.com/advisories/{ghsa}" if _GHSA.match(ghsa) else ""


def _location(location: dict[str, Any]) -> str:
    path = text_at(location, "path")
    start, end = location.get("start_line"), location.get("end_line")
    if not path or not isinstance(start, int):
        return path
    return f"{path}:{start}" + (f"-{end}" if isinstance(end, int) and end > start else "")

