"""A fake Microsoft Teams incoming-webhook endpoint on 127.0.0.1, answering the way the real ones do.

- ``/workflows/...`` (Power Automate Workflows): 202 Accepted with an ``x-ms-workflow-run-id``;
  400 with a JSON error for a body that isn't an Adaptive Card message; 413 over 28 KB.
- ``/webhookb2/...`` (legacy Office 365 connector): 200 with the text ``1``; over 28 KB, or while
  throttling, still 200 but with a text naming the failure
  ("Microsoft Teams endpoint returned HTTP error 429 ...").

Scripted replies (``teams.script(...)``, from :class:`peer.Peer`) take precedence over that behaviour.
``teams.throttle(n)`` makes the next ``n`` connector posts answer the throttling 200.
``teams.arrive_late(s)`` handles the next request ``s`` seconds late, as after a slow connection
set-up: it arrives (``arrivals``) that much after it was sent.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

from aiohttp import web
from peer import Peer
from sink import Received, Reply

TEAMS_LIMIT = 28 * 1024
THROTTLED = (
    "Microsoft Teams endpoint returned HTTP error 429 with ContextId "
    "tcid=0,server=msgapi-production-eus-azsc2-4-170,cv=deadbeef.0."
)


class FakeTeams(Peer):
    def __init__(self, port: int = 0) -> None:
        super().__init__(port)
        self._throttle = 0
        self._late = 0.0
        self.cards: list[dict[str, Any]] = []

    def workflow_url(self, workflow: str = "0123456789abcdef0123456789abcdef") -> str:
        return (
            f"{self.url}/workflows/{workflow}/triggers/manual/paths/invoke"
            "?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig=Zm9vYmFyYmF6cXV4c2lnbmF0dXJl"
        )

    def connector_url(self) -> str:
        return (
            f"{self.url}/webhookb2/3f2a9c1e-0000-4000-8000-1234567890ab@72f988bf-86f1-41af-91ab-2d7cd011db47"
            "/IncomingWebhook/5f0c2b7e9d4a4a0f8e1b2c3d4e5f6a7b/1d8e6c2a-0000-4000-8000-ba0987654321"
        )

    def throttle(self, n: int) -> None:
        self._throttle += n

    def arrive_late(self, seconds: float) -> None:
        self._late = seconds

    def card_at(self, i: int) -> dict[str, Any]:
        card: dict[str, Any] = self.received[i].json()["attachments"][0]["content"]
        return card

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if self._late:
            late, self._late = self._late, 0.0
            await asyncio.sleep(late)
        if self._script:
            return await super()._handle(request)
        body = await request.read()
        self.received.append(Received(request.method, request.path_qs, dict(request.headers), body))
        self.arrivals.append(time.monotonic())
        self.arrived.set()
        connector = "/webhookb2/" in request.path
        if connector and self._throttle:
            self._throttle -= 1
            return web.Response(status=200, text=THROTTLED)
        if len(body) > TEAMS_LIMIT:
            if connector:
                return web.Response(
                    status=200,
                    text="Webhook message delivery failed with error: Microsoft Teams endpoint returned "
                    "HTTP error 413 with ContextId tcid=0,server=msgapi,cv=x.0.",
                )
            return web.json_response({"error": {"code": "RequestEntityTooLarge"}}, status=413)
        problem = _problem(body)
        if problem:
            if connector:
                return web.Response(status=400, text=f"Bad payload received by generic incoming webhook. {problem}")
            return web.json_response({"error": {"code": "InvalidRequestContent", "message": problem}}, status=400)
        if connector:
            return web.Response(status=200, text="1")
        return web.Response(status=202, headers={"x-ms-workflow-run-id": f"08584{uuid.uuid4().hex[:20]}"})


def _problem(body: bytes) -> str | None:
    try:
        data = json.loads(body)
    except ValueError:
        return "The request content is not valid JSON."
    if not isinstance(data, dict) or data.get("type") != "message":
        return "type must be 'message'."
    attachments = data.get("attachments")
    if not isinstance(attachments, list) or not attachments:
        return "attachments is required."
    for a in attachments:
        if a.get("contentType") != "application/vnd.microsoft.card.adaptive":
            return "unsupported contentType."
        if not isinstance(a.get("content"), dict) or a["content"].get("type") != "AdaptiveCard":
            return "content must be an AdaptiveCard."
    return None


__all__ = ["THROTTLED", "FakeTeams", "Reply"]
