"""What the Jira stand-in (:mod:`peers.jira_api`) knows: statuses and their categories, the two
workflows, priorities, the ADF it accepts, and the shapes of a webhook's changelog items."""

from __future__ import annotations

import datetime
from typing import Any

API = "/rest/api/3"
STATUSES: dict[str, tuple[str, str]] = {
    # name -> (id, category key)
    "To Do": ("10000", "new"), "In Progress": ("3", "indeterminate"), "Done": ("10001", "done"),
    "Backlog": ("10002", "new"), "Selected for Development": ("10003", "new"), "In Review": ("10004", "indeterminate"),
}
CATEGORIES = {"new": ("2", "To Do", "blue-gray"), "indeterminate": ("4", "In Progress", "yellow"),
              "done": ("3", "Done", "green")}
WORKFLOWS: dict[str, dict[str, Any]] = {
    "simple": {"initial": "To Do", "transitions": [
        # (id, name, from (None: any other status), to)
        ("11", "To Do", None, "To Do"), ("21", "In Progress", None, "In Progress"), ("31", "Done", None, "Done"),
    ]},
    "review": {"initial": "Backlog", "transitions": [
        ("101", "Select for development", "Backlog", "Selected for Development"),
        ("102", "Start review", "Backlog", "In Review"),
        ("111", "Start review", "Selected for Development", "In Review"),
        ("121", "Back to backlog", "Selected for Development", "Backlog"),
        ("131", "Approve", "In Review", "Done"),
        ("141", "Request changes", "In Review", "Selected for Development"),
        ("151", "Reopen", "Done", "Backlog"),
    ]},
}
PRIORITIES = [("1", "Highest"), ("2", "High"), ("3", "Medium"), ("4", "Low"), ("5", "Lowest")]
SEARCH_KEYS = {"jql", "fields", "maxResults", "nextPageToken", "properties", "expand", "fieldsByKeys", "failFast",
               "reconcileIssues"}
SETTABLE = {"summary", "description", "priority", "assignee", "labels", "duedate", "project", "issuetype", "reporter"}
ADF_BLOCKS = {"paragraph", "heading", "bulletList", "orderedList", "listItem", "codeBlock", "blockquote", "rule",
              "panel", "table", "tableRow", "tableHeader", "tableCell", "mediaSingle", "mediaGroup", "media",
              "expand", "nestedExpand", "taskList", "taskItem", "decisionList", "decisionItem", "blockCard"}
ADF_INLINE = {"text", "hardBreak", "mention", "emoji", "inlineCard", "date", "status", "mediaInline"}
ADF_MARKS = {"strong", "em", "code", "strike", "link", "underline", "subsup", "textColor", "backgroundColor"}
NOT_ADF = "Operation value must be an Atlassian Document"
REMOVED = ("The requested API has been removed. Please migrate to the /rest/api/3/search/jql API. A full migration "
           "guideline is available at https://developer.atlassian.com/changelog/#CHANGE-2046")


def is_date(value: Any) -> bool:
    try:
        datetime.date.fromisoformat(value)
    except (TypeError, ValueError):
        return False
    return isinstance(value, str) and len(value) == 10


def is_adf(doc: Any) -> bool:
    """A document Jira accepts: ``{"type": "doc", "version": 1, "content": [...]}`` of known nodes,
    text nodes with non-empty text and known marks."""
    if not isinstance(doc, dict) or doc.get("type") != "doc" or doc.get("version") != 1:
        return False
    return isinstance(doc.get("content"), list) and all(_is_node(n, 0) for n in doc["content"])


def _is_node(node: Any, depth: int) -> bool:
    if not isinstance(node, dict) or depth > 32:
        return False
    kind = node.get("type")
    if kind == "text":
        marks = node.get("marks", [])
        return (isinstance(node.get("text"), str) and node["text"] != "" and isinstance(marks, list)
                and all(isinstance(m, dict) and m.get("type") in ADF_MARKS for m in marks))
    if kind not in ADF_BLOCKS | ADF_INLINE:
        return False
    content = node.get("content", [])
    return isinstance(content, list) and all(_is_node(n, depth + 1) for n in content)


def text_of(doc: Any) -> str | None:
    """The description as webhooks carry it (text, not ADF)."""
    if doc is None:
        return None
    parts: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "text":
                parts.append(str(node.get("text") or ""))
            for child in node.get("content") or []:
                walk(child)
            if node.get("type") in ("paragraph", "heading"):
                parts.append("\n")

    walk(doc)
    return "".join(parts).strip()


def change_item(name: str, old: Any, new: Any, users: dict[str, str]) -> dict[str, Any]:
    def text(value: Any) -> str | None:
        if value is None:
            return None
        if name == "labels":
            return " ".join(value)
        if name == "assignee":
            return users.get(value, value)
        if name == "description":
            return text_of(value)
        return str(value)

    ids = name == "assignee"
    return {"field": name, "fieldtype": "jira", "fieldId": name, "from": old if ids else None,
            "fromString": text(old), "to": new if ids else None, "toString": text(new)}
