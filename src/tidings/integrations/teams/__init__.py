"""Microsoft Teams: an Adaptive Card posted to a Power Automate **Workflows** webhook, or to a
legacy Office 365 **connector** (retired by Microsoft; they take the same envelope).

What is sent, in both modes::

    {"type": "message",
     "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive",
                      "contentUrl": null,
                      "content": {<AdaptiveCard 1.5 or 1.4>}}]}

The card holds one Container styled by priority: the title, the body, the fields as a FactSet,
a context line (priority, source, time) and the links as ``Action.OpenUrl`` buttons. The whole
request stays under ``max_bytes`` (20 KB by default; Teams refuses 28 KB and fails from ~18 KB):
fields and body are cut first, with a visible ``…(truncated)`` marker.

How answers read: 2xx delivered (Workflows answers 202); a connector may answer 200 with a text
saying it was throttled ("Microsoft Teams endpoint returned HTTP error 429") or failed: that is
read as the status it names. 408, 425, 429 (with ``Retry-After``), 5xx, timeouts and resets are
retryable; 404 (a deleted workflow or connector), 400, 413 and other 4xx are permanent; 410
disables the integration. The webhook URL is a credential: it never appears in an error.

A person (a route's ``@handle``) who has a workflow URL of their own (``recipients.teams_url``, a
vault reference) gets the card there instead: :meth:`TeamsNotifier.address` marks the message with
their id (:data:`PERSON_LABEL`, never the URL) and :meth:`TeamsNotifier.send` reads the URL from the
vault (``Context.person_url``), checks it as the ``webhook_url`` setting is checked and posts through
the same guarded session; its answers read the same, except that a 410 there ends that delivery
without disabling the integration (one person's deleted workflow is not the channel's).
"""

from __future__ import annotations

import datetime as dt
import time
from typing import TYPE_CHECKING, Any

import aiohttp
import orjson
import structlog

from ...message import Message
from ...security.redact import register
from ..base import ACK_PRIORITIES, DISABLED, NO_OPTIONS, Addressable, Attempt, HttpNotifier, Outcome, RenderOptions
from ..http import connection_error, read_snippet
from .answers import answer, connector_answer
from .cards import ACK_ID, ACK_RESERVE, CARD_CONTENT_TYPE, CONTEXT_ID, TIME_RESERVE, fit
from .settings import TEAMS_LIMIT, Mode, TeamsSettings, detect_mode, url_problem, url_secrets

if TYPE_CHECKING:
    from ...recipients.model import Person

log = structlog.get_logger("tidings.teams")

PERSON_LABEL = "tidings:teams_person"
"""Set by :meth:`TeamsNotifier.address` to the recipient's id: the card goes to that person's own
workflow URL. No sender can set it: a label name can't hold ``:`` (``message.py``)."""


