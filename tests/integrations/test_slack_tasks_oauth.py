"""Task buttons of a Slack integration with ``oauth: true``: the click's message is edited with
``chat.update`` under the connection's token, and after a refresh under the new one (no restart)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from connection_support import holds, store, with_key
from fake_slack import FakeSlack
from test_slack_tasks import click, new_task, posted, press, start


async def test_task_buttons_edit_the_message_with_the_connections_token(
    make_api: Any, slack: FakeSlack, tmp_path: Path
) -> None:
    with_key(tmp_path)
    api = await start(make_api, slack, token=None, oauth=True)
    hub = api.hub
    first = slack.token = "xoxe.xoxb-1-connected-AAAA"
    await store(hub, "slack", "slack", first)
    await holds(hub, "slack", first)
    task = await new_task(hub, "Renew the cert")
    ((channel, ts, _),) = await posted(slack, task["id"])

    assigned = await press(api, click(slack, channel, ts, f"tidings_task:assign:{task['id']}"))
    assert assigned["result"]["updated"] == f"{channel}:{ts}", "edited in place with chat.update"
    assert [c.headers["Authorization"] for c in slack.calls_of("chat.update")] == [f"Bearer {first}"]

    second = slack.token = "xoxe.xoxb-1-refreshed-BBBB"
    await store(hub, "slack", "slack", second, refresh=True)
    await holds(hub, "slack", second)
    done = await press(api, click(slack, channel, ts, f"tidings_task:done:{task['id']}"))
    assert done["result"]["updated"] == f"{channel}:{ts}"
    assert slack.calls_of("chat.update")[-1].headers["Authorization"] == f"Bearer {second}"
