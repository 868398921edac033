"""Reading Splunk HTTP Event Collector answers into outcomes, one per event of a request.

HEC answers ``{"text": ..., "code": N}`` (plus ``ackId`` with indexer acknowledgement on, and
``invalid-event-number`` when one event of a batch is bad). The codes, as Splunk documents them
("Troubleshoot HTTP Event Collector"):

====  ======  =========================================  =================================
code  status  text                                       here
====  ======  =========================================  =================================
0     200     Success                                    delivered (or: wait for the ackId)
1     403     Token disabled                             permanent, integration disabled
2     401     Token is required                          permanent, integration disabled
3     401     Invalid authorization                      permanent, integration disabled
4     403     Invalid token                              permanent, integration disabled
5     400     No data                                    permanent
6     400     Invalid data format                        split at ``invalid-event-number``
7     400     Incorrect index                            split at ``invalid-event-number``
8     500     Internal server error                      retry
9     503     Server is busy                             retry (``Retry-After``)
10    400     Data channel is missing                    permanent
11    400     Invalid data channel                       permanent
12    400     Event field is required                    split at ``invalid-event-number``
13    400     Event field cannot be blank                split at ``invalid-event-number``
14    400     ACK is disabled                            permanent
15    400     Error in handling indexed fields           split at ``invalid-event-number``
17    200     HEC is healthy                             (health check)
18-20 503     HEC is unhealthy (queues full, no ack)     retry
====  ======  =========================================  =================================

"Split": HEC reads the events of a request in order and stops at the bad one; those before it
were accepted, the bad one never will be, those after it were not read and are sent again.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from ..base import Outcome
from ..http import classify_status, parse_retry_after, snippet

AUTH_CODES = frozenset({1, 2, 3, 4})
SPLIT_CODES = frozenset({6, 7, 12, 13, 15})
ACK_DISABLED = 14
HEALTHY = 17


def parse_answer(raw: bytes) -> dict[str, Any] | None:
    """HEC's JSON answer, or None when the body is not one (a proxy's error page)."""
    try:
        answer = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return answer if isinstance(answer, dict) else None


def describe(answer: Mapping[str, Any]) -> str:
    text = snippet(str(answer.get("text") or "").encode(), 200)
    return f"{text} (code {answer.get('code')})" if text else f"code {answer.get('code')}"


def classify(status: int, headers: Mapping[str, str], raw: bytes, events: int) -> list[Outcome] | None:
    """One outcome per event for a failed request (``status`` not 200); None for a 200 (the
    caller reads the ackId)."""
    if status == 200:
        return None
    answer = parse_answer(raw)
    if answer is None:
        return [classify_status(status, headers, snippet(raw))] * events
    code = answer.get("code")
    detail = f"Splunk HEC: HTTP {status}: {describe(answer)}"
    if status in (401, 403) or code in AUTH_CODES:
        return [Outcome.permanent(f"{detail}: check the token", disable=True)] * events
    if status in (429, 503) or status >= 500:
        return [Outcome.retry(detail, parse_retry_after(headers.get("retry-after")))] * events
    if status == 413:
        if events > 1:
            return [Outcome.retry(f"{detail}: the batch is larger than the server takes; lower batch_max_bytes")] * events
        return [Outcome.permanent(f"{detail}: this one event is larger than the server takes")]
    if status == 400 and code == ACK_DISABLED:
        return [Outcome.permanent(f"{detail}: turn indexer acknowledgement on for the token, or set ack: false")] * events
    bad = answer.get("invalid-event-number")
    if status == 400 and code in SPLIT_CODES and isinstance(bad, int) and 0 <= bad < events:
        before = Outcome.delivered(warning=f"accepted in a request whose event {bad} was refused: {describe(answer)}")
        after = Outcome.retry(f"not read: event {bad} of the same request was refused ({describe(answer)})")
        return [before] * bad + [Outcome.permanent(detail)] + [after] * (events - bad - 1)
    if 400 <= status < 500:
        return [Outcome.permanent(detail)] * events
    return [classify_status(status, headers, detail)] * events


def ack_id(raw: bytes) -> int | None:
    """The ackId of a 200 answer, if it has one."""
    answer = parse_answer(raw)
    value = answer.get("ackId") if answer else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None