class TeamsNotifier(HttpNotifier, Addressable):
    kind = "teams"
    Settings = TeamsSettings
    rate_limit = "4/second"  # Teams throttles a connector at 4 requests per second
    burst = 1
    concurrency = 4
    timeout = 15.0
    settings: TeamsSettings

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.mode: Mode = self.settings.resolved_mode
        self._secrets = sorted(set(self.settings.secret_values()), key=len, reverse=True)

    # -- addressing a person -----------------------------------------------------------------
    def reaches(self, person: Person) -> bool:
        """A person with a workflow URL of their own (in the vault: resolved when sent)."""
        return bool(person.teams_url)

    def address(self, message: Message, person: Person) -> Message | None:
        """Marked for the person (their id, never their URL): :meth:`send` posts to their URL."""
        if not self.reaches(person):
            return None
        return message.model_copy(update={"labels": {**message.labels, PERSON_LABEL: person.id}})

    # -- the card ----------------------------------------------------------------------------
    def render(self, message: Message, options: RenderOptions = NO_OPTIONS) -> dict[str, Any]:
        """The request body (without the delivery time, which :meth:`body` adds), cut to fit."""
        reserve = TIME_RESERVE + (ACK_RESERVE if message.priority in ACK_PRIORITIES else 0)
        return fit(message, self.settings.max_bytes - reserve, self.settings.card_version)

    def card(self, payload: dict[str, Any]) -> dict[str, Any]:
        """The Adaptive Card inside ``payload``."""
        content: dict[str, Any] = payload["attachments"][0]["content"]
        return content

    def body(self, payload: dict[str, Any], attempt: Attempt) -> bytes:
        """The exact bytes sent: the payload with the delivery's time on its context line (shown
        in each reader's time zone by Teams' ``DATE``/``TIME`` functions)."""
        created = attempt.created_at if attempt.created_at > 0 else time.time()
        stamp = dt.datetime.fromtimestamp(int(created), dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        when = f"{{{{DATE({stamp}, SHORT)}}}} {{{{TIME({stamp})}}}}"
        try:
            card = self.card(payload)
            container = card["body"][0]
            container["items"]
        except (KeyError, IndexError, TypeError):  # not a card render made: send it as it is
            return orjson.dumps(payload)
        items = [
            {**item, "text": f"{item['text']} · {when}"} if item.get("id") == CONTEXT_ID else item
            for item in container["items"]
        ]
        link = self._ack_link(attempt)
        if link is not None:
            items.append({"type": "ActionSet", "id": ACK_ID,
                          "actions": [{"type": "Action.OpenUrl", "title": "Acknowledge", "url": link}]})
        attachment = {**payload["attachments"][0], "content": {**card, "body": [{**container, "items": items}]}}
        return orjson.dumps({**payload, "attachments": [attachment]})

    def _ack_link(self, attempt: Attempt) -> str | None:
        """A critical or high message's signed acknowledge link (issued when the delivery was made,
        so a retry sends the same card), or None."""
        make = self.context.ack_link
        if make is None or attempt.message.priority not in ACK_PRIORITIES:
            return None
        link = make(attempt.message_id, attempt.created_at if attempt.created_at > 0 else time.time(), "teams")
        return link if link is not None and len(link) <= ACK_RESERVE - 100 else None


    # -- sending -----------------------------------------------------------------------------
    async def send(self, payload: dict[str, Any], attempt: Attempt) -> Outcome:
        body = self.body(payload, attempt)
        if len(body) > TEAMS_LIMIT:  # render keeps below max_bytes; this guards a payload built elsewhere
            return Outcome.permanent(f"the card is {len(body)} bytes; Teams accepts at most {TEAMS_LIMIT}")
        person = attempt.message.labels.get(PERSON_LABEL)
        if person is not None:
            return await self._send_to_person(person, body)
        outcome = await self._post(self.settings.webhook_url.get_secret_value(), self.mode, body)
        return outcome.masking(self._secrets)

    async def _send_to_person(self, recipient_id: str, body: bytes) -> Outcome:
        """``body`` posted to the person's own workflow URL, read now (a rotated URL applies)."""
        resolve = self.context.person_url
        if resolve is None:
            return Outcome.permanent(f"{self.name} can't read a person's workflow URL here: nothing sent")
        try:
            name, url = await resolve(recipient_id, self.project)
        except LookupError as exc:  # deleted, or no URL any more
            return Outcome.permanent(str(exc))
        except Exception as exc:  # the vault's database: try again later
            log.warning("teams.person_url_unread", integration=self.name, recipient=recipient_id,
                        error=type(exc).__name__)
            return Outcome.retry(f"reading the person's Teams workflow URL failed: {type(exc).__name__}")
        secrets = url_secrets(url)
        register(secrets)  # logs and stored errors mask it too, whatever echoes it
        mode = detect_mode(url)
        if (problem := url_problem(url)) is not None or mode is None:
            why = problem or "is not a Power Automate workflow (or Teams connector) URL"
            return Outcome.permanent(f"{name}'s Teams workflow URL {why}: nothing sent")
        outcome = await self._post(url, mode, body)
        if outcome.disable:  # one person's deleted workflow is not the integration's
            outcome = Outcome.permanent(f"{(outcome.error or '').removesuffix(DISABLED)} ({name}'s workflow)")
        return outcome.masking(sorted({*secrets, *self._secrets}, key=len, reverse=True))

    async def _post(self, url: str, mode: Mode, body: bytes) -> Outcome:
        """POST ``body`` to ``url`` through the guarded session; the answer read as ``mode`` answers."""
        session = self._session or await self.session()
        try:
            async with session.post(
                url, data=body, headers={"Content-Type": "application/json"}, allow_redirects=False
            ) as resp:
                if 200 <= resp.status < 300:
                    text = await read_snippet(resp) if mode == "connector" else ""
                    outcome = connector_answer(text) if text else None
                    if outcome is None:
                        rid = resp.headers.get("x-ms-workflow-run-id") or resp.headers.get("x-ms-request-id")
                        outcome = Outcome.delivered(rid or resp.headers.get("request-id"))
                else:
                    outcome = answer(resp.status, resp.headers, await read_snippet(resp))
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            outcome = connection_error(exc)
        return outcome


__all__ = ["CARD_CONTENT_TYPE", "PERSON_LABEL", "TeamsNotifier", "TeamsSettings", "detect_mode"]
