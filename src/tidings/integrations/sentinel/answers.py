"""Reading the Logs Ingestion API's answers, as Azure Monitor documents them ("Logs Ingestion API
in Azure Monitor", the SDKs' troubleshooting guides). Errors come as ``{"error": {"code": ...,
"message": ...}}``.

======  =================================================  ==========================================
status  Azure's meaning                                    here
======  =================================================  ==========================================
204     accepted                                           delivered (remote id: ``x-ms-request-id``)
400     bad data, unknown stream, invalid request          permanent, with Azure's code and message
401     token missing, expired or for another audience     a new token, once; then permanent, disabled
403     the app lacks "Monitoring Metrics Publisher" on    permanent, disabled, with that hint
        the DCR (``OperationFailed``)
404     no such DCR (or not behind this endpoint)          permanent, disabled
413     the request is larger than 1 MB                    split the batch; one record: permanent
429     throttled                                          retry (``Retry-After``)
5xx     Azure's trouble                                    retry (``Retry-After``)
======  =================================================  ==========================================
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

import orjson

from ..base import Outcome
from ..http import classify_status, parse_retry_after, snippet

REASON_MAX = 300
ROLE_HINT = ('the application lacks the "Monitoring Metrics Publisher" role on the data collection rule'
             " (assign it on the DCR; it can take up to 30 minutes to apply)")


class Next(enum.Enum):
    """What the send does after an answer."""

    DONE = "done"
    NEW_TOKEN = "new token"
    SPLIT = "split"


def reason(raw: bytes, token: str = "") -> str:
    """Azure's ``code: message`` (or the start of the body), masked, on one line."""
    text = raw
    try:
        answer = orjson.loads(raw)
    except orjson.JSONDecodeError:
        answer = None
    error = answer.get("error") if isinstance(answer, dict) else None
    if isinstance(error, dict):
        code, message = error.get("code"), error.get("message")
        text = (f"{code}: {message}" if code and message else str(code or message or "")).encode()
    if token:
        text = text.replace(token.encode(), b"***")
    return snippet(text, REASON_MAX)


def classify(status: int, headers: Mapping[str, str], raw: bytes, records: int, token: str = "") -> tuple[Outcome, Next]:
    """The outcome of one ingestion request carrying ``records`` records, and what to do next."""
    if 200 <= status < 300:
        return Outcome.delivered(headers.get("x-ms-request-id") or None), Next.DONE
    why = reason(raw, token)
    detail = f"Azure Monitor: HTTP {status}" + (f": {why}" if why else "")
    if status == 401:
        return Outcome.permanent(f"{detail}; a new token was refused too: check the tenant, the scope and the"
                                 " endpoint's cloud", disable=True), Next.NEW_TOKEN
    if status == 403:
        return Outcome.permanent(f"{detail}; {ROLE_HINT}", disable=True), Next.DONE
    if status == 404:
        return Outcome.permanent(f"{detail}; check endpoint and dcr_immutable_id", disable=True), Next.DONE
    if status == 413:
        if records > 1:
            return Outcome.retry(f"{detail}; the batch is split"), Next.SPLIT
        return Outcome.permanent(f"{detail}; this one record is larger than Azure takes in a request"), Next.DONE
    if status == 429 or status >= 500:
        return Outcome.retry(detail, parse_retry_after(headers.get("retry-after"))), Next.DONE
    if 400 <= status < 500 and status not in (408, 425):
        return Outcome.permanent(detail + ("; check stream and the DCR's streamDeclarations" if status == 400 else "")), Next.DONE
    return classify_status(status, headers, why), Next.DONE
