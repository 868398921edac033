"""What the Jira stand-in (:mod:`peers.jira_api`) answers for ticket integrations, kept apart from the
sync side: ``POST|GET /rest/api/3/issue/{id}/comment`` (the body must be ADF; 201 with the comment).
Comments are kept per issue id in ``cloud.comments``."""

from __future__ import annotations

import itertools
from typing import Any

from aiohttp import web
from peers.jira_data import NOT_ADF, is_adf, text_of

_ids = itertools.count(50000)


def ticket_route(cloud: Any, issue: Any, parts: list[str], method: str, body: Any) -> Any:
    """The answer for an issue sub-resource handled here, else None."""
    if parts[1:] != ["comment"]:
        return None
    comments: dict[str, list[dict[str, Any]]] = cloud.__dict__.setdefault("comments", {})
    if method == "GET":
        mine = comments.get(issue.id, [])
        return {"startAt": 0, "maxResults": 5000, "total": len(mine), "comments": mine}
    if method == "POST":
        from peers.jira_api import JiraApiError

        adf = (body or {}).get("body") if isinstance(body, dict) else None
        if not is_adf(adf):
            raise JiraApiError(400, [], {"comment": NOT_ADF})
        comment = {"id": str(next(_ids)), "body": adf, "text": text_of(adf), "author": cloud._user(cloud.account_id),
                   "created": cloud._time(cloud.clock())}
        comments.setdefault(issue.id, []).append(comment)
        return web.json_response(comment, status=201)
    return None


def comment_texts(cloud: Any, issue_id: str) -> list[str]:
    """The plain text of an issue's comments, oldest first."""
    return [c["text"] for c in cloud.__dict__.get("comments", {}).get(issue_id, [])]
