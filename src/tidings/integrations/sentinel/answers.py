"""Reading the Logs Ingestion API's answers, as Microsoft documents them: errors are an
``Azure.Core.Foundations.ErrorResponse``, ``{"error": {"code": ..., "message": ...}}``, with the code
again in the ``x-ms-error-code`` header (the API's REST specification, ingestion 2023-01-01); the
"Troubleshooting" of "Sample code to send data to Azure Monitor using Logs ingestion API" names 403
(no role on the DCR; a new assignment takes up to 30 minutes), 413 (over 1 MB a call), 429 (over the
DCR's limits: retry after ``Retry-After``) and 503 (also a role not yet propagated); the SDKs'
troubleshooting guides quote the 403 ``OperationFailed``, Azure's own SDK tests the 413
``ContentLengthLimitExceeded`` ("Maximum allowed content length: 1048576 bytes (1 MB).").

======  ==============================================  ===========================================
status  Azure's meaning                                 here
======  ==============================================  ===========================================
204     accepted                                        delivered (remote id: ``x-ms-request-id``)
400     a stream the DCR lacks (``InvalidStream``), an  the integration's settings: permanent,
        api-version it lacks (``InvalidApiVersion``)    disabled
400     anything else: the records                      permanent (this batch only)
401     token missing, expired, for another audience    a new token, once; then permanent, disabled
403     ``InvalidAuthenticationToken*``                 as 401
403     ``OperationFailed``: no "Monitoring Metrics     permanent, disabled, with that hint
        Publisher" role on the DCR
404     no such DCR behind this endpoint                permanent, disabled
413     over 1 MB (``ContentLengthLimitExceeded``)      split the batch; one record: permanent
429     over the DCR's limits                           retry (``Retry-After``)
503     unavailable, or a role not yet propagated       retry (``Retry-After``), with that hint
5xx     Azure's trouble                                 retry (``Retry-After``)
======  ==============================================  ===========================================
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
SETTINGS_400 = {
    "InvalidStream": "check stream: the DCR's streamDeclarations have no such stream",
    "InvalidApiVersion": "check api_version (2023-01-01)",
}
"""400 codes that name a setting: every request fails the same way until a person changes it."""


class Next(enum.Enum):
    """What the send does after an answer."""

    DONE = "done"
    NEW_TOKEN = "new token"
    SPLIT = "split"


def error_of(raw: bytes, headers: Mapping[str, str]) -> tuple[str, str]:
    """Azure's error code and message: the body's ``error``, else the ``x-ms-error-code`` header."""
    try:
        answer = orjson.loads(raw)
    except orjson.JSONDecodeError:
        answer = None
    error = answer.get("error") if isinstance(answer, dict) else None
    code = message = ""
    if isinstance(error, dict):
        code, message = str(error.get("code") or ""), str(error.get("message") or "")
    return code or headers.get("x-ms-error-code", ""), message


def reason(raw: bytes, headers: Mapping[str, str], token: str = "") -> str:
    """Azure's ``code: message`` (or the start of the body), masked, on one line."""
    code, message = error_of(raw, headers)
    text = raw
    if code or message:
        text = (f"{code}: {message}" if code and message else code or message).encode()
    if token:
        text = text.replace(token.encode(), b"***")
    return snippet(text, REASON_MAX)


def classify(status: int, headers: Mapping[str, str], raw: bytes, records: int, token: str = "") -> tuple[Outcome, Next]:
    """The outcome of one ingestion request carrying ``records`` records, and what to do next."""
    if 200 <= status < 300:
        return Outcome.delivered(headers.get("x-ms-request-id") or None), Next.DONE
    code, _ = error_of(raw, headers)
    why = reason(raw, headers, token)
    detail = f"Azure Monitor: HTTP {status}" + (f": {why}" if why else "")
    if status == 401 or (status == 403 and code.startswith("InvalidAuthenticationToken")):
        return Outcome.permanent(f"{detail}; a new token was refused too: check the tenant, the scope and the"
                                 " endpoint's cloud", disable=True), Next.NEW_TOKEN
    if status == 403:
        return Outcome.permanent(f"{detail}; {ROLE_HINT}", disable=True), Next.DONE
    if status == 404:
        return Outcome.permanent(f"{detail}; check dcr_immutable_id, and that endpoint is the DCR's own or a DCE"
                                 " in the DCR's region", disable=True), Next.DONE
    if status == 413:
        if records > 1:
            return Outcome.retry(f"{detail}; the batch is split"), Next.SPLIT
        return Outcome.permanent(f"{detail}; this one record is larger than Azure takes in a request"), Next.DONE
    if status == 400 and code in SETTINGS_400:
        return Outcome.permanent(f"{detail}; {SETTINGS_400[code]}", disable=True), Next.DONE
    if status == 503:
        return Outcome.retry(f"{detail} (right after a role assignment this is the role not yet applied: it can"
                             " take up to 30 minutes)", parse_retry_after(headers.get("retry-after"))), Next.DONE
    if status == 429 or status >= 500:
        return Outcome.retry(detail, parse_retry_after(headers.get("retry-after"))), Next.DONE
    if 400 <= status < 500 and status not in (408, 425):
        return Outcome.permanent(detail + ("; check the records against the DCR's streamDeclarations"
                                           if status == 400 else "")), Next.DONE
    return classify_status(status, headers, why), Next.DONE
