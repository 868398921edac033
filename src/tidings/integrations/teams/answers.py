"""How Teams' answers read: a workflow's status code, or a connector's 200 that names a failure."""

from __future__ import annotations

import re
from typing import Any

from ..base import Outcome
from ..http import classify_status

_ERROR_IN_TEXT = re.compile(r"HTTP error (\d{3})")


def connector_answer(text: str) -> Outcome | None:
    """A connector's 200 answer: "1" when posted; a text naming the failure otherwise."""
    stripped = text.strip()
    if stripped in ("", "1"):
        return None
    lowered = stripped.lower()
    if m := _ERROR_IN_TEXT.search(stripped):
        return answer(int(m.group(1)), {}, f"(connector answered 200) {stripped}")
    if "429" in lowered or "throttl" in lowered:
        return Outcome.retry(f"throttled by Teams (connector answered 200): {stripped}")
    if "fail" in lowered or "error" in lowered:
        return Outcome.retry(f"the connector answered 200 but reported a failure: {stripped}")
    return None


def answer(status: int, headers: Any, snippet: str) -> Outcome:
    """A status other than 2xx: a missing workflow and a card too large explained, the rest read as
    every HTTP peer's (:func:`~tidings.integrations.http.classify_status`)."""
    if status == 404:
        return Outcome.permanent(
            "HTTP 404: no such workflow or connector (deleted or the URL is wrong)" + (f": {snippet}" if snippet else "")
        )
    if status == 413:
        return Outcome.permanent("HTTP 413: Teams refused the card as too large" + (f": {snippet}" if snippet else ""))
    return classify_status(status, headers, snippet)
