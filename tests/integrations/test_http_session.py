"""The one pooled HTTP session of each HTTP notifier (webhook, Slack, Teams): opened once on first
use, even by concurrent first sends, with the integration's headers; closed with it."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from helpers import local_context
from sink import Sink

from tidings import __version__
from tidings.config import parse_config
from tidings.integrations.base import HttpNotifier
from tidings.integrations.registry import integration_class


def notifier(kind: str, **settings: Any) -> Any:
    config = parse_config({"integrations": {"x": {"kind": kind, **settings}}})
    return integration_class(kind)("x", config.integrations["x"], local_context())


@pytest.mark.parametrize(
    ("kind", "settings"),
    [
        ("webhook", {"url": "https://example.com/hook"}),
        ("slack", {"token": "xoxb-1-2-abc", "channel": "#ops"}),
        ("teams", {"webhook_url": "https://example.webhook.office.com/workflows/1/triggers/manual/paths/invoke?sig=s"}),
    ],
)
async def test_concurrent_first_uses_open_one_session_and_close_ends_it(kind: str, settings: dict[str, Any]) -> None:
    n = notifier(kind, **settings)
    assert isinstance(n, HttpNotifier)
    sessions = await asyncio.gather(*(n.session() for _ in range(20)))
    assert len({id(s) for s in sessions}) == 1
    session = sessions[0]
    assert session.headers["User-Agent"] == f"tidings/{__version__}"
    assert session.connector is not None and session.connector.limit == n.effective_concurrency
    await n.close()
    assert session.closed
    assert (await n.session()) is not session, "a closed notifier opens a new session on its next use"
    await n.close()


async def test_integration_headers_ride_on_the_session(sink: Sink) -> None:
    webhook = notifier("webhook", url=sink.url + "/hook", headers={"X-Team": "ops"})
    assert (await webhook.session()).headers["X-Team"] == "ops"
    await webhook.close()
    slack = notifier("slack", token="xoxb-1-2-abc", channel="#ops")
    assert (await slack.session()).headers["Authorization"] == "Bearer xoxb-1-2-abc"
    await slack.close()
